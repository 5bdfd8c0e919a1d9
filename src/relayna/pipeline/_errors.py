"""Error policies, the one pipeline error type, and the in-band failure marker."""

from __future__ import annotations

from enum import Enum

from relayna.errors import RelaynaError

from ._index import Index

__all__ = ["ErrorPolicy", "Failure", "PipelineError"]


class ErrorPolicy(Enum):
    """What a run does when a step raises for an item.

    * ``FAIL_FAST`` (default): the first failure cancels every task of the run
      and ``collect``/``stream``/``open`` raise one :class:`PipelineError`.
    * ``IGNORE``: the failed item is dropped; ``on_error`` still sees it.
    * ``COLLECT``: the :class:`PipelineError` takes the item's place in the
      results (index position for ``collect``, arrival order for ``stream``).
    """

    FAIL_FAST = "fail_fast"
    IGNORE = "ignore"
    COLLECT = "collect"


class PipelineError(RelaynaError):
    """A step (or the input iterable) raised.

    Attributes:
        original_error: the exception the user code raised (also ``__cause__``).
        step_name: the failing step's name, ``"source"`` for the input iterable.
        item_index: position of the input item being processed, if any.
    """

    def __init__(
        self,
        message: str,
        original_error: BaseException,
        step_name: str | None = None,
        item_index: Index | None = None,
    ) -> None:
        super().__init__(f"{message}: {original_error!r}")
        self.original_error = original_error
        self.step_name = step_name
        self.item_index = item_index
        self.__cause__ = original_error

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (str(self), self.original_error, self.step_name, self.item_index),
        )


class Failure:
    """In-band marker: a failed item travelling downstream (IGNORE / COLLECT)."""

    __slots__ = ("error",)

    def __init__(self, error: PipelineError) -> None:
        self.error = error
