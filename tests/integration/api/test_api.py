"""The REST API through its real app, real Redis and a real SQLite ledger: what a client of each route meets.

Covers FAULTS S1-S9 and S11 at the API's door (S10 is `arb serve`'s, in tests/e2e/test_serve.py): every route refuses
a missing, malformed, tampered or revoked key (401) and a key without the scope (403); unknown fields, symbols and
venues and bad amounts are 422 naming the field; a flood on one key is 429; another key's execution or job is 404;
no key or secret is echoed in a response or a log line; CORS answers only configured origins; a URL in a request is
refused. Opportunities come from the scanner's real stream writer (`OpportunityStream`), the portfolio from the
trading process's real snapshot publisher.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pydantic import ValidationError

from arb.config.schema import ApiSettings
from arb.grid import GridLayout, PriceGrid
from arb.ledger.strategy import SignalRecord, StrategyStore
from arb.model import OpportunityEvent
from arb.scanner.stream import OpportunityStream
from arb.trading import BalanceLine, TraderSnapshot, publish_snapshot
from tests.integration.api.conftest import Api
from tests.integration.backtest.test_replay import write_tape
from tests.unit.ledger.support import opportunity

pytestmark = pytest.mark.timeout(60)

NS0 = time.time_ns()
INF_LATENCY = b'{"type":"arbitrage","tape":"tiny","latency_ms":[1e999]}'
"""JSON has no infinity; 1e999 is how a client sends one (it parses to inf)."""


def event(
    oid: str,
    *,
    instrument: str = "BTC/USD",
    buy: str = "binance",
    sell: str = "okx",
    edge: float = 0.002,
    kind: str = "opened",
) -> OpportunityEvent:
    opp = opportunity(oid, net_edge=edge, instrument=instrument, buy_venue=buy, sell_venue=sell, quote_currency="USD")
    return OpportunityEvent(type=kind, opportunity=opp, opened_ns=NS0, ts=NS0, peak_net_edge=edge)  # type: ignore[arg-type]


def oid(instrument: str, buy: str, sell: str, n: int = 1) -> str:
    return f"spot:{instrument}:{buy}>{sell}:{NS0 + n}"


async def publish(api: Api, *events: OpportunityEvent) -> None:
    """Through the scanner's own stream writer; then wait until the API's book has them."""
    settings = api.settings
    async with (
        PriceGrid.from_url(
            settings.redis_url.get_secret_value(),
            GridLayout.from_settings(settings),  # type: ignore[union-attr]
            settings.grid,
        ) as grid,
        OpportunityStream(grid) as stream,
    ):
        for e in events:
            stream.put(e)
        await stream.flush()
    book = api.app.state.arb.book
    want = {e.opportunity.id: e.type for e in events}
    for _ in range(200):
        if all((k in book.open) == (t != "closed") for k, t in want.items()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the API's book never saw the published events")


def v1_routes(api: Api) -> list[tuple[str, str]]:
    """Every operation of the published schema (the routers are included lazily, so read what a client reads)."""
    out = []
    for path, ops in api.app.openapi()["paths"].items():
        concrete = path.replace("{execution_id}", "ex1").replace("{job_id}", "0123456789abcdef")
        out += [(m.upper(), concrete) for m in sorted(ops)]
    return out


# --- S1 / S2: keys and scopes -------------------------------------------------------------------------------------


async def test_every_v1_route_refuses_a_missing_malformed_tampered_or_revoked_key(api: Api) -> None:
    routes = v1_routes(api)
    assert len(routes) >= 10
    good = api.keys["admin"]
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    store = api.app.state.arb.store
    revoked_rec, revoked = await store.create_key("gone", {"admin"})
    assert await store.revoke_key(revoked_rec.id)
    api.app.state.keys._loaded_at = -1e18  # the next request re-reads the keys (else within 2 s)
    for headers in (
        {},
        {"X-API-Key": "not-a-key"},
        {"Authorization": f"Basic {good}"},
        {"X-API-Key": tampered},
        {"Authorization": f"Bearer {revoked}"},
    ):
        for method, path in routes:
            r = await api.client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
            body = r.json()
            assert body["status"] == 401
            assert "API key" in body["detail"]
            assert good not in r.text
            assert revoked not in r.text


async def test_a_read_key_cannot_execute_or_touch_the_kill_switch_and_a_trade_key_cannot_touch_the_kill_switch(
    api: Api,
) -> None:
    body = {"opportunity_id": oid("BTC/USD", "binance", "okx")}
    r = await api.client.post(
        "/api/v1/arbitrage/execute", json=body, headers=api.auth("read") | {"Idempotency-Key": "a"}
    )
    assert r.status_code == 403
    assert "'trade' scope" in r.json()["detail"]
    for scope in ("read", "trade"):
        r = await api.client.post(
            "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "x"}, headers=api.auth(scope)
        )
        assert r.status_code == 403
        assert "'admin' scope" in r.json()["detail"]
    state = await api.app.state.arb.ledger.execution().load_trading_state()
    assert state is None or state.state == "active"  # nothing was written by the refused calls
    assert (await api.client.get("/api/v1/risk/metrics", headers=api.auth("read"))).status_code == 200


# --- scan -----------------------------------------------------------------------------------------------------------


async def test_scan_ranks_filters_and_pages_the_open_opportunities(api: Api) -> None:
    a, b, c = oid("BTC/USD", "binance", "okx"), oid("ETH/USD", "okx", "binance"), oid("BTC/USD", "kraken", "okx")
    await publish(
        api,
        event(a, edge=0.003),
        event(b, instrument="ETH/USD", buy="okx", sell="binance", edge=0.001),
        event(c, buy="kraken", edge=0.002),
    )
    get = lambda **q: api.client.get("/api/v1/arbitrage/scan", params=q, headers=api.auth("read"))  # noqa: E731

    r = await get()
    assert r.status_code == 200
    page = r.json()
    assert [o["id"] for o in page["opportunities"]] == [a, c, b]  # by priority
    top = page["opportunities"][0]
    assert top["net_edge_bps"] == pytest.approx(30.0)
    for factor in ("fee_buy", "fee_sell", "slippage", "gas", "haircut", "decay", "liquidity_score", "risk_factor"):
        assert factor in top
    assert [o["id"] for o in (await get(instrument="BTC/USD")).json()["opportunities"]] == [a, c]
    assert [o["id"] for o in (await get(venue="kraken")).json()["opportunities"]] == [c]
    assert [o["id"] for o in (await get(min_edge_bps=15)).json()["opportunities"]] == [a, c]
    first = (await get(limit=2)).json()
    assert [o["id"] for o in first["opportunities"]] == [a, c]
    assert first["total"] == 3
    second = (await get(limit=2, cursor=first["next_cursor"])).json()
    assert [o["id"] for o in second["opportunities"]] == [b]
    assert second["next_cursor"] is None

    await publish(api, event(a, kind="closed"))
    assert [o["id"] for o in (await get()).json()["opportunities"]] == [c, b]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"instrument": "NOPE/USD"}, "query.instrument"),
        ({"venue": "nowhere"}, "query.venue"),
        ({"min_edge_bps": "nan"}, "query.min_edge_bps"),
        ({"min_edge_bps": "inf"}, "query.min_edge_bps"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "100000"}, "query.limit"),
        ({"limit": "501"}, "query.limit"),  # above api.max_scan_limit: the fan-out is bounded (S7)
        ({"type": "lottery"}, "query.type"),
        ({"cursor": "-1"}, "query.cursor"),
    ],
)
async def test_scan_refuses_bad_filters_naming_the_field(api: Api, query: dict[str, str], field: str) -> None:
    r = await api.client.get("/api/v1/arbitrage/scan", params=query, headers=api.auth("read"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in r.json()["detail"]


# --- execute --------------------------------------------------------------------------------------------------------


def execute(api: Api, body: dict[str, Any], key: str = "k1", scope: str = "trade") -> Any:
    return api.client.post("/api/v1/arbitrage/execute", json=body, headers=api.auth(scope) | {"Idempotency-Key": key})


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"dry_run": True}, "body.dry_run"),
        ({"exchange_url": "http://10.0.0.1/"}, "body.exchange_url"),
        ({"leverage": 10}, "body.leverage"),
        ({"max_amount": 0}, "body.max_amount"),
        ({"max_amount": -1}, "body.max_amount"),
        ({"max_amount": "NaN"}, "body.max_amount"),
        ({"max_amount": "Infinity"}, "body.max_amount"),
        ({"max_amount": "0.0000000000001"}, "body.max_amount"),  # 13 decimals
    ],
)
async def test_execute_refuses_unknown_fields_and_bad_amounts_naming_the_field(
    api: Api, extra: dict[str, Any], field: str
) -> None:
    r = await execute(api, {"opportunity_id": oid("BTC/USD", "binance", "okx")} | extra)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]
    assert await api.app.state.arb.store.requests_of(_key_id(api, "trade"), "execute") == []  # nothing half-written


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"opportunity_id": "spot:NOPE/USD:binance>okx:1"}, "body.opportunity_id"),
        ({"opportunity_id": "spot:BTC/USD:binance>nowhere:1"}, "body.opportunity_id"),
        ({"opportunity_id": "http://169.254.169.254/latest"}, "body.opportunity_id"),  # S11: never fetched
        ({"legs": {"instrument": "NOPE/USD", "buy_venue": "binance", "sell_venue": "okx"}}, "body.legs.instrument"),
        ({"legs": {"instrument": "BTC/USD", "buy_venue": "binance", "sell_venue": "nowhere"}}, "body.legs"),
        ({}, "body.opportunity_id"),
    ],
)
async def test_execute_refuses_unknown_symbols_and_venues_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    r = await execute(api, body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


async def test_max_amount_above_the_max_order_notional_is_refused(api: Api) -> None:
    a = oid("BTC/USD", "binance", "okx")
    await publish(api, event(a))  # vwap_buy 100,000: 0.5 BTC is 50,000 USD, the cap is 1,000
    r = await execute(api, {"opportunity_id": a, "max_amount": "0.5"})
    assert r.status_code == 422
    assert "body.max_amount" in r.json()["detail"]
    assert "max_order_notional" in r.json()["detail"]


async def test_execute_without_a_trading_process_is_503_and_the_same_key_replays_that_answer(api_factory: Any) -> None:
    async with api_factory(execute_wait_s=0.3) as api:
        a = oid("BTC/USD", "binance", "okx")
        first = await execute(api, {"opportunity_id": a}, key="same")
        assert first.status_code == 503
        assert "no `arb run` took the request" in first.json()["detail"]
        again = await execute(api, {"opportunity_id": a}, key="same")
        assert again.status_code == 503
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        other = await execute(api, {"opportunity_id": a, "max_amount": "0.001"}, key="same")
        assert other.status_code == 422
        assert "Idempotency-Key" in other.json()["detail"]
        missing = await api.client.post(
            "/api/v1/arbitrage/execute", json={"opportunity_id": a}, headers=api.auth("trade")
        )
        assert missing.status_code == 422
        assert "Idempotency-Key" in missing.json()["detail"]
        assert len(await api.app.state.arb.store.requests_of(_key_id(api, "trade"), "execute")) == 1


async def test_the_kill_switch_blocks_execute_until_released(api_factory: Any) -> None:
    async with api_factory(execute_wait_s=0.3) as api:
        r = await api.client.post(
            "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "venue incident"}, headers=api.auth("admin")
        )
        assert r.status_code == 200
        assert r.json()["state"] == "halted"
        assert r.json()["kill_switch"] is True
        assert r.json()["actor"].startswith("api:")
        blocked = await execute(api, {"opportunity_id": oid("BTC/USD", "binance", "okx")}, key="ks")
        assert blocked.status_code == 409
        assert "kill switch is engaged (venue incident" in blocked.json()["detail"]
        metrics = (await api.client.get("/api/v1/risk/metrics", headers=api.auth("read"))).json()
        assert metrics["state"] == "halted"
        assert metrics["limits"]["max_drawdown"] == 0.05
        r = await api.client.post(
            "/api/v1/risk/kill-switch", json={"engaged": False, "reason": "resolved"}, headers=api.auth("admin")
        )
        assert r.json()["state"] == "active"
        after = await execute(api, {"opportunity_id": oid("BTC/USD", "binance", "okx")}, key="ks")
        assert after.status_code == 503  # past the switch: on to the (absent) trading process


# --- S3: other principals' resources --------------------------------------------------------------------------------


def _key_id(api: Api, scope: str) -> str:
    return api.keys[scope].split("_")[1]


async def test_another_keys_execution_and_backtest_job_are_not_found(api: Api) -> None:
    store = api.app.state.arb.store
    other_rec, other = await store.create_key("other", {"trade"})
    rec, _ = await store.begin_request(other_rec.id, "execute", "x", "h", resource_id="ex-other", status="done")
    job, _ = await store.begin_request(
        other_rec.id, "backtest", "y", "h", resource_id="0123456789abcdef", status="done"
    )
    for path in ("/api/v1/arbitrage/executions/ex-other", "/api/v1/backtest/0123456789abcdef"):
        r = await api.client.get(path, headers=api.auth("trade"))
        assert r.status_code == 404, path
        assert "ex-other" not in r.text or "no execution" in r.text
    await store.finish_request(
        job.id,
        status="done",
        result={
            "job_id": "0123456789abcdef",
            "type": "arbitrage",
            "status": "done",
            "progress": 1.0,
            "result": {"executed": 1},
            "error": None,
        },
    )
    api.app.state.keys._loaded_at = -1e18
    mine = await api.client.get("/api/v1/backtest/0123456789abcdef", headers={"X-API-Key": other})
    assert mine.status_code == 200
    assert mine.json()["result"] == {"executed": 1}
    assert rec.key_id == other_rec.id


# --- S6: rate limit -------------------------------------------------------------------------------------------------


async def test_a_flood_on_one_key_is_429_with_retry_after_and_other_keys_are_served(api_factory: Any) -> None:
    async with api_factory(rate_limit_per_s=1.0, rate_limit_burst=5) as api:
        codes = [(await api.client.get("/api/v1/venues", headers=api.auth("read"))).status_code for _ in range(8)]
        assert codes[:5] == [200] * 5
        assert codes[5:] == [429] * 3
        r = await api.client.get("/api/v1/venues", headers=api.auth("read"))
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert (await api.client.get("/api/v1/venues", headers=api.auth("admin"))).status_code == 200


# --- S8: secrets ----------------------------------------------------------------------------------------------------


async def test_no_key_or_database_password_appears_in_responses_or_logs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.keys["admin"]
    secret = token.split("_", 2)[2]
    with caplog.at_level(logging.DEBUG):
        bodies = []
        for method, path in v1_routes(api):
            r = await api.client.request(method, path, headers=api.auth("admin") | {"Idempotency-Key": "s8"}, json={})
            bodies.append(r.text)
        bodies.append((await api.client.get("/openapi.json")).text)
    assert all(secret not in b for b in bodies)
    assert secret not in caplog.text
    assert "ledger.db" not in "".join(bodies) or "sqlite" not in "".join(bodies)


# --- S9: CORS -------------------------------------------------------------------------------------------------------


async def test_cors_is_off_unless_configured_and_answers_only_listed_origins(api_factory: Any) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    async with api_factory() as api:
        r = await api.client.options("/api/v1/venues", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await api.client.get("/api/v1/venues", headers=api.auth("read") | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    async with api_factory(cors_origins=["https://desk.example"]) as api:
        ok = await api.client.get("/api/v1/venues", headers=api.auth("read") | {"Origin": "https://desk.example"})
        assert ok.headers["access-control-allow-origin"] == "https://desk.example"
        bad = await api.client.get("/api/v1/venues", headers=api.auth("read") | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


@pytest.mark.parametrize("origin", ["*", "https://*.example.com", "https://desk.example/path", "desk.example"])
def test_a_wildcard_or_malformed_cors_origin_is_refused_at_load(origin: str) -> None:
    with pytest.raises(ValidationError, match=r"api\.cors_origins"):
        ApiSettings(cors_origins=[origin], cors_allow_credentials=True)


# --- health, venues, portfolio, risk, signals -------------------------------------------------------------------------


async def test_health_says_ready_but_degraded_when_no_venue_streams(api: Api) -> None:
    r = await api.client.get("/api/v1/monitoring/health", headers=api.auth("read"))
    assert r.status_code == 200
    h = r.json()
    assert h["ready"] is True
    assert h["status"] == "degraded"
    assert h["checks"]["redis"]["ok"]
    assert h["checks"]["database"]["ok"]
    assert h["venues_connected"] == 0
    assert h["venues_required"] == 15
    assert h["instruments_covered"] == 0
    assert h["instruments_required"] == 300
    venues = (await api.client.get("/api/v1/venues", headers=api.auth("read"))).json()
    assert {v["venue"] for v in venues} == set(api.settings.venues)
    assert all(v["state"] == "absent" and not v["connected"] for v in venues)


async def test_portfolio_needs_a_live_trader_snapshot_and_then_shows_it(api: Api) -> None:
    r = await api.client.get("/api/v1/portfolio/status", headers=api.auth("read"))
    assert r.status_code == 503
    assert "arb run" in r.json()["detail"]
    now = time.time_ns()
    snap = TraderSnapshot(
        ts_ns=now,
        started_ns=now - 10**9,
        mode="paper",
        start_equity_usd=200_000.0,
        balances=[
            BalanceLine(venue="binance", asset="BTC", total="1.5", reserved="0.1", usd=150_000.0),
            BalanceLine(venue="okx", asset="USDT", total="50000", reserved="0", usd=50_000.0),
        ],
        exposure_usd={"BTC": 120.0},
        venue_notional_usd={},
        equity_usd=200_100.0,
        peak_equity_usd=200_100.0,
        drawdown=0.0,
        realized_pnl_today_usd=0.0,
        executions_in_flight=0,
        venue_state={"binance": "connected"},
    )
    await publish_snapshot(api.app.state.arb.grid, snap)
    body = (await api.client.get("/api/v1/portfolio/status", headers=api.auth("read"))).json()
    assert body["balances"][0] == {
        "venue": "binance",
        "asset": "BTC",
        "total": "1.5",
        "reserved": "0.1",
        "usd": 150000.0,
    }
    assert body["gross_exposure_usd"] == 120.0
    assert body["equity_usd"] == 200_100.0
    assert body["unrealized_pnl_usd"] == pytest.approx(100.0)  # equity change with nothing realized
    assert body["realized_pnl_usd"] == "0"


async def test_signals_come_from_the_ledger_newest_bar_first_and_filter_by_asset(api: Api) -> None:
    assert (await api.client.get("/api/v1/strategy/signals", headers=api.auth("read"))).json() == {"signals": []}
    hour = 3_600 * 10**9
    rows = [
        SignalRecord(
            asset=asset, bar_ns=bar * hour, model_id="ppo-x", direction=d, confidence=0.7, sentiment=0.1,
            agent_target=float(d), price=100.0, atr=2.0, size=1.0 if d else 0.0, notional_usd=100.0 if d else 0.0,
            stop=96.0 if d else None, take_profit=106.0 if d else None, reason="sized" if d else "flat",
        )
        for asset, bar, d in (("BTC/USD", 1, 1), ("ETH/USD", 2, 0), ("BTC/USD", 3, -1))
    ]  # fmt: skip
    await StrategyStore(api.app.state.arb.ledger).record_signals(rows)

    r = await api.client.get("/api/v1/strategy/signals", headers=api.auth("read"))
    assert r.status_code == 200
    assert [(x["asset"], x["bar_ns"] // hour, x["direction"]) for x in r.json()["signals"]] == [
        ("BTC/USD", 3, -1),
        ("ETH/USD", 2, 0),
        ("BTC/USD", 1, 1),
    ]
    r = await api.client.get("/api/v1/strategy/signals?asset=ETH/USD&limit=5", headers=api.auth("read"))
    assert [x["reason"] for x in r.json()["signals"]] == ["flat"]
    r = await api.client.get("/api/v1/strategy/signals?asset=NOPE/USD", headers=api.auth("read"))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "query.asset", "message": "unknown instrument"}]


# --- backtest -------------------------------------------------------------------------------------------------------


async def test_a_backtest_job_runs_the_replay_and_reports_progress_and_result(api: Api, tmp_path: Path) -> None:
    write_tape(tmp_path / "tapes" / "tiny", api.settings)
    r = await api.client.post(
        "/api/v1/backtest/run",
        json={"type": "arbitrage", "tape": "tiny", "latency_ms": [0, 200]},
        headers=api.auth("trade"),
    )
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    deadline = time.monotonic() + 50
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = (await api.client.get(f"/api/v1/backtest/{job}", headers=api.auth("trade"))).json()
        if body["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.3)
    assert body["status"] == "done", body
    assert body["progress"] == 1.0
    assert body["result"]["opportunities"] == 1
    assert body["result"]["executed"] >= 1
    assert len(body["result"]["latencies"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"type": "arbitrage", "tape": "missing"}, 422, "body.tape"),
        ({"type": "arbitrage", "tape": "../../etc"}, 422, "body.tape"),
        ({"type": "arbitrage", "tape": "http://10.0.0.1/tape"}, 422, "body.tape"),  # S11
        ({"type": "arbitrage", "tape": "tiny", "latency_ms": [0.0] * 17}, 422, "body.latency_ms"),  # S7
        (
            {"type": "arbitrage", "tape": "tiny", "latency_ms": [0.0] * 5},
            422,
            "body.latency_ms",
        ),  # above the server's 4
        ({"type": "arbitrage", "tape": "tiny", "latency_ms": [math.inf]}, 422, "body.latency_ms"),
        ({"type": "arbitrage", "tape": "tiny", "start": "2020-01-01"}, 422, "body.start"),
    ],
)
async def test_a_backtest_request_naming_a_bad_tape_or_too_much_work_is_refused(
    api: Api, tmp_path: Path, body: dict[str, Any], status: int, field: str
) -> None:
    write_tape(tmp_path / "tapes" / "tiny", api.settings)
    raw = msgspec.json.encode(body) if math.inf not in body.get("latency_ms", []) else INF_LATENCY
    headers = api.auth("trade") | {"content-type": "application/json"}
    r = await api.client.post("/api/v1/backtest/run", content=raw, headers=headers)
    assert r.status_code == status, r.text
    assert field in r.json()["detail"]
    assert api.app.state.arb.jobs.running == {}
