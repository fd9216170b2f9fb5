"""Which of a node's worker processes this one is: local rank x workers per rank + worker number.

Processes that share a node's GPUs out (conversion workers running a learned upsampler) take the
visible GPU of their number modulo the count. Kept free of torch: converters import it.
"""
from __future__ import annotations

_SLOT = [0]


def set_slot(number: int) -> None:
    """Say which of the node's worker processes this is (a pool initialiser, or the rank itself)."""
    _SLOT[0] = number


def slot() -> int:
    """This process's number among the node's worker processes (0 unless :func:`set_slot` said)."""
    return _SLOT[0]
