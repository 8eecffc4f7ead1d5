"""1H candles for the directional layer: fetch (ccxt, paginated), store (Parquet), load any OHLCV file, clean.

Bars (the data contract every directional module codes against): a DataFrame indexed by the bar OPEN time, a
`DatetimeIndex` named `ts` in `datetime64[ns, UTC]` (so `index.asi8` is epoch ns, as every time in arb is; pandas 3
would otherwise default to microseconds), strictly increasing and hourly with no gaps; float64 `open, high, low,
close, volume`; bool `filled` (a bar synthesised for an hour the source had none: OHLC = the previous close, volume 0)
and bool `clipped` (a spike clipped, below).

Why Parquet files and not the SQL ledger: candles are a dense, append-mostly numeric time series read whole by
backtests, training and walk-forward (tens of thousands of rows per asset, for 100 assets). A columnar, typed file
reloads straight into float64 arrays through pyarrow in milliseconds, keeps the UTC timestamps exact, compresses
well, and any pandas/pyarrow/polars/DuckDB user can open it; as SQL rows the same data would cost a query, a row ->
object -> array conversion and a much bigger database for no gain (nothing joins candles with orders). The ledger
keeps what is booked and audited (signals, models); one Parquet file per (venue, instrument) holds the market data.

What the store keeps is the venue's data as fetched (closed bars only, checked row by row before they are written);
`CandleStore.read` cleans it on the way out. So a change of cleaning rule never needs a refetch, and a spike clipped
today is not baked into the history the next clip is judged against.

Cleaning (`clean`) is causal everywhere, so features computed from cleaned bars stay look-ahead free: a cleaned bar
depends only on itself and earlier bars (no centered windows, no back-fill).

* Times in UTC; sorted; duplicate times dropped, the LAST row for a time winning (a re-fetched bar replaces the
  earlier copy of it).
* A row with a non-finite or non-positive price, a negative or non-finite volume, or prices that violate OHLC
  (high below max(open, close), low above min(open, close)) is an error naming its time and column: bad source data is
  never silently repaired. So are times that are not whole hours, and data that is not hourly at all.
* Gaps are filled hour by hour with flat bars at the previous close, volume 0, `filled=True`.
* Spikes: each bar's prices are compared with the previous (cleaned) close. Where one lies further than `spike_sigma`
  robust sigmas away (in log terms), all four prices are clamped into that band and the bar is `clipped=True`. The
  robust sigma at bar t is 1.4826 x the median of |log return| over the `SPIKE_WINDOW` bars before t (filled bars
  excluded; at least `SPIKE_MIN_RETURNS` of them, else no clipping yet). That is the median absolute deviation about
  zero rather than about the window median: hourly returns have a mean far below their spread, and taking the centre
  as 0 makes it one rolling median, which runs in C; the bar itself is left out so a spike cannot widen its own band.
  A genuine jump is therefore followed up by the band, one clipped bar at a time; `spike_sigma` (default 10) is
  wide enough that this is rare.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import numpy as np
import pandas as pd

from arb.config.schema import CFD_ASSET_CLASSES, Settings, VenueConfig

log = logging.getLogger(__name__)

TIMEFRAME: Final = "1h"
BAR_MS: Final = 3_600_000
BAR_NS: Final = BAR_MS * 1_000_000
PRICES: Final = ("open", "high", "low", "close")
OHLCV: Final = (*PRICES, "volume")
TIME_COLUMNS: Final = ("ts", "timestamp", "time", "date", "datetime", "open_time")
"""Column names (any case) `load_bars` takes the bar time from, in this order of preference."""
SPIKE_WINDOW: Final = 168
"""Bars (one week) the robust sigma of the spike rule is measured over."""
SPIKE_MIN_RETURNS: Final = 24
"""Returns (of non-filled bars) that window must hold before the spike rule applies."""
MAD_TO_SIGMA: Final = 1.4826
"""Median absolute deviation -> standard deviation for normally distributed returns."""
DEFAULT_ASSETS: Final = 100

OnPage = Callable[[int, int], None]
"""on_page(bars fetched so far, bars expected in the whole range)."""
OnProgress = Callable[[str, int, int], None]
"""on_progress(asset, bars fetched so far for it, bars expected for it)."""


# --- cleaning -------------------------------------------------------------------------------------------------------


def clean(raw: pd.DataFrame, *, spike_sigma: float = 10.0) -> pd.DataFrame:
    """Bars (module docstring) from raw OHLCV rows indexed by bar open time (naive times are UTC).

    Raises ValueError naming the time and column of the first bad row (see the module docstring for the rules)."""
    if not (math.isfinite(spike_sigma) and spike_sigma > 1):
        raise ValueError(f"spike_sigma must be a finite number above 1, got {spike_sigma}")
    frame = _checked(raw)
    if len(frame) >= 3:  # two bars alone cannot tell hourly data with a gap from daily data
        closest = int(np.diff(frame.index.asi8).min())
        if closest != BAR_NS:
            raise ValueError(
                f"bars are not hourly: the closest two are {pd.Timedelta(closest, unit='ns')} apart "
                f"(first at {frame.index[0].isoformat()})"
            )
    if frame.empty:
        return _bars(frame.index, *(frame[c].to_numpy() for c in OHLCV), np.zeros(0, bool), np.zeros(0, bool))
    full = pd.date_range(frame.index[0], frame.index[-1], freq=pd.Timedelta(BAR_NS, unit="ns"), name="ts")
    full = full.as_unit("ns")
    real = frame.reindex(full)
    filled = real["close"].isna().to_numpy()
    closes = real["close"].ffill().to_numpy()
    returns = np.empty(len(full))
    returns[0] = np.nan
    np.log(closes[1:] / closes[:-1], out=returns[1:])
    returns[filled] = np.nan
    sigma = pd.Series(np.abs(returns)).rolling(SPIKE_WINDOW, min_periods=SPIKE_MIN_RETURNS).median().shift(1).to_numpy()
    band = spike_sigma * MAD_TO_SIGMA * sigma
    o, h, lo, c, v, clipped = _fill_and_clip(real, filled, band)
    return _bars(full, o, h, lo, c, v, filled, clipped)


def _fill_and_clip(
    real: pd.DataFrame, filled: np.ndarray, band: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One causal pass: a filled bar copies the previous cleaned close, a spike is clamped into the band around it.

    A loop because each bar's band is centred on the previous bar's *cleaned* close (plain floats: ~1 µs a bar)."""
    o, h, lo, c = (real[col].tolist() for col in PRICES)
    v = np.nan_to_num(real["volume"].to_numpy(), nan=0.0)
    width = band.tolist()
    gap = filled.tolist()
    clipped = [False] * len(c)
    prev = c[0]
    for i in range(1, len(c)):
        if gap[i]:
            o[i] = h[i] = lo[i] = c[i] = prev
            continue
        b = width[i]
        if b > 0:  # NaN (not enough history yet) compares False
            floor, cap = prev * math.exp(-b), prev * math.exp(b)
            if h[i] > cap or lo[i] < floor:  # low <= open, close <= high: checking the extremes is enough
                o[i], h[i], lo[i], c[i] = (min(max(x, floor), cap) for x in (o[i], h[i], lo[i], c[i]))
                clipped[i] = True
        prev = c[i]
    return np.array(o), np.array(h), np.array(lo), np.array(c), v, np.array(clipped, dtype=bool)


