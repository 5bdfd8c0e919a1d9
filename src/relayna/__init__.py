"""relayna: a Trio/AnyIO structured-concurrency runtime for RabbitMQ tasks and live status."""

__version__ = "0.1.0"

__all__ = ["__version__"]
