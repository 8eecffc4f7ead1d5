"""Bybit: ccxt.pro merges every `orderbook` message it gets; this guard checks the `u` chain ccxt ignores.

Bybit's order book topics (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook) send a `snapshot`
on subscribe and then `delta`s; `data.u` is the topic's update id, each delta's the previous one's + 1 (a strict
chain per topic, `orderbook.1.X` and `orderbook.50.X` each their own), and a new `snapshot` replaces the book and
restarts the chain from its own `u`: after a service restart that is `u` = 1, and level 1 re-sends a snapshot with
an unchanged `u` after 3 s without a change. Both are resets, never gaps. ccxt 4.5.90 (`pro/bybit.py
handle_order_book`) keeps neither `u` nor `seq` and applies a delta whatever its `u`, so a lost message leaves a book
that looks alive and is wrong (FAULTS M3); this guard says so before ccxt applies the next delta.

It also refuses what ccxt would merge blindly from a frame it can parse (FAULTS M7): a `u` that is not a positive
integer, a level that is not a pair of decimal strings, a NaN / infinite / non-positive price or a negative size,
a snapshot with no `u` or whose best bid is not below its best ask. A crossing made by a delta against the book
held is the connector's check (it needs the book). Frames ccxt cannot decode never reach a guard.
"""

from __future__ import annotations

import math
from typing import Any


def _level_problem(level: Any) -> str | None:
    if not (isinstance(level, list) and len(level) == 2 and all(isinstance(x, str) for x in level)):
        return f"bad level {level!r}"
    try:
        price, size = float(level[0]), float(level[1])
    except ValueError:
        return f"bad level {level!r}"
    if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size >= 0):
        return f"bad level {level!r}"
    return None


def _side_problem(side: Any, name: str) -> str | None:
    if not isinstance(side, list):
        return f"bad {name} {type(side).__name__}"
    for level in side:
        problem = _level_problem(level)
        if problem is not None:
            return problem
    return None


class BybitGuard:
    """Per topic, the `u` of the last message ccxt applied; a delta must carry exactly the next one."""

    def __init__(self) -> None:
        self.last_u: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        topic = message.get("topic")
        if not isinstance(topic, str) or not topic.startswith("orderbook."):
            return None  # acks, pongs, tickers: nothing ccxt merges into a book
        data = message.get("data")
        if not isinstance(data, dict):
            return f"bad frame {topic}: no data"
        u = data.get("u")
        if type(u) is not int or u < 1:
            return f"bad u {topic}: {u!r}"
        for name in ("b", "a"):
            problem = _side_problem(data.get(name, []), name)
            if problem is not None:
                return f"{problem} in {topic} u={u}"
        kind = message.get("type")
        if kind == "snapshot":
            bids, asks = data.get("b") or [], data.get("a") or []
            if bids and asks and float(bids[0][0]) >= float(asks[0][0]):
                return f"crossed snapshot {topic} u={u}: bid {bids[0][0]} >= ask {asks[0][0]}"
            self.last_u[topic] = u  # a new book: the chain restarts here (u = 1 after a restart included)
            return None
        if kind != "delta":
            return f"bad type {topic}: {kind!r}"
        last = self.last_u.get(topic)
        if last is None:
            return f"delta before snapshot {topic} u={u}"
        if u != last + 1:
            return f"seq gap {topic} {last} -> {u}"
        self.last_u[topic] = u
        return None