def _bars(index: pd.DatetimeIndex, *columns: np.ndarray) -> pd.DataFrame:
    names = (*OHLCV, "filled", "clipped")
    data = {
        n: np.asarray(col, dtype=bool if n in ("filled", "clipped") else np.float64)
        for n, col in zip(names, columns, strict=True)
    }
    # freq=None: the same index whether it came from date_range (here) or a file, so frames compare equal.
    return pd.DataFrame(data, index=pd.DatetimeIndex(index, name="ts", freq=None).as_unit("ns"))


def _checked(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw rows in UTC, sorted, deduplicated (last wins), float64, each row checked; no gaps filled."""
    if not isinstance(raw, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(raw).__name__}")
    if not isinstance(raw.index, pd.DatetimeIndex):
        raise ValueError(f"bars need a DatetimeIndex of bar open times, got {type(raw.index).__name__}")
    missing = [c for c in OHLCV if c not in raw.columns]
    if missing:
        raise ValueError(f"bars are missing the column(s) {', '.join(missing)}")
    index = raw.index
    if index.hasnans:
        raise ValueError(f"bar time missing (NaT) in row {int(np.flatnonzero(index.isna())[0])}")
    index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")
    frame = pd.DataFrame({c: _floats(raw[c], c) for c in OHLCV}, index=pd.DatetimeIndex(index, name="ts"))
    frame = frame.sort_index(kind="stable")
    frame = frame[~frame.index.duplicated(keep="last")]
    off_grid = frame.index.asi8 % BAR_NS != 0
    if off_grid.any():
        raise ValueError(f"bar {frame.index[off_grid.argmax()].isoformat()}: time is not a whole hour")
    _check_values(frame)
    return frame


def _floats(column: pd.Series, name: str) -> np.ndarray:
    try:
        values: np.ndarray = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"column {name}: not numeric ({exc})") from None
    return values


def _check_values(frame: pd.DataFrame) -> None:
    for col in OHLCV:
        x = frame[col].to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | ((x < 0) if col == "volume" else (x <= 0))
        if bad.any():
            i = int(bad.argmax())
            what = "a finite volume >= 0" if col == "volume" else "a finite price > 0"
            raise ValueError(f"bar {frame.index[i].isoformat()}: {col} = {float(x[i])!r} is not {what}")
    o, h, lo, c = (frame[col].to_numpy() for col in PRICES)
    rules = (
        ("high", h < np.maximum(o, c), "below max(open, close)"),
        ("low", lo > np.minimum(o, c), "above min(open, close)"),
    )
    for col, bad, why in rules:
        if bad.any():
            i = int(bad.argmax())
            row = ", ".join(f"{k}={float(frame[k].iat[i])!r}" for k in PRICES)
            raise ValueError(f"bar {frame.index[i].isoformat()}: {col} is {why} ({row})")


# --- loading any OHLCV file ---------------------------------------------------------------------------------------


def load_bars(path: str | Path, *, spike_sigma: float = 10.0) -> pd.DataFrame:
    """Cleaned bars from a CSV or Parquet OHLCV file (any asset class), chosen by the file's suffix.

    Column names are matched in any case (`Open`, `HIGH`, ...). The bar time comes from the first column named one of
    `TIME_COLUMNS` (a `date` plus a `time` column, as MetaTrader exports, are joined), else from a DatetimeIndex
    (Parquet). Times may be epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude), ISO
    strings or datetimes; naive times are UTC. `volume` may be missing (FX and CFD data often has none): it is then 0,
    which makes the volume z-score feature 0 too. Errors name the file and what is wrong."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(p)
    elif suffix in (".parquet", ".pq"):
        table = pd.read_parquet(p)
    else:
        raise ValueError(f"{p}: unsupported file type {suffix or '(no suffix)'!r}: bars load from .csv or .parquet")
    try:
        raw = _raw_from_table(table)
        return clean(raw, spike_sigma=spike_sigma)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def _raw_from_table(table: pd.DataFrame) -> pd.DataFrame:
    by_name: dict[str, Any] = {}
    for col in table.columns:
        key = str(col).strip().lower()
        if key in by_name:
            raise ValueError(f"columns {by_name[key]!r} and {col!r} differ only in case")
        by_name[key] = col
    missing = [c for c in PRICES if c not in by_name]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)} (found {', '.join(map(str, table.columns))})")
    times = _times(table, by_name)
    data = {c: table[by_name[c]].to_numpy() for c in PRICES}
    data["volume"] = table[by_name["volume"]].to_numpy() if "volume" in by_name else np.zeros(len(table))
    return pd.DataFrame(data, index=times)


