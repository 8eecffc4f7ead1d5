"""What the `arb strategy ...` commands do, as plain async functions (the CLI only parses options and prints).

    bars = await bars_for(settings, asset="BTC/USD", data=None)      # stored candles, or any OHLCV file
    model = await train_model(settings, bars, asset="BTC/USD", algo="ppo")
    signals = await signal_once(settings, redis_url, assets=None, model_path=None)

Data: `--data PATH` (a CSV or Parquet file of OHLCV bars, any asset class) or the candles `arb strategy fetch` stored
for an asset. Sentiment for a historical run comes from a JSONL news file (`--news`), scored by the same scorer and
index as live; with none, S(t) is neutral (0).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from arb.config import Settings
from arb.config.schema import SentimentSource
from arb.ledger import open_ledger
from arb.ledger.strategy import ModelRecord, SignalRecord, StrategyStore
from arb.risk.directional import DirectionalBook
from arb.strategy.candles import CandleStore, default_assets, fetch_assets, load_bars
from arb.strategy.features import feature_matrix
from arb.strategy.paper import Bar, PaperBook
from arb.strategy.rl import agents
from arb.strategy.sentiment import (
    NewsItem,
    Scorer,
    ScorerError,
    SourceError,
    fetch_items,
    merge_aliases,
    sentiment_index,
)
from arb.strategy.signals import AssetInput, compute_signals, encode

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 10**9


class StrategyError(RuntimeError):
    """A strategy command cannot go on; the message says why and what to do."""


def store_of(settings: Settings) -> CandleStore:
    return CandleStore(Path(settings.strategy.candles.data_dir), spike_sigma=settings.strategy.candles.spike_sigma)


async def bars_for(settings: Settings, *, asset: str | None, data: str | None) -> tuple[str, pd.DataFrame]:
    """(name, bars) from `--data` or the stored candles of `--asset` (the first default asset when neither)."""
    if data is not None:
        try:
            return Path(data).stem, load_bars(data, spike_sigma=settings.strategy.candles.spike_sigma)
        except (OSError, ValueError) as exc:
            raise StrategyError(f"--data {data}: {exc}") from None
    name = asset or default_assets(settings)[0]
    if name not in settings.instruments:
        raise StrategyError(f"unknown instrument {name!r} (see `arb instruments`)")
    bars = store_of(settings).read(settings.strategy.candles.venue, name)
    if bars is None or bars.empty:
        raise StrategyError(
            f"no stored candles for {name} from {settings.strategy.candles.venue}: run `arb strategy fetch --assets "
            f"{name}` first, or pass --data PATH"
        )
    return name, bars


async def news_sentiment(settings: Settings, bars: pd.DataFrame, asset: str, news: str | None) -> np.ndarray | None:
    """S(t) of `asset` at every bar close from a JSONL news file (None: no file, neutral sentiment)."""
    if news is None:
        return None
    source = SentimentSource(name="news-file", kind="jsonl", url=news)
    try:
        items = await fetch_items(source, aliases=merge_aliases(settings.strategy.sentiment.aliases))
    except SourceError as exc:
        raise StrategyError(f"--news {news}: {exc}") from None
    return _index(settings, _scored(settings, items), asset, bars, {"news-file": 1.0})


def _scored(settings: Settings, items: list[NewsItem]) -> list[NewsItem]:
    try:
        scorer = Scorer(transformer_model=settings.strategy.sentiment.transformer_model)
    except ScorerError as exc:
        raise StrategyError(f"strategy.sentiment.transformer_model: {exc}") from None
    return scorer.score_items(items)


def _index(
    settings: Settings, items: list[NewsItem], asset: str, bars: pd.DataFrame, weights: dict[str, float]
) -> np.ndarray:
    cfg = settings.strategy.sentiment
    base = settings.instruments[asset].base if asset in settings.instruments else asset
    # a decision at bar t is made at its close: the index at the close time (open + 1 h) sees items up to then
    times = bars.index.asi8.astype(np.int64) + 3_600 * 10**9
    return sentiment_index(
        items, base, times, half_life_hours=cfg.half_life_hours, lookback_hours=cfg.lookback_hours, weights=weights
    )


async def live_sentiment(settings: Settings, inputs: dict[str, pd.DataFrame]) -> dict[str, np.ndarray | None]:
    """S(t) per asset from the configured sources (None for all when none is configured)."""
    sources = settings.strategy.sentiment.sources
    if not sources:
        return dict.fromkeys(inputs)
    aliases = merge_aliases(settings.strategy.sentiment.aliases)
    try:
        batches = await asyncio.gather(*(fetch_items(s, aliases=aliases) for s in sources))
    except SourceError as exc:
        raise StrategyError(f"sentiment: {exc}") from None
    items = _scored(settings, [item for batch in batches for item in batch])
    weights = {s.name: s.weight for s in sources}
    return {asset: _index(settings, items, asset, bars, weights) for asset, bars in inputs.items()}


async def train_model(
    settings: Settings,
    bars: pd.DataFrame,
    *,
    name: str,
    algo: str | None = None,
    timesteps: int | None = None,
    sentiment: np.ndarray | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ModelRecord:
    """Train on all of `bars`, save a new model version and record it in the ledger."""
    rl = settings.strategy.rl
    features = feature_matrix(bars, sentiment)
    close, high, low = (bars[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    started = time.perf_counter()
    agent = await asyncio.to_thread(
        agents.train, features, close, high, low, rl, algo=algo, timesteps=timesteps, on_progress=on_progress
    )
    elapsed = time.perf_counter() - started
    data_from, data_to = int(bars.index[0].value), int(bars.index[-1].value)
    meta = {
        "assets": [name],
        "data_from_ns": data_from,
        "data_to_ns": data_to,
        "bars": len(bars),
        "train_seconds": round(elapsed, 3),
    }
    path = agents.save(agent, Path(rl.models_dir), meta=meta)
    record = ModelRecord(
        id=path.name, algo=agent.algo, path=str(path), assets=(name,), data_from_ns=data_from, data_to_ns=data_to,
        config=rl.model_dump(mode="json"), metrics={"train_seconds": round(elapsed, 3), "bars": len(bars)},
    )  # fmt: skip
    async with open_ledger(settings.database_url.get_secret_value()) as ledger:
        return await StrategyStore(ledger).record_model(record)


async def latest_model(settings: Settings, model_path: str | None) -> tuple[str, Any]:
    """(model id, loaded agent): `--model DIR`, else the newest model the ledger recorded."""
    if model_path is None:
        async with open_ledger(settings.database_url.get_secret_value()) as ledger:
            models = await StrategyStore(ledger).models()
        usable = [m for m in models if await asyncio.to_thread(Path(m.path).is_dir)]
        if not usable:
            raise StrategyError("no trained model: run `arb strategy train` first, or pass --model DIR")
        model_path = usable[0].path
    path = Path(model_path)
    try:
        return path.name, agents.load(path)
    except (OSError, ValueError) as exc:
        raise StrategyError(f"--model {model_path}: {exc}") from None


def _with_candles(settings: Settings) -> list[str]:
    """The default assets that have a candle file (checked by name: reading and cleaning each would cost ~30 ms)."""
    candles, venue = store_of(settings), settings.strategy.candles.venue
    return [a for a in default_assets(settings) if candles.path(venue, a).exists()]


def _stored_bars(settings: Settings, assets: list[str]) -> dict[str, pd.DataFrame]:
    store, venue = store_of(settings), settings.strategy.candles.venue
    out = {}
    for asset in assets:
        bars = store.read(venue, asset)
        if bars is None or bars.empty:
            raise StrategyError(f"no stored candles for {asset}: run `arb strategy fetch --assets {asset}` first")
        out[asset] = bars
    return out


async def signal_once(
    settings: Settings,
    *,
    assets: list[str] | None,
    model_path: str | None,
    redis: Any | None,
    paper: bool = True,
) -> list[SignalRecord]:
    """Compute one signal per asset at its last stored bar, store them, publish them, and (paper) act on them."""
    model_id, agent = await latest_model(settings, model_path)
    wanted = assets or _with_candles(settings)
    if not wanted:
        raise StrategyError("no stored candles for any asset: run `arb strategy fetch` first")
    bars = _stored_bars(settings, wanted)
    sentiment = await live_sentiment(settings, bars)
    async with open_ledger(settings.database_url.get_secret_value()) as ledger:
        store = StrategyStore(ledger)
        book = PaperBook(store, rl=settings.strategy.rl, venue=settings.strategy.candles.venue)
        open_now = await book.open_positions()
        if paper:
            for asset, frame in bars.items():
                last = frame.iloc[-1]
                await book.on_bar(asset, Bar(ts_ns=int(frame.index[-1].value), open=float(last["open"]),
                                             high=float(last["high"]), low=float(last["low"]),
                                             close=float(last["close"])))  # fmt: skip
            open_now = await book.open_positions()
        closed = [p for p in await store.positions() if p.closed_ns is not None]
        equity = settings.strategy.equity_usd + sum(float(p.realized_pnl or 0) for p in closed)
        day_start_ns = time.time_ns() // DAY_NS * DAY_NS  # the daily loss stop resets at 00:00 UTC
        today = sum(float(p.realized_pnl or 0) for p in closed if (p.closed_ns or 0) >= day_start_ns)
        dbook = DirectionalBook(
            equity=equity, day_start_equity=equity - today, open_positions=len(open_now),
            open_notional_usd=sum(float(p.amount * p.entry_price) for p in open_now.values()),
        )  # fmt: skip
        inputs = [
            AssetInput(
                asset=a, bars=bars[a], sentiment=sentiment[a],
                position={"buy": 1, "sell": -1}.get(open_now[a].side, 0) if a in open_now else 0,
            )
            for a in wanted
        ]  # fmt: skip
        signals = compute_signals(inputs, agent, model_id=model_id, rules=settings.strategy.risk, book=dbook)
        stored = await store.record_signals(signals)
        if paper:
            state = await ledger.execution().load_trading_state()
            for s in stored:
                await book.apply(s, trading_state="active" if state is None else state.state)
    if redis is not None:
        await publish(redis, settings, stored)
    return stored


async def publish(redis: Any, settings: Settings, signals: list[SignalRecord]) -> None:
    from arb.grid.store import GridKeys

    key = GridKeys.for_prefix(settings.grid.key_prefix).signals
    async with redis.pipeline(transaction=False) as pipe:
        for s in signals:
            pipe.xadd(key, {"s": encode(s)}, maxlen=settings.strategy.stream_maxlen, approximate=True)
        await pipe.execute()


async def fetch(
    settings: Settings, assets: list[str] | None, on_progress: Callable[..., None] | None
) -> dict[str, int]:
    wanted = assets or default_assets(settings)
    return await fetch_assets(settings, wanted, on_progress=on_progress)


def jsonable(value: Any) -> Any:
    """Floats a JSON parser accepts (NaN/inf -> None), through msgspec for Structs."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return jsonable(msgspec.to_builtins(value))
    return value


