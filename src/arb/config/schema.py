"""The shape of arb's configuration: strict, frozen pydantic models.

Strict (`extra="forbid"`) so a typo in a key is an error, not a silently ignored setting; frozen so nothing changes a
loaded config behind the user's back. Cross-references (a symbol mapped to a venue that is not configured, a token
that its chain does not list) are checked in `arb.config.loader`, which knows the file and line of every key.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from arb.model import AssetClass, VenueKind

Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$")]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fees(Strict):
    """Fractions (0.001 = 0.1 %). Negative (rebate) fees are refused: the scanner must never count on a rebate."""

    taker: Fraction
    maker: Fraction


class Token(Strict):
    address: Address
    decimals: Annotated[int, Field(ge=0, le=36)]


class Chain(Strict):
    chain_id: Annotated[int, Field(gt=0)]
    native: Currency
    tokens: dict[str, Token]
    gas_price_gwei: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 20.0
    """Gas price the scanner charges swaps on this chain until a DEX connector reports the live one."""


class OrderRateLimit(Strict):
    """One of a venue's documented order-count limits: at most `count` requests of `actions` in any `window_s`
    seconds, per account or per symbol (`arb.connectors.order_limits` enforces it before anything is sent)."""

    count: Annotated[int, Field(gt=0)]
    window_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    per: Literal["account", "symbol"] = "account"
    """`account`: every order of the API key counts (Binance's ORDERS limits); `symbol`: each instrument has its own
    window (OKX's "User ID + Instrument ID")."""
    actions: Annotated[list[Literal["create", "cancel"]], Field(min_length=1)] = ["create"]
    """What counts against it: new orders, cancels, or both (in one window)."""


class VenueConfig(Strict):
    """One venue. Which fields are required depends on `kind` (checked below)."""

    kind: VenueKind
    name: str
    region: Literal["us", "eu", "asia"]
    fees: Fees
    quote_currencies: Annotated[list[Currency], Field(min_length=1)]
    max_quote_age_ms: Annotated[int, Field(gt=0)] = 2000
    """A quote older than this (by receive time) is stale and never used."""
    latency_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 50.0
    """Seed for the order/ack latency EWMA the scanner's priority score uses."""
    enabled: bool = True
    # kind == "cex"
    ccxt_id: str | None = None
    book_limit: Annotated[int, Field(ge=1, le=5000)] | None = None
    """`limit` for ccxt's watch_order_book: the book depth kept and snapshotted (None: ccxt's default, which for
    Binance is a 1000-level snapshot costing 10x the weight of a 20-level one)."""
    symbols_per_subscribe: Annotated[int, Field(ge=1)] = 100
    """Most symbols one subscribe request may carry (Bybit spot: 10 args); larger universes are chunked."""
    order_rate_limits: list[OrderRateLimit] = []
    """The venue's order-count limits (cex), on top of ccxt's request-weight limiter; empty: ccxt's limiter only."""
    urls: dict[str, str] = {}
    """cfd: the broker's REST/WS base URLs (required). cex (optional): `{http: ..., ws: ...}` points the venue's ccxt
    client at another host, keeping ccxt's paths (a gateway, a proxy, or a local venue serving the exchange's format,
    as the live-mode test does); without it ccxt talks to the exchange's own hosts. dex: `{rpc: http(s) node URL,
    ws: ws(s) URL for newHeads subscriptions, private_rpc: where swaps are sent for MEV protection}` (rpc needed to
    run the venue's connector)."""
    # kind == "dex"
    chain: str | None = None
    protocol: Literal["uniswap_v2", "uniswap_v3"] | None = None
    factory: Address | None = None
    router: Address | None = None
    quoter: Address | None = None
    fee_tiers: list[int] = []
    gas_units_swap: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> VenueConfig:
        required: dict[str, tuple[str, ...]] = {
            "cex": ("ccxt_id",),
            "cfd": ("urls",),
            "dex": ("chain", "protocol", "factory", "router", "gas_units_swap"),
        }
        missing = [f for f in required[self.kind] if not getattr(self, f)]
        if missing:
            raise ValueError(f"a {self.kind} venue needs {', '.join(missing)}")
        foreign = {"cex": ("chain", "factory", "router"), "cfd": ("ccxt_id", "chain"), "dex": ("ccxt_id",)}
        present = [f for f in foreign[self.kind] if getattr(self, f)]
        if present:
            raise ValueError(f"{', '.join(present)} does not apply to a {self.kind} venue")
        if self.kind == "cex" and self.urls:
            _check_endpoint_urls(self.urls)
        if self.kind == "dex" and self.urls:
            _check_dex_urls(self.urls)
        return self


def _check_endpoint_urls(urls: dict[str, str]) -> None:
    if set(urls) != {"http", "ws"}:
        raise ValueError(f"urls of a cex venue must have exactly the keys http and ws, got {sorted(urls)}")
    schemes = {"http": ("http", "https"), "ws": ("ws", "wss")}
    for key, allowed in schemes.items():
        parts = urlsplit(urls[key])
        if parts.scheme not in allowed or not parts.netloc:
            raise ValueError(f"urls.{key} must be an absolute {'/'.join(allowed)} URL, got {urls[key]!r}")


def _check_dex_urls(urls: dict[str, str]) -> None:
    unknown = sorted(set(urls) - {"rpc", "ws", "private_rpc"})
    if unknown:
        raise ValueError(f"urls of a dex venue take the keys rpc, ws and private_rpc, got {unknown}")
    schemes = {"rpc": ("http", "https"), "private_rpc": ("http", "https"), "ws": ("ws", "wss")}
    for key, url in urls.items():
        parts = urlsplit(url)
        if parts.scheme not in schemes[key] or not parts.netloc:
            raise ValueError(f"urls.{key} must be an absolute {'/'.join(schemes[key])} URL, got {url!r}")


class InstrumentConfig(Strict):
    """An economic instrument; `venues` maps venue id -> that venue's symbol.

    Symbols are ccxt unified symbols on CEXs (`BTC/USDT`, `BTC/USDT:USDT`), epics on Capital.com (`EURUSD`),
    token pairs on DEXs (`WETH/USDC`, tokens from the venue chain's token table).
    """

    asset_class: AssetClass
    base: Annotated[str, Field(min_length=1)]
    quote: Currency
    venues: Annotated[dict[str, Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    type: Literal["spot", "perp"] = "spot"
    """`perp`: a linear perpetual (venue symbols `BTC/USDT:USDT`), id by convention `BTC/USDT-PERP`; the scanner's
    basis kind compares it with its `underlying` spot instrument. Cross pairs (`ETH/BTC`) are ordinary spot
    instruments quoted in a crypto currency."""
    underlying: str | None = None
    """The spot instrument a perp tracks (same base and quote; the loader checks it exists and is spot)."""

    @model_validator(mode="after")
    def _underlying_for_perps(self) -> InstrumentConfig:
        if self.type == "perp" and not self.underlying:
            raise ValueError("a perp instrument needs `underlying`: the spot instrument it tracks")
        if self.type == "spot" and self.underlying is not None:
            raise ValueError("`underlying` applies only to type: perp")
        return self


class Thresholds(Strict):
    min_net_spread: Fraction = 0.001
    max_slippage: Fraction = 0.0005
    min_volume_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1000.0
    execution_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    max_latency_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 100.0


class ScannerSettings(Strict):
    """How the scanner sizes, filters and ranks (the thresholds themselves are in `Thresholds`)."""

    kinds: Annotated[list[Literal["spot", "basis", "triangular"]], Field(min_length=1)] = ["spot"]
    """Opportunity types to look for: cross-venue spot (default), spot vs linear perpetual, triangular cycles."""
    fees_from_markets: bool = False
    """Use each venue's taker fee from its ccxt market data (published by the connectors with the venue's health)
    instead of `venues.*.fees.taker`. Off by default: public market data states the venue's base tier, while the
    configured fee is the account's own."""
    max_trade_notional_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 50_000.0
    """Per-trade notional limit: the size of an opportunity never exceeds it (also its liquidity target)."""
    usd_per_quote: dict[Currency, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {
        "USD": 1.0,
        "EUR": 1.08,
        "GBP": 1.27,
        "JPY": 0.0067,
        "CHF": 1.11,
    }
    """Approximate USD value of a quote currency, only to apply USD thresholds (min/max notional) to e.g. EUR books.
    A quote currency missing here makes its instruments' USD thresholds unknown: the scanner refuses to start."""
    impact_bps_at_top_size: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 2.0
    """Impact model for a venue that gives only top of book: trading the whole top size costs this much extra."""
    estimated_depth_multiple: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """...and at most this multiple of the top size is assumed to be there (flagged `depth_estimated`)."""
    edge_half_life_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1000.0
    """Expected value halves for every this many ms of (quote age + order latency): old edges rank lower."""
    latency_ewma_alpha: Fraction = 0.2
    """Weight of a new order/ack latency sample in each venue's EWMA (seeded from `venues.*.latency_ms`)."""
    volatility_half_life_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    volatility_reference_bps: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    """Short-term volatility (per-second, bps) that doubles an instrument's risk factor."""
    reliability_window_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 300.0
    incident_penalty: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.1
    """Risk factor added per feed incident (reconnect, gap, resync, stall, reject) of a leg's venue in the window."""
    full_scan_interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.25
    """Safety-net full rescan period; it also closes opportunities whose quotes aged out without a new update."""
    health_refresh_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.25
    update_min_change_bps: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5
    """An open opportunity emits `updated` only when its net edge moved at least this much (bounds the stream)."""
    stream_maxlen: Annotated[int, Field(gt=0)] = 100_000
    basis_holding_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 8.0
    """Expected holding time of a basis trade: funding over it is charged (or credited) to its edge."""
    funding_refresh_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    """How often a connector worker re-reads the funding rates of the perps it streams (`arb.connectors.funding`);
    public data, no keys needed. A rate older than two funding intervals is unusable to the basis kind."""
    wallet_refresh_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 300.0
    """How often a connector worker re-reads deposit/withdraw status and fees of a venue it has API keys for
    (`ARB_<VENUE>_API_KEY` / `ARB_<VENUE>_SECRET`, see `arb.connectors.wallets`)."""
    wallet_max_age_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 900.0
    """A wallet record older than this is unknown (its poller has been failing): never trusted as open or closed."""
    wallet_suspended_priority_factor: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    """Priority multiplier of an opportunity whose base asset cannot be withdrawn on the buy venue or deposited on the
    sell venue. 0 (default): it stays visible, flagged `wallet="suspended"`, and ranks after every other one."""


class Coverage(Strict):
    """The spec's coverage floor: fewer live venues/instruments than this is an alert, not a silent degradation."""

    min_exchanges: Annotated[int, Field(ge=0)] = 15
    min_instruments: Annotated[int, Field(ge=0)] = 300


class GridSettings(Strict):
    key_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")] = "arb"
    feed_maxlen: Annotated[int, Field(gt=0)] = 10_000
    """Approximate number of change-feed entries Redis keeps; a follower further behind rebuilds from a snapshot."""
    socket_timeout_s: Annotated[float, Field(gt=0)] = 2.0
    """A Redis call slower than this counts as Redis down (FAULTS M8: fail closed, do not wait forever)."""


class RiskSettings(Strict):
    """Pre-trade limits of the risk engine (`arb.risk`): every order passes them before it leaves.

    USD figures use the executor's USD valuation of a notional (quote-currency amounts × `scanner.usd_per_quote`,
    stablecoins at their configured haircut). A limit is inclusive: a value equal to it passes, one above it is denied.
    The defaults are for a first live deployment, i.e. small: raise them in a user file once the system has run
    clean at this size (see the comments in `limits.yaml`).
    """

    max_order_notional_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1_000.0
    """Largest single order. The executor sizes opportunities to at most this (the scanner may offer more)."""
    max_instrument_notional_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2_500.0
    """Open notional on one instrument (all venues), this order included."""
    max_venue_notional_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5_000.0
    """Open notional on one venue (all instruments), this order included: bounds what one venue failure can strand."""
    max_open_exposure_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2_500.0
    """Gross unhedged exposure, sum over assets of |net USD position|, after this order fills and its twin does not."""
    max_concurrent_executions: Annotated[int, Field(ge=1)] = 2
    max_quote_age_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1_000.0
    """An order priced off an older quote is refused (tighter than the scanner's per-venue staleness)."""
    max_orders_per_s: Annotated[int, Field(ge=1)] = 5
    """New orders per venue in any one-second window (cancels are not counted)."""
    daily_loss_limit_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 100.0
    """Realized loss today at which trading halts (kill switch; only hedges, unwinds and cancels pass)."""
    max_drawdown: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.05
    """Fall of equity from its peak, as a fraction of the peak, at which trading halts."""
    kelly_fraction_cap: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.25
    """Most of the bankroll a Kelly-sized position may take, whatever the full Kelly fraction says."""
    var_confidence: Annotated[list[Annotated[float, Field(gt=0.5, lt=1)]], Field(min_length=1)] = [0.95, 0.99]
    """Confidence levels the portfolio VaR is reported at."""
    reducing_tolerance: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.05
    """A hedge/unwind may exceed the exposure it closes by this fraction (prices moved since it was valued); more,
    and it would open exposure the other way, so it is refused as not risk-reducing."""
    perp_initial_margin: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    """Collateral a perp order needs, as a fraction of its notional, in its quote currency (1.0: unlevered)."""
    cash_assets: list[Currency] = ["USD", "USDT", "USDC", "EUR", "GBP"]
    """Quote currencies that count as cash, not exposure; the quote side of a pair quoted in another asset
    (ETH/BTC) is exposure on that asset too."""


class ExecutorSettings(Strict):
    """How the executor resolves uncertain orders and how the hedger closes what a pair leaves unequal."""

    resolve_window_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 3.0
    """How long an order whose request timed out (UNKNOWN) is looked up by client id before it counts as never
    placed. Covers the venue's visibility lag; a real venue may need more (never resent meanwhile, FAULTS E2)."""
    resolve_interval_s: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.25
    single_leg_policy: Literal["cheapest", "reverse", "hedge"] = "cheapest"
    """What closes a residual: `reverse` unwinds the excess on its own venue, `hedge` completes the missing side on
    the best other venue, `cheapest` takes whichever the current grid prices and fees make cheaper."""
    hedge_price_move_limit: Annotated[float, Field(gt=0, lt=0.2, allow_inf_nan=False)] = 0.005
    """A hedge's limit price may be at most this fraction worse than the filled leg's average price."""
    hedge_ttl_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    """Time to close a residual; past it (or after `hedge_attempts`) the hedger escalates to the kill switch."""
    hedge_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    pair_cooldown_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0
    """After a pair ends unequal, the same venue pair is not traded again for this long (FAULTS E1)."""
    rebalance_drift: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.25
    """An asset's balance on a venue has drifted when it moved by more than this fraction of the asset's total over
    all venues since the run started; the trading report flags it and plans transfers back (`arb.hedging.inventory`).
    """
    paper_funding_usd: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = 100_000.0
    """Paper trading on real market data (`arb run --market venues`): each venue's paper account starts with this
    much (USD value at the first prices seen) of every currency its instruments trade."""


class ApiSettings(Strict):
    """The REST API (`arb serve`): limits per key, CORS, backtest jobs. Keys themselves live hashed in the ledger."""

    rate_limit_per_s: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] = 20.0
    """Requests a second one API key may make, sustained (a token bucket; past it: 429 with Retry-After)."""
    rate_limit_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 40
    cors_origins: list[str] = []
    """Origins a browser may call the API from (`https://host[:port]`; no wildcard). Empty: no CORS headers at all."""
    cors_allow_credentials: bool = False
    tapes_dir: str = "tapes"
    """Where `POST /backtest/run` looks for tapes (`arb record --out` directories), named by folder; a request names a
    tape, never a path or URL."""
    max_backtest_jobs: Annotated[int, Field(ge=1, le=16)] = 2
    """Backtests running at once; more are refused with 429 until one ends (each takes a CPU core)."""
    max_backtest_latencies: Annotated[int, Field(ge=1, le=16)] = 4
    max_scan_limit: Annotated[int, Field(ge=1, le=10_000)] = 500
    execute_wait_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 10.0
    """How long `POST /arbitrage/execute` waits for the trading process to take the request."""

    @model_validator(mode="after")
    def _cors(self) -> ApiSettings:
        # FAULTS S9: a wildcard origin lets any web page drive the API with a user's browser credentials.
        for origin in self.cors_origins:
            if "*" in origin:
                raise ValueError(f"api.cors_origins: {origin!r}: wildcards are refused; list each origin")
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValueError(f"api.cors_origins: {origin!r} is not an origin (scheme://host[:port], no path)")
        return self


class MetricsSettings(Strict):
    """Prometheus `/metrics` of `arb demo`, `arb run` and `arb connect` (`arb serve` answers it on the API's port).
    Names, labels and which process exports what: docs/metrics.md."""

    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    """TCP port of `/metrics`; 0 turns it off. `--metrics-port` overrides it per run."""
    host: Annotated[str, Field(min_length=1)] = "0.0.0.0"  # noqa: S104 - Prometheus scrapes from another host
    """Bind address (all interfaces by default, as exporters do: Prometheus scrapes from its own container)."""


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


CFD_ASSET_CLASSES: frozenset[str] = frozenset({"fx", "commodity", "index"})
"""Asset classes whose candles come from `strategy.candles.cfd_venue` (no CEX lists them)."""


class CandleSettings(Strict):
    """1H candles for the directional layer (`arb strategy fetch`), stored as Parquet under `data_dir`."""

    venue: Annotated[str, Field(min_length=1)] = "binance"
    """The venue whose `fetch_ohlcv` serves the candles (a configured CEX venue; its `urls:` override applies)."""
    cfd_venue: str | None = "capital_com"
    """The CFD venue (kind `cfd`, e.g. Capital.com) that serves the candles of fx / commodity / index assets, which
    no CEX lists; None: such assets cannot be fetched. Demo URLs in paper mode, live ones in live mode."""
    timeframe: Literal["1h"] = "1h"
    assets: list[str] = []
    """Instrument ids to trade; empty: the 100 largest crypto instruments of instruments.yaml, in file order."""
    history_days: Annotated[int, Field(ge=1, le=3650)] = 365
    """How far back a first fetch goes; later fetches resume after the last stored candle."""
    page_limit: Annotated[int, Field(ge=1, le=5000)] = 1000
    data_dir: Annotated[str, Field(min_length=1)] = "data/candles"
    spike_sigma: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 10.0
    """A bar whose log return is beyond this many rolling robust sigmas (median absolute deviation) is clipped."""


class SentimentSource(Strict):
    """One text source: an RSS/Atom feed, a JSON news API (CryptoPanic/NewsAPI style) or a local JSONL file."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: Literal["rss", "json", "jsonl"]
    url: Annotated[str, Field(min_length=1)]
    """http(s) URL for rss/json; a file path for jsonl. An API token goes in `token_env`, never here."""
    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    items_key: str | None = None
    """json: the key holding the list of items (`results` for CryptoPanic, `articles` for NewsAPI); None: auto."""
    token_env: str | None = None
    """Name of the environment variable holding the source's API token (sent as the `auth_token`/`apiKey` query)."""


class SentimentSettings(Strict):
    """The news sentiment index S(t) = Σ w_source · decay(t − t_item) · score_item, per asset."""

    sources: list[SentimentSource] = []
    half_life_hours: PositiveFloat = 6.0
    lookback_hours: PositiveFloat = 72.0
    """Items older than this no longer count (their weight is below 2^-12 at the default half-life anyway)."""
    aliases: dict[str, list[str]] = {}
    """Asset (base currency, e.g. BTC) -> extra names that map a headline to it (e.g. [bitcoin, btc])."""
    transformer_model: str | None = None
    """Path of a locally installed transformers sentiment model; blended with VADER. Never downloaded at run time."""
    poll_interval_s: PositiveFloat = 300.0


class RewardWeights(Strict):
    """reward = α·PnL + β·Sharpe − γ·Drawdown − δ·Risk, plus an extra penalty on drawdown early in an episode."""

    alpha: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    beta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.05
    gamma: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5
    delta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.01
    early_drawdown: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    """Extra weight on drawdown in the first `early_steps` steps of an episode (a bad start is punished harder)."""
    early_steps: Annotated[int, Field(ge=0)] = 48


class RLSettings(Strict):
    """The RL agent (`arb.strategy.rl`): environment costs, reward and training budget."""

    algo: Literal["ppo", "dqn", "sac"] = "ppo"
    action_space: Literal["discrete", "continuous"] = "discrete"
    window: Annotated[int, Field(ge=1, le=512)] = 24
    """Bars of history in one observation."""
    total_timesteps: Annotated[int, Field(ge=1, le=100_000_000)] = 20_000
    """The default training budget (per walk-forward window)."""
    episode_bars: Annotated[int, Field(ge=2)] = 720
    taker_fee: Fraction = 0.0005
    maker_fee: Fraction = 0.0002
    slippage_bps: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    """Slippage on a trade of `slippage_ref_notional` (bps); it grows with the square root of the traded notional."""
    slippage_ref_notional: PositiveFloat = 10_000.0
    leverage: Annotated[float, Field(gt=0, le=3, allow_inf_nan=False)] = 1.0
    maintenance_margin: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.005
    initial_equity: PositiveFloat = 10_000.0
    reward: RewardWeights = RewardWeights()
    seed: Annotated[int, Field(ge=0)] = 7
    models_dir: Annotated[str, Field(min_length=1)] = "models"
    ensemble_alpha: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1.0
    """Blend α·PPO + (1−α)·SAC of the two agents' target positions; 1.0 uses PPO alone (no SAC trained)."""


class DirectionalRisk(Strict):
    """Risk rules of directional positions, separate from arbitrage inventory."""

    risk_per_trade: Annotated[float, Field(ge=0.001, le=0.02, allow_inf_nan=False)] = 0.01
    """Fraction of equity lost if the stop is hit (the spec's 1–2 %)."""
    atr_stop_multiple: PositiveFloat = 2.0
    take_profit_multiple: PositiveFloat = 3.0
    trailing_stop_multiple: PositiveFloat = 2.0
    kelly_cap: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.25
    max_open_positions: Annotated[int, Field(ge=1, le=1000)] = 5
    daily_loss_stop: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.03
    """Fraction of the day's starting equity; past it no new directional position opens until the next UTC day."""
    leverage_cap: Annotated[float, Field(gt=0, le=3, allow_inf_nan=False)] = 3.0
    min_confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.55


class WalkForwardSettings(Strict):
    train_bars: Annotated[int, Field(ge=100)] = 2000
    test_bars: Annotated[int, Field(ge=10)] = 500
    step_bars: Annotated[int, Field(ge=10)] | None = None
    """Bars between window starts; None: `test_bars` (test windows tile the data without overlap)."""


class StrategySettings(Strict):
    """The directional layer (`arb strategy ...`): candles, sentiment, RL agent, risk rules, walk-forward."""

    candles: CandleSettings = CandleSettings()
    sentiment: SentimentSettings = SentimentSettings()
    rl: RLSettings = RLSettings()
    risk: DirectionalRisk = DirectionalRisk()
    walk_forward: WalkForwardSettings = WalkForwardSettings()
    signal_interval_s: PositiveFloat = 3600.0
    equity_usd: PositiveFloat = 10_000.0
    """Equity the paper directional book sizes positions from."""
    stream_maxlen: Annotated[int, Field(gt=0)] = 10_000


class Settings(BaseSettings):
    """Everything arb runs on. Built by `arb.config.load_settings`: shipped YAML < user file < `ARB_*` env vars."""

    model_config = SettingsConfigDict(
        env_prefix="ARB_", env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    mode: Literal["paper", "live"] = "paper"
    redis_url: SecretStr | None = None
    """Unset: arb starts its own redis-server. A URL may carry a password, hence secret."""
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///arb.db")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    venues: dict[str, VenueConfig]
    chains: dict[str, Chain] = {}
    quote_equivalence: dict[str, dict[str, Fraction]]
    """Canonical quote currency -> {venue quote currency: haircut}. USDT is never silently USD."""
    instruments: dict[str, InstrumentConfig]
    thresholds: Thresholds = Thresholds()
    scanner: ScannerSettings = ScannerSettings()
    coverage: Coverage = Coverage()
    grid: GridSettings = GridSettings()
    risk: RiskSettings = RiskSettings()
    executor: ExecutorSettings = ExecutorSettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()
    strategy: StrategySettings = StrategySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML files arrive as init kwargs; env vars must win over them (the documented order).
        return env_settings, init_settings