def _times(table: pd.DataFrame, by_name: Mapping[str, Any]) -> pd.DatetimeIndex:
    if "date" in by_name and "time" in by_name and not _is_numeric(table[by_name["date"]]):
        joined = table[by_name["date"]].astype(str) + " " + table[by_name["time"]].astype(str)
        return _parse_times(joined, f"{by_name['date']} + {by_name['time']}")
    for name in TIME_COLUMNS:
        if name in by_name:
            return _parse_times(table[by_name[name]], str(by_name[name]))
    if isinstance(table.index, pd.DatetimeIndex):
        return _parse_times(table.index.to_series(), "the index")
    raise ValueError(f"no bar time: no column named one of {', '.join(TIME_COLUMNS)} and no DatetimeIndex")


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)


def _parse_times(values: pd.Series, where: str) -> pd.DatetimeIndex:
    if values.isna().any():
        raise ValueError(f"{where}: row {int(np.flatnonzero(values.isna().to_numpy())[0])} has no time")
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            parsed = pd.DatetimeIndex(values)
            parsed = parsed.tz_localize("UTC") if parsed.tz is None else parsed.tz_convert("UTC")
        elif _is_numeric(values):
            biggest = float(np.abs(values.to_numpy(dtype=np.float64)).max()) if len(values) else 0.0
            unit = "s" if biggest < 1e11 else "ms" if biggest < 1e14 else "us" if biggest < 1e17 else "ns"
            parsed = pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))
        else:
            parsed = pd.DatetimeIndex(pd.to_datetime(values.astype(str), utc=True))
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{where}: not a time ({exc})") from None
    return parsed.as_unit("ns").rename("ts")


