"""The grid's exceptions, in one small tree, so callers can tell "retry later" from "fix your input".

GridError
├── GridUnavailable      Redis unreachable, too slow (socket timeout) or answering with an error: the grid cannot
│                        be read or written *now*. Readers must fail closed (no decision on a grid they cannot
│                        read, FAULTS M8); retrying later is safe for reads. A write that timed out may or may not
│                        have been applied, so it is not retried blindly (the next batch carries newer quotes).
├── GridLayoutMismatch   Redis holds a grid written with a different instrument/venue layout; positions in its
│                        top-of-book blob would be misread, so nothing is read or written until the grid is reset.
└── InvalidQuote         a quote refused on write (fails `arb.model.quote_problems`, or names an instrument or
                         venue the layout does not have); the whole batch is refused, nothing is half-written.
                         Also a `ValueError`, because it is bad input.
"""

from __future__ import annotations


class GridError(Exception):
    """Base of every error the grid raises."""


class GridUnavailable(GridError):
    """Redis could not serve the operation; `reason` is the Redis error's text (also chained as `__cause__`)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"grid {operation} failed: Redis unavailable ({reason})")
        self.operation = operation
        self.reason = reason


class GridLayoutMismatch(GridError):
    """The layout id stored in Redis differs from ours (a config change without a grid reset)."""

    def __init__(self, stored: str, ours: str) -> None:
        super().__init__(
            f"grid in Redis was written with layout {stored}, this process uses {ours}: "
            "instruments or venues changed; reset the grid (PriceGrid.reset) or align the config"
        )
        self.stored = stored
        self.ours = ours


class InvalidQuote(GridError, ValueError):
    """A quote the grid refuses to store; the message names the quote (venue, instrument, position) and the problem."""
