"""FX / commodity candles through Capital.com: `fetch_assets` routes EUR/USD and XAU/USD to the local Capital.com venue
(demo URLs pointed at it through the settings, credentials from ARB_CAPITAL_COM_*), pages through its
`GET /api/v1/prices/{epic}`, stores the mid bars with the venue's closed hours left out, and resumes after the last
stored bar."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arb.config import load_settings
from arb.connectors.capital_com import CapitalComNotFound
from arb.strategy.candles import BAR_MS, CandleStore, fetch_assets
from tests.integration.connectors.capital_com_support import client_of, local_capital_com, requests_to
from tests.integration.strategy.test_candles import now_inside_one_hour

pytestmark = pytest.mark.asyncio


def fx_open(at: dt.datetime) -> bool:
    """FX trades Sunday 22:00 to Friday 22:00 UTC (hand-written here, independent of the venue's table)."""
    wd, h = at.weekday(), at.hour
    return not (wd == 5 or (wd == 6 and h < 22) or (wd == 4 and h >= 22))


def commodity_open(at: dt.datetime) -> bool:
    """FX hours, less a daily 21:00-22:00 break (and Friday closes at 21:00)."""
    wd, h = at.weekday(), at.hour
    return fx_open(at) and not (h == 21 and wd != 6)


def hours_between(first_ms: int, until_ms: int) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t / 1000, dt.UTC) for t in range(first_ms, until_ms, BAR_MS)]


def ms_of(index: pd.DatetimeIndex) -> list[int]:
    return (index.asi8 // 1_000_000).tolist()


async def test_prices_endpoint_pages_by_from_to_and_max_with_the_session_checked() -> None:
    async with local_capital_com(["EUR/USD"], run=False) as local, client_of(local) as client:
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        start = now - dt.timedelta(hours=30)

        page = await client.prices("EURUSD", start=start, end=start + dt.timedelta(hours=9), max=10)
        newest = await client.prices("EURUSD", max=3)
        with pytest.raises(CapitalComNotFound, match=r"/prices/NOPE"):
            await client.prices("NOPE")
        with pytest.raises(ValueError, match=r"EURUSD: from: .* has no time zone"):
            await client.prices("EURUSD", start=start.replace(tzinfo=None))

        times = [p.snapshotTimeUTC for p in page.prices]
        assert times == [(start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S") for i in range(10)]
        assert page.instrumentType == "CURRENCIES"
        assert all(p.openPrice.bid < p.openPrice.ask for p in page.prices)
        assert [p.snapshotTimeUTC for p in newest.prices][-1] == now.strftime("%Y-%m-%dT%H:%M:%S")
        assert len(newest.prices) == 3
        assert len(requests_to(local, "GET", "/api/v1/prices/")) == 3  # the naive time was refused before sending


async def test_fx_and_gold_candles_come_from_capital_com_with_closed_hours_left_as_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each fetch_assets run has a client (and request gate) of its own; the two runs here, back to back, would exceed
    # the venue's per-user limits together (one login and 10 requests a second), so the local venue's are loosened.
    async with local_capital_com(
        ["EUR/USD", "XAU/USD"], run=False, hours="real", session_interval_s=0.01, requests_per_s=100
    ) as local:
        user = tmp_path / "arb.yaml"
        user.write_text(
            f"venues:\n  capital_com:\n    urls: {{rest_demo: '{local.rest_url}', ws_demo: '{local.ws_url}',"
            f" rest_live: '{local.rest_url}', ws_live: '{local.ws_url}'}}\n"
            f"strategy:\n  candles:\n    data_dir: '{tmp_path / 'candles'}'\n    history_days: 9\n"
            "    page_limit: 100\n    assets: [EUR/USD, XAU/USD]\n"
        )
        settings = load_settings(user)
        for what, value in (("API_KEY", local.api_key), ("IDENTIFIER", local.identifier), ("PASSWORD", local.password)):
            monkeypatch.setenv(f"ARB_CAPITAL_COM_{what}", value)
        now = await now_inside_one_hour()
        until = now - now % BAR_MS
        since = until - 9 * 24 * BAR_MS
        progress: list[tuple[str, int, int]] = []

        added = await fetch_assets(settings, ["EUR/USD", "XAU/USD"], on_progress=lambda *p: progress.append(p))

        store = CandleStore(tmp_path / "candles")
        fx_hours = [h for h in hours_between(since, until) if fx_open(h)]
        gold_hours = [h for h in hours_between(since, until) if commodity_open(h)]
        assert added == {"EUR/USD": len(fx_hours), "XAU/USD": len(gold_hours)}
        assert len(fx_hours) < 9 * 24  # nine days always hold a weekend
        raw = store.read_raw("capital_com", "EUR/USD")
        assert raw is not None
        assert ms_of(raw.index) == [int(h.timestamp() * 1000) for h in fx_hours]
        assert len({a for a, _, _ in progress if a == "EUR/USD"}) == 1
        assert sum(1 for a, _, _ in progress if a == "EUR/USD") >= 2  # paged: 216 h in windows of 100
        bars = store.read("capital_com", "EUR/USD")
        assert bars is not None
        assert np.diff(bars.index.asi8).tolist() == [BAR_MS * 1_000_000] * (len(bars) - 1)
        closed = [h for h in hours_between(ms_of(raw.index)[0], ms_of(raw.index)[-1]) if not fx_open(h)]
        assert len(closed) >= 48  # at least one whole weekend inside the stored range
        assert ms_of(bars.index[bars["filled"]]) == [int(h.timestamp() * 1000) for h in closed]

        # Resume: drop the newest 10 stored bars; the next fetch adds exactly those back, from one request.
        path = store.path("capital_com", "EUR/USD")
        raw.iloc[:-10].to_parquet(path)
        before = len(requests_to(local, "GET", "/api/v1/prices/EURUSD"))
        again = await fetch_assets(settings, ["EUR/USD"])
        resumed = store.read_raw("capital_com", "EUR/USD")

        assert again == {"EUR/USD": 10}
        assert resumed is not None
        assert ms_of(resumed.index) == ms_of(raw.index)
        assert len(requests_to(local, "GET", "/api/v1/prices/EURUSD")) - before == 1


async def test_an_fx_asset_without_credentials_is_refused_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for what in ("API_KEY", "IDENTIFIER", "PASSWORD"):
        monkeypatch.delenv(f"ARB_CAPITAL_COM_{what}", raising=False)
    settings = load_settings(None)
    with pytest.raises(ValueError, match=r"capital_com: no credentials .* ARB_CAPITAL_COM_API_KEY"):
        await fetch_assets(settings, ["EUR/USD"])