# --- fetching ---------------------------------------------------------------------------------------------------------


async def fetch_ohlcv_range(
    exchange: Any,
    symbol: str,
    since_ms: int,
    until_ms: int,
    *,
    timeframe: str = TIMEFRAME,
    limit: int = 1000,
    on_page: OnPage | None = None,
) -> list[list[float]]:
    """Every candle of `symbol` opening in [since_ms, until_ms), as ccxt rows [ts_ms, open, high, low, close, volume],
    sorted and without duplicates, paging with `since` (`limit` per request; the exchange may cap it lower).

    Stops at `until_ms`, or at a page that brings nothing new (empty, or only candles already had or past the range:
    the venue has no more, or ignores `since`), so it never loops. The exchange must have ccxt's rate limiter on
    (`enableRateLimit`): a long history is hundreds of requests, and without it the venue bans the IP. ccxt errors
    propagate (retrying is the caller's call; `CandleStore.update` keeps every page it got)."""
    rows: list[list[float]] = []
    async for page in _pages(exchange, symbol, since_ms, until_ms, timeframe=timeframe, limit=limit):
        rows.extend(page.rows)
        if on_page is not None:
            on_page(len(rows), page.expected)
    return rows


class _Page:
    __slots__ = ("expected", "rows")

    def __init__(self, rows: list[list[float]], expected: int) -> None:
        self.rows = rows
        self.expected = expected