def _decide_of(agent: Any, features: np.ndarray) -> Callable[[int, float], float]:
    return lambda t, position: float(agent.decide(features, t, position).target)


async def backtest(
    settings: Settings,
    *,
    data: str | None,
    asset: str | None,
    model_path: str | None,
    algo: str | None,
    timesteps: int | None,
    news: str | None,
    out_dir: str | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The agent vs both baselines. With `--model`, over every bar after the warm-up; without, an agent is trained on
    the first `walk_forward.train_bars` bars and judged on the rest only (never on what it trained on)."""
    from arb.backtest import directional, strategy_report
    from arb.strategy.features import WARMUP_BARS

    name, bars = await bars_for(settings, asset=asset, data=data)
    sentiment = await news_sentiment(settings, bars, asset or name, news)
    features = feature_matrix(bars, sentiment)
    rl = settings.strategy.rl
    if model_path is not None:
        _, agent = await latest_model(settings, model_path)
        start = max(WARMUP_BARS, rl.window - 1)
    else:
        split = settings.strategy.walk_forward.train_bars
        if len(bars) < split + 10:
            raise StrategyError(
                f"{len(bars)} bars: training on the first {split} (strategy.walk_forward.train_bars) leaves fewer "
                "than 10 to test on; pass --model or more data"
            )
        close, high, low = (bars[c].to_numpy(np.float64) for c in ("close", "high", "low"))
        agent = await asyncio.to_thread(
            agents.train, features[:split], close[:split], high[:split], low[:split], rl,
            algo=algo, timesteps=timesteps, on_progress=on_progress,
        )  # fmt: skip
        start = split - 1
    try:
        result = await asyncio.to_thread(
            directional.comparison, bars, _decide_of(agent, features), rl, settings.strategy.risk, start=start
        )
    except ValueError as exc:
        raise StrategyError(f"backtest: {exc}") from None
    target = Path(out_dir) if out_dir else Path("reports") / f"backtest-{_slug(name)}"
    paths = await asyncio.to_thread(strategy_report.write, result, target)
    return result.to_dict(), paths


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def walk_forward(
    settings: Settings,
    *,
    data: str | None,
    asset: str | None,
    algo: str | None,
    timesteps: int | None,
    news: str | None,
    out_dir: str | None,
    on_progress: Callable[[Any], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    from arb.backtest import strategy_report
    from arb.backtest import walkforward as wf

    name, bars = await bars_for(settings, asset=asset, data=data)
    sentiment = await news_sentiment(settings, bars, asset or name, news)
    try:
        result = await asyncio.to_thread(
            wf.walk_forward, bars, settings.strategy, sentiment=sentiment, algo=algo, timesteps=timesteps,
            on_progress=on_progress,
        )  # fmt: skip
    except ValueError as exc:
        raise StrategyError(f"walk-forward: {exc}") from None
    target = Path(out_dir) if out_dir else Path("reports") / f"walk-forward-{_slug(name)}"
    paths = await asyncio.to_thread(strategy_report.write, result, target)
    return result.to_dict(), paths


async def signal_with_redis(
    settings: Settings, *, assets: list[str] | None, model_path: str | None, paper: bool
) -> list[SignalRecord]:
    """`signal_once`, publishing to the grid Redis's signal stream when `redis_url` is set (said on stderr when not:
    an unpublished signal is still in the ledger and the API)."""
    if settings.redis_url is None:
        log.warning("strategy.signals_not_published reason=no_redis_url (set ARB_REDIS_URL to publish the stream)")
        return await signal_once(settings, assets=assets, model_path=model_path, redis=None, paper=paper)
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return await signal_once(settings, assets=assets, model_path=model_path, redis=client, paper=paper)
    finally:
        await client.aclose()


async def run_loop(
    settings: Settings,
    *,
    assets: list[str] | None,
    model_path: str | None,
    once: bool,
    on_cycle: Callable[[list[SignalRecord]], None],
) -> None:
    """Every `strategy.signal_interval_s`: fetch new candles, then `signal_with_redis` (stops, signals, paper)."""
    wanted = assets or default_assets(settings)
    while True:
        started = time.monotonic()
        added = await fetch_assets(settings, wanted)
        log.info("strategy.cycle_fetched assets=%d new_bars=%d", len(added), sum(added.values()))
        on_cycle(await signal_with_redis(settings, assets=wanted, model_path=model_path, paper=True))
        if once:
            return
        await asyncio.sleep(max(0.0, settings.strategy.signal_interval_s - (time.monotonic() - started)))


async def tune(
    settings: Settings, *, data: str | None, asset: str | None, trials: int, timesteps: int | None
) -> dict[str, Any]:
    from arb.strategy.rl import tune as tuning

    _, bars = await bars_for(settings, asset=asset, data=data)
    features = feature_matrix(bars, None)
    close, high, low = (bars[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    best: dict[str, Any] = await asyncio.to_thread(
        tuning.tune, features, close, high, low, settings.strategy.rl, n_trials=trials,
        timesteps=timesteps or settings.strategy.rl.total_timesteps,
    )  # fmt: skip
    return best
