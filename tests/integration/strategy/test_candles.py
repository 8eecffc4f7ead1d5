"""Candles fetched by the real ccxt binance client from the local Binance venue: paging, closed bars only, resuming
after the last stored bar (also after a fetch that failed part-way), and `fetch_assets` through the settings' `urls:`
override."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from arb.config import load_settings
from arb.strategy.candles import BAR_MS, CandleStore, fetch_assets, fetch_ohlcv_range

from ..sim.support import binance_venue, ccxt_binance

VENUE = "binance"


async def now_inside_one_hour(margin_s: float = 30.0) -> int:
    """Now (ms), not within `margin_s` of the next hour. The local venue anchors its candle history at the current
    hour's price, so a test comparing two fetches must not straddle an hour boundary."""
    now = time.time_ns() // 1_000_000
    left = BAR_MS - now % BAR_MS
    if left < margin_s * 1000:
        await asyncio.sleep(left / 1000 + 0.5)
        now = time.time_ns() // 1_000_000
    return now


def hours(frame: pd.DataFrame) -> list[int]:
    return np.diff(frame.index.asi8 // 1_000_000).tolist()


async def test_update_stores_consecutive_closed_hours_page_by_page_then_adds_only_new_bars(tmp_path: Path) -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        now = await now_inside_one_hour()
        current = now - now % BAR_MS  # the bar still forming
        store = CandleStore(tmp_path / "candles")
        pages: list[tuple[int, int]] = []

        first = await store.update(
            exchange, VENUE, "BTC/USD", "BTC/USDT", history_days=6, page_limit=50, now_ms=now - 10 * BAR_MS,
            on_page=lambda fetched, expected: pages.append((fetched, expected)),
        )  # fmt: skip
        requests_first = venue.stats["GET /api/v3/klines"]
        stored = store.read_raw(VENUE, "BTC/USD")
        second = await store.update(exchange, VENUE, "BTC/USD", "BTC/USDT", history_days=6, page_limit=50, now_ms=now)
        again = await store.update(exchange, VENUE, "BTC/USD", "BTC/USDT", history_days=6, page_limit=50, now_ms=now)
        eth = await store.update(exchange, VENUE, "ETH/USD", "ETH/USDT", history_days=6, page_limit=50, now_ms=now)

        assert first == 6 * 24
        assert pages == [(50, 144), (100, 144), (144, 144)]
        assert requests_first == 3
        assert stored is not None
        assert stored.index[-1].value // 1_000_000 == current - 11 * BAR_MS  # closed bars before now - 10 h
        assert hours(stored) == [BAR_MS] * 143
        assert (second, again, eth) == (10, 0, 144)
        assert venue.stats["GET /api/v3/klines"] == 3 + 1 + 3  # `again` had nothing to ask for
        btc = store.read(VENUE, "BTC/USD")
        assert btc is not None
        assert len(btc) == 154
        assert hours(btc) == [BAR_MS] * 153
        assert btc.index[-1].value // 1_000_000 == current - BAR_MS  # the bar still forming is not stored
        assert not btc["filled"].any()
        pd.testing.assert_frame_equal(btc.iloc[:144, :5], stored)  # resuming never rewrites what was stored
        eth_bars = store.read(VENUE, "ETH/USD")
        assert eth_bars is not None
        assert eth_bars.index.equals(btc.index[10:])
        assert float(eth_bars["close"].iloc[-1]) != float(btc["close"].iloc[-1])
        assert store.path(VENUE, "BTC/USD") == tmp_path / "candles" / "binance" / "BTC%2FUSD.parquet"
        assert sorted(p.name for p in (tmp_path / "candles" / "binance").iterdir()) == [
            "BTC%2FUSD.parquet",
            "ETH%2FUSD.parquet",
        ]  # fmt: skip  (no temporary files left behind)

        # Two updates give the same history as one: the resumed file ends exactly as a one-shot fetch (6 days).
        one_shot = CandleStore(tmp_path / "one-shot")
        await one_shot.update(exchange, VENUE, "BTC/USD", "BTC/USDT", history_days=6, page_limit=1000, now_ms=now)
        resumed = store.read_raw(VENUE, "BTC/USD")
        assert resumed is not None
        pd.testing.assert_frame_equal(one_shot.read_raw(VENUE, "BTC/USD"), resumed.iloc[10:])


async def test_a_fetch_that_fails_part_way_keeps_its_pages_and_the_next_update_resumes_after_them(
    tmp_path: Path,
) -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        now = await now_inside_one_hour()
        store = CandleStore(tmp_path)

        def rate_limited_after_two_pages(fetched: int, expected: int) -> None:
            if fetched == 100:
                venue.faults.rate_limit(retry_after_s=1, escalate=False)

        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await store.update(
                exchange, VENUE, "SOL/USD", "SOL/USDT", history_days=6, page_limit=50, now_ms=now,
                on_page=rate_limited_after_two_pages,
            )  # fmt: skip
        kept = store.read_raw(VENUE, "SOL/USD")
        await asyncio.sleep(1.0)  # the venue's Retry-After
        resumed = await store.update(exchange, VENUE, "SOL/USD", "SOL/USDT", history_days=6, page_limit=50, now_ms=now)
        one_shot = CandleStore(tmp_path / "one-shot")
        await one_shot.update(exchange, VENUE, "SOL/USD", "SOL/USDT", history_days=6, page_limit=1000, now_ms=now)

        assert kept is not None
        assert len(kept) == 100
        assert resumed == 44
        assert dict(venue.faults.injected) == {"http_429": 1}
        pd.testing.assert_frame_equal(store.read_raw(VENUE, "SOL/USD"), one_shot.read_raw(VENUE, "SOL/USD"))


async def test_fetch_ohlcv_range_pages_through_a_range_and_stops_where_the_venue_has_no_more() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        now = await now_inside_one_hour()
        current = now - now % BAR_MS
        since = current - 99 * BAR_MS
        seen: list[tuple[int, int]] = []

        rows = await fetch_ohlcv_range(
            exchange, "ETH/USDT", since, current + 24 * BAR_MS, limit=40,
            on_page=lambda fetched, expected: seen.append((fetched, expected)),
        )  # fmt: skip

        # The range runs a day past now: the venue's last candle is the one forming now; then an empty page ends it.
        assert [r[0] for r in rows] == [since + i * BAR_MS for i in range(100)]
        assert seen == [(40, 123), (80, 123), (100, 123)]  # 99 h back to 24 h ahead
        assert venue.stats["GET /api/v3/klines"] == 4
        assert all(r[3] <= min(r[1], r[4]) <= max(r[1], r[4]) <= r[2] for r in rows)


async def test_fetch_assets_goes_through_the_settings_urls_override_to_the_configured_venue(tmp_path: Path) -> None:
    async with binance_venue(run=False) as venue:
        user = tmp_path / "arb.yaml"
        user.write_text(
            f"venues:\n  binance:\n    urls: {{http: '{venue.http_url}', ws: '{venue.ws_url}'}}\n"
            f"strategy:\n  candles:\n    data_dir: '{tmp_path / 'candles'}'\n    history_days: 2\n    page_limit: 20\n"
        )
        settings = load_settings(user)
        progress: list[tuple[str, int, int]] = []
        await now_inside_one_hour()

        # XRP/USD maps to XRP/USDT on binance in instruments.yaml, which this local venue does not list: skipped.
        added = await fetch_assets(
            settings, ["BTC/USD", "ETH/USD", "XRP/USD"], on_progress=lambda *p: progress.append(p)
        )
        again = await fetch_assets(settings, ["BTC/USD"])

        assert added == {"BTC/USD": 48, "ETH/USD": 48}
        assert again == {"BTC/USD": 0}
        assert progress == [
            ("BTC/USD", 20, 48), ("BTC/USD", 40, 48), ("BTC/USD", 48, 48),
            ("ETH/USD", 20, 48), ("ETH/USD", 40, 48), ("ETH/USD", 48, 48),
        ]  # fmt: skip
        bars = CandleStore(tmp_path / "candles").read(VENUE, "ETH/USD")
        assert bars is not None
        assert hours(bars) == [BAR_MS] * 47
        assert venue.stats["GET /api/v3/klines"] == 6
        with pytest.raises(ValueError, match=r"'NOPE/USD' is not a configured instrument"):
            await fetch_assets(settings, ["BTC/USD", "NOPE/USD"])
        with pytest.raises(ValueError, match=r"'HYPE/USD' is not listed on binance"):
            await fetch_assets(settings, ["HYPE/USD"])
        assert venue.stats["GET /api/v3/klines"] == 6  # refused before any request
