"""The Redis Cluster part of ``python -m benchmarks cluster --part redis``.

A placeholder until the Redis Cluster adapter lands: :func:`run` raises, so
``--part redis`` (and ``--part all`` after the RabbitMQ part) fails loudly
instead of printing a table that measured nothing.
"""

from __future__ import annotations

import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Measure hub throughput on Redis Cluster against a single Redis."""
    del args
    raise NotImplementedError(
        "the Redis Cluster part of `python -m benchmarks cluster` is not built yet "
        "(benchmarks/_cluster_redis.py); run --part rabbitmq"
    )