async def _pages(
    exchange: Any, symbol: str, since_ms: int, until_ms: int, *, timeframe: str, limit: int
) -> AsyncIterator[_Page]:
    if not getattr(exchange, "enableRateLimit", False):
        raise ValueError(f"{getattr(exchange, 'id', exchange)!r}: create the exchange with enableRateLimit=True")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    step = int(exchange.parse_timeframe(timeframe)) * 1000
    cursor = -(-since_ms // step) * step  # the first candle opening at or after since_ms
    expected = max(0, -(-(until_ms - cursor) // step))
    while cursor < until_ms:
        page = await exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit)
        fresh: dict[int, list[float]] = {}
        for row in page or ():
            candle = _candle(row, symbol)
            ts = int(candle[0])
            if cursor <= ts < until_ms:
                fresh[ts] = candle  # within a page, a repeated time: the later row wins
        if not fresh:
            log.debug("candles.page_empty symbol=%s since=%d rows=%d", symbol, cursor, len(page or ()))
            return
        ordered = [fresh[ts] for ts in sorted(fresh)]
        cursor = int(ordered[-1][0]) + step
        yield _Page(ordered, expected)


def _candle(row: Any, symbol: str) -> list[float]:
    try:
        ts, o, h, lo, c, v = row[:6]
        return [int(ts), float(o), float(h), float(lo), float(c), float(v)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{symbol}: malformed OHLCV row {row!r} ({exc})") from None


# --- the store --------------------------------------------------------------------------------------------------------


def _safe_name(name: str, what: str) -> str:
    """A file name that maps back to exactly one id (`BTC/USD` -> `BTC%2FUSD`); never `.`, `..` or hidden."""
    if not name:
        raise ValueError(f"{what} must not be empty")
    q = quote(name, safe="")
    return "%2E" + q[1:] if q.startswith(".") else q


class CandleStore:
    """One Parquet file of raw closed 1H candles per (venue, instrument) under `root` (module docstring: why).

    `read` returns cleaned bars; `update` appends what the venue has after the last stored candle."""

    def __init__(self, root: str | Path, *, spike_sigma: float = 10.0) -> None:
        self.root = Path(root)
        self.spike_sigma = spike_sigma

    def path(self, venue: str, instrument: str) -> Path:
        return self.root / _safe_name(venue, "venue") / f"{_safe_name(instrument, 'instrument')}.parquet"

    def read_raw(self, venue: str, instrument: str) -> pd.DataFrame | None:
        """The stored candles as fetched (OHLCV, no filled bars), or None if nothing is stored."""
        path = self.path(venue, instrument)
        if not path.exists():
            return None
        frame = pd.read_parquet(path)
        frame.index = pd.DatetimeIndex(frame.index, name="ts").as_unit("ns")
        return frame

    def read(self, venue: str, instrument: str) -> pd.DataFrame | None:
        """Cleaned bars (module docstring), or None if nothing is stored."""
        raw = self.read_raw(venue, instrument)
        return None if raw is None else clean(raw, spike_sigma=self.spike_sigma)

    async def update(
        self,
        exchange: Any,
        venue: str,
        instrument: str,
        symbol: str,
        *,
        history_days: int,
        page_limit: int,
        now_ms: int | None = None,
        on_page: OnPage | None = None,
    ) -> int:
        """Fetch the closed candles after the last stored one (or `history_days` back, on a first fetch) up to
        `now_ms`, writing after every page, and return how many were added.

        The bar still open at `now_ms` is never stored (its prices are not final). Each page is checked (`clean`'s
        row rules) before it is written, so a bad row from the venue raises ValueError and leaves the file as it was;
        an error part-way keeps the pages already written, and the next update resumes after them."""
        if history_days < 1:
            raise ValueError(f"history_days must be at least 1, got {history_days}")
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        until = now - now % BAR_MS  # the open time of the bar still forming
        stored = self.read_raw(venue, instrument)
        if stored is not None and len(stored):
            since = int(stored.index.asi8[-1] // 1_000_000) + BAR_MS
        else:
            since = until - history_days * 24 * BAR_MS
        if since >= until:
            return 0
        path = self.path(venue, instrument)
        added = 0
        async for page in _pages(exchange, symbol, since, until, timeframe=TIMEFRAME, limit=page_limit):
            frame = _checked(_frame_of(page.rows))
            stored = frame if stored is None else pd.concat([stored, frame])
            _write_atomically(stored, path)
            added += len(frame)
            if on_page is not None:
                on_page(added, page.expected)
        if added:
            log.info(
                "candles.updated venue=%s instrument=%s symbol=%s added=%d last=%s",
                venue, instrument, symbol, added, stored.index[-1].isoformat() if stored is not None else "-",
            )  # fmt: skip
        return added


def _frame_of(rows: Sequence[Sequence[float]]) -> pd.DataFrame:
    array = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    index = pd.DatetimeIndex(pd.to_datetime(array[:, 0].astype(np.int64), unit="ms", utc=True), name="ts")
    return pd.DataFrame(dict(zip(OHLCV, array[:, 1:].T, strict=True)), index=index.as_unit("ns"))


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, engine="pyarrow", index=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- assets and the configured venue --------------------------------------------------------------------------------


def default_assets(settings: Settings) -> list[str]:
    """`strategy.candles.assets` when set; else the first `DEFAULT_ASSETS` (100) crypto spot instruments of
    instruments.yaml (ordered by market cap) that the candle venue lists, one per base currency (BTC/USD, not BTC/USD
    and BTC/EUR too)."""
    if settings.strategy.candles.assets:
        return list(settings.strategy.candles.assets)
    venue = settings.strategy.candles.venue
    bases: set[str] = set()
    out: list[str] = []
    for iid, inst in settings.instruments.items():
        if inst.asset_class.startswith("crypto") and inst.type == "spot" and venue in inst.venues:
            if inst.base not in bases:
                bases.add(inst.base)
                out.append(iid)
                if len(out) == DEFAULT_ASSETS:
                    break
    return out


def _candle_venue(settings: Settings) -> tuple[str, VenueConfig]:
    vid = settings.strategy.candles.venue
    venue = settings.venues.get(vid)
    if venue is None or venue.kind != "cex" or not venue.ccxt_id:
        raise ValueError(f"strategy.candles.venue {vid!r} is not a configured ccxt (cex) venue")
    return vid, venue


def _cfd_venue(settings: Settings) -> tuple[str, VenueConfig]:
    vid = settings.strategy.candles.cfd_venue
    venue = None if vid is None else settings.venues.get(vid)
    if vid is None or venue is None or venue.kind != "cfd":
        raise ValueError(f"strategy.candles.cfd_venue {vid!r} is not a configured CFD venue")
    return vid, venue


def venue_routes(settings: Settings, assets: Sequence[str]) -> dict[str, dict[str, str]]:
    """Venue id -> {instrument id -> that venue's symbol}: fx / commodity / index assets go to
    `strategy.candles.cfd_venue`, the others (crypto) to `strategy.candles.venue`. An unknown instrument, one its
    venue does not list, or a CFD asset with no cfd_venue configured is a ValueError naming every such asset."""
    cfg = settings.strategy.candles
    routes: dict[str, dict[str, str]] = {}
    problems = []
    for asset in assets:
        inst = settings.instruments.get(asset)
        if inst is None:
            problems.append(f"{asset!r} is not a configured instrument")
            continue
        vid = cfg.cfd_venue if inst.asset_class in CFD_ASSET_CLASSES else cfg.venue
        if vid is None:
            problems.append(f"{asset!r} is {inst.asset_class}: set strategy.candles.cfd_venue to fetch its candles")
        elif vid not in inst.venues:
            problems.append(f"{asset!r} is not listed on {vid} (instruments.yaml)")
        else:
            routes.setdefault(vid, {})[asset] = inst.venues[vid]
    if problems:
        raise ValueError("; ".join(problems))
    return routes


def venue_symbols(settings: Settings, assets: Sequence[str]) -> dict[str, str]:
    """Instrument id -> the symbol of the venue its candles come from (`venue_routes`, same errors)."""
    return {a: s for symbols in venue_routes(settings, assets).values() for a, s in symbols.items()}


def _open_exchange(vid: str, venue: VenueConfig) -> Any:
    """The venue's ccxt REST class, rate limiter on, pointed at `urls:` when the venue config has them (the same
    override the connectors apply)."""
    from arb.connectors.ccxt_pro import LocalEndpoint
    from arb.connectors.polling import rest_exchange
    from arb.connectors.wallets import ccxt_rest_factory

    endpoint = LocalEndpoint(venue.urls["http"], venue.urls["ws"]) if venue.urls else None
    config: dict[str, Any] = {"enableRateLimit": True, "options": {"fetchCurrencies": False}}
    return rest_exchange(ccxt_rest_factory, str(venue.ccxt_id), config, endpoint)


Source = Callable[[], AbstractAsyncContextManager[Any]]
"""Opens one venue's candle source (a ccxt exchange, or the Capital.com adapter) and closes it at the end."""


def _ccxt_source(vid: str, venue: VenueConfig) -> Source:
    @asynccontextmanager
    async def source() -> AsyncIterator[Any]:
        from arb.connectors.polling import close_shielded

        exchange = _open_exchange(vid, venue)
        try:
            yield exchange
        finally:
            await close_shielded(exchange, f"candles-{vid}-close")

    return source


def _cfd_source(settings: Settings, vid: str, venue: VenueConfig, epics: Sequence[str]) -> Source:
    """Capital.com (the one CFD connector): credentials from `ARB_<VENUE>_*`, demo URLs in paper mode, live ones in
    live mode (the venue's `urls:`). Both are checked here, before anything is fetched from any venue."""
    from arb.connectors.capital_com import CapitalComClient, CapitalComCredentials, endpoint_from_config
    from arb.connectors.capital_com.candles import CapitalComCandles
    from arb.connectors.wallets import env_name

    credentials = CapitalComCredentials.from_env(vid)
    if credentials is None:
        names = ", ".join(env_name(vid, w) for w in ("API_KEY", "IDENTIFIER", "PASSWORD"))
        raise ValueError(f"{vid}: no credentials to fetch candles with: set {names}")
    endpoint = endpoint_from_config(venue, live=settings.mode == "live")

    @asynccontextmanager
    async def source() -> AsyncIterator[Any]:
        async with CapitalComClient(endpoint, credentials, venue=vid) as client:
            yield CapitalComCandles(client, epics)

    return source


async def fetch_assets(
    settings: Settings, assets: Sequence[str], *, on_progress: OnProgress | None = None
) -> dict[str, int]:
    """Update the stored candles of `assets` (`settings.strategy.candles`): crypto from the candle venue, fx /
    commodity / index from the CFD venue (`venue_routes`), one asset after the other through one rate-limited
    source per venue (closed at the end, whatever happens); returns bars added per asset, in the order asked.

    An asset unknown or not mapped to its venue in the settings, or a venue that cannot be opened (no CFD
    credentials), is a ValueError before anything is fetched. A symbol the venue's live markets do not list is
    skipped with a warning and left out of the result (instruments.yaml is a curated snapshot; the connectors do the
    same). A venue error stops the run; what was stored stays, and the next run resumes there.
    `on_progress(asset, fetched, expected)` after every page."""
    cfg = settings.strategy.candles
    wanted = list(dict.fromkeys(assets))
    routes = venue_routes(settings, wanted)
    sources: dict[str, Source] = {}
    for vid, symbols in routes.items():
        if vid == cfg.venue:
            sources[vid] = _ccxt_source(*_candle_venue(settings))
        else:
            cfd, venue = _cfd_venue(settings)
            sources[vid] = _cfd_source(settings, cfd, venue, list(symbols.values()))
    store = CandleStore(cfg.data_dir, spike_sigma=cfg.spike_sigma)
    added: dict[str, int] = {}
    for vid, symbols in routes.items():
        async with sources[vid]() as exchange:
            await exchange.load_markets()
            for asset, symbol in symbols.items():
                if symbol not in exchange.markets:
                    log.warning("candles.symbol_not_listed venue=%s asset=%s symbol=%s", vid, asset, symbol)
                    continue
                progress = None if on_progress is None else _progress_of(on_progress, asset)
                added[asset] = await store.update(
                    exchange, vid, asset, symbol, history_days=cfg.history_days, page_limit=cfg.page_limit,
                    on_page=progress,
                )  # fmt: skip
    return {a: added[a] for a in wanted if a in added}


def _progress_of(on_progress: OnProgress, asset: str) -> OnPage:
    return lambda fetched, expected: on_progress(asset, fetched, expected)
