"""Binance's wallet endpoint, served locally: per-coin deposit/withdraw switches, networks and withdrawal fees.

Follows https://developers.binance.com/docs/wallet/capital/all-coins-info ("All Coins' Information (USER_DATA)"):
`GET /sapi/v1/capital/config/getall` (signed: `timestamp` and `signature` parameters, `X-MBX-APIKEY` header; weight
10), answering one object per coin (`coin`, `depositAllEnable`, `withdrawAllEnable`, `isLegalMoney`, `trading`,
`networkList` of {`network`, `isDefault`, `depositEnable`, `withdrawEnable`, `depositDesc`/`withdrawDesc` (set only
when closed), `withdrawFee`, `withdrawMin`, `withdrawMax`, ...}). It is what ccxt `binance.fetch_currencies` and
`fetch_deposit_withdraw_fees` read (ccxt 4.5.90 `parse_currency`, `parse_deposit_withdraw_fee`).

Errors, as Binance answers them (https://github.com/binance/binance-spot-api-docs/blob/master/errors.md): no
`X-MBX-APIKEY` header -> 401 `{"code": -2014, "msg": "API-key format invalid."}`; no `timestamp` or `signature` ->
400 -1102 naming the parameter. Both map to the ccxt errors the real ones do (AuthenticationError, BadRequest).

Deviations, on purpose: any API key and any signature are accepted (the sim holds no accounts, so there is nothing to
verify them against, and a test needs no real key); balances (`free`, `locked`, ...) are all "0"; `recvWindow` is not
enforced. The cross/isolated margin pair lists are not served (the wallet poller turns ccxt's `fetchMargins` off).

State: every asset the venue lists (base and quote of each symbol) has a wallet: its own network as default plus
BSC (BEP20, half the fee) for crypto, one network for fiat; each open, with a default withdrawal fee worth about
`DEFAULT_FEE_USD`. Tests change it from Python (`BinanceWallets.set`) or over HTTP, exempt from faults like every
`/_sim/` control:

    POST /_sim/wallets  {"coin": "BTC", "withdraw": false}   (also "deposit", "withdraw_fee", "network")
    GET  /_sim/wallets
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec
import orjson
from aiohttp import web

from arb.sim.market import USD_PER_UNIT

if TYPE_CHECKING:
    from arb.sim.server import SimVenue

DOCS: Final = "https://developers.binance.com/docs/wallet/capital/all-coins-info"
DEFAULT_FEE_USD: Final = 1.0
"""Default withdrawal fee of every coin, in USD worth of it (Binance's are of this order on cheap networks)."""
_FIAT: Final = frozenset({"USD", "EUR", "GBP", "JPY", "CHF", "TRY", "BRL", "AUD"})
_TOKEN_CHAIN: Final = {"USDT": "ETH", "USDC": "ETH", "DAI": "ETH", "LINK": "ETH", "UNI": "ETH", "AAVE": "ETH",
                       "PEPE": "ETH", "SHIB": "ETH", "MKR": "ETH", "YFI": "ETH", "WETH": "ETH", "WBTC": "ETH",
                       "BONK": "SOL", "TRUMP": "SOL"}  # fmt: skip
"""Coins whose default network is another chain (a token on it); every other coin's network is its own id."""
_MISSING: Final = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."


@dataclass
class Network:
    """One network a coin moves on."""

    network: str
    withdraw_fee: float
    is_default: bool
    deposit: bool = True
    withdraw: bool = True


@dataclass
class CoinWallet:
    coin: str
    fiat: bool
    networks: dict[str, Network] = field(default_factory=dict)

    @property
    def deposit_all(self) -> bool:
        return all(n.deposit for n in self.networks.values())

    @property
    def withdraw_all(self) -> bool:
        return all(n.withdraw for n in self.networks.values())


class WalletChange(msgspec.Struct, forbid_unknown_fields=True):
    """A control request: what to change on `coin` (on one `network`, or on all of them)."""

    coin: str
    deposit: bool | None = None
    withdraw: bool | None = None
    withdraw_fee: float | None = None
    network: str | None = None


class BinanceWallets:
    """The wallet switches of one Binance-format venue (see the module docstring)."""

    def __init__(self) -> None:
        self.coins: dict[str, CoinWallet] = {}

    def add_coin(self, coin: str, usd_price: float) -> None:
        """Give `coin` its default wallet (no-op when it has one)."""
        if coin in self.coins:
            return
        fee = float(f"{DEFAULT_FEE_USD / usd_price:.2g}") if usd_price > 0 else 1.0
        wallet = CoinWallet(coin, fiat=coin in _FIAT)
        own = _TOKEN_CHAIN.get(coin, coin)
        wallet.networks[own] = Network(own, fee, is_default=True)
        if not wallet.fiat and own != "BSC":
            wallet.networks["BSC"] = Network("BSC", float(f"{fee / 2:.2g}"), is_default=False)
        self.coins[coin] = wallet

    def set(
        self,
        coin: str,
        *,
        deposit: bool | None = None,
        withdraw: bool | None = None,
        withdraw_fee: float | None = None,
        network: str | None = None,
    ) -> CoinWallet:
        """Open or close deposits/withdrawals, or set the withdrawal fee, of `coin` on `network` (None: every network;
        for the fee, the default one). KeyError for a coin or network the venue does not have."""
        wallet = self.coins.get(coin)
        if wallet is None:
            raise KeyError(f"no wallet for coin {coin!r} (this venue's coins: {', '.join(sorted(self.coins))})")
        if network is not None and network not in wallet.networks:
            raise KeyError(f"coin {coin!r} has no network {network!r} (it has {', '.join(wallet.networks)})")
        if withdraw_fee is not None and not (math.isfinite(withdraw_fee) and withdraw_fee >= 0):
            raise ValueError(f"withdraw_fee must be a non-negative number, got {withdraw_fee!r}")
        targets = [wallet.networks[network]] if network is not None else list(wallet.networks.values())
        for net in targets:
            if deposit is not None:
                net.deposit = deposit
            if withdraw is not None:
                net.withdraw = withdraw
        if withdraw_fee is not None:
            fee_target = next(n for n in targets if n.is_default or network is not None)
            fee_target.withdraw_fee = withdraw_fee
        return wallet

    def render(self) -> list[dict[str, Any]]:
        """The documented response body of `GET /sapi/v1/capital/config/getall`."""
        return [_coin_json(w) for w in self.coins.values()]

    # ------------------------------------------------------------------ serving

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        asset_id: Callable[[str], str],
        respond: Callable[[Any, int], web.Response],
        error: Callable[[int, int, str], web.Response],
    ) -> None:
        """Add the signed endpoint and the `/_sim/wallets` control to `app`, with a wallet for every listed asset.

        `asset_id` maps a unified code to the venue's coin id; `respond(payload, weight)` and `error(status, code,
        msg)` build responses in the venue's format."""
        for book in venue.feed.books:
            base, _, quote = book.symbol.partition("/")
            quote = quote.partition(":")[0]
            quote_usd = USD_PER_UNIT.get(quote, 1.0)
            self.add_coin(asset_id(quote), quote_usd)
            self.add_coin(asset_id(base), venue.market.instrument(book.instrument).price * quote_usd)

        async def getall(request: web.Request) -> web.Response:
            refused = _unsigned(request)
            if refused is not None:
                return error(*refused)
            return respond(self.render(), 10)

        async def post_control(request: web.Request) -> web.Response:
            try:
                change = msgspec.json.decode(await request.read(), type=WalletChange)
                wallet = self.set(
                    change.coin,
                    deposit=change.deposit,
                    withdraw=change.withdraw,
                    withdraw_fee=change.withdraw_fee,
                    network=change.network,
                )
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError, KeyError) as e:
                return web.json_response({"error": str(e).strip('"')}, status=422)
            return web.Response(body=orjson.dumps(_coin_json(wallet)), content_type="application/json")

        async def get_control(request: web.Request) -> web.Response:
            return web.Response(body=orjson.dumps(self.render()), content_type="application/json")

        app.router.add_get("/sapi/v1/capital/config/getall", getall)
        app.router.add_post("/_sim/wallets", post_control)
        app.router.add_get("/_sim/wallets", get_control)


def _unsigned(request: web.Request) -> tuple[int, int, str] | None:
    """(status, code, msg) for a request that is not signed the way Binance requires; None when it is."""
    if not request.headers.get("X-MBX-APIKEY"):
        return 401, -2014, "API-key format invalid."
    for name in ("timestamp", "signature"):
        if not request.query.get(name):
            return 400, -1102, _MISSING.format(name)
    return None


def _amount(x: float) -> str:
    return f"{x:.8f}"


def _coin_json(w: CoinWallet) -> dict[str, Any]:
    return {
        "coin": w.coin,
        "depositAllEnable": w.deposit_all,
        "withdrawAllEnable": w.withdraw_all,
        "name": w.coin,
        "free": "0",
        "locked": "0",
        "freeze": "0",
        "withdrawing": "0",
        "ipoing": "0",
        "ipoable": "0",
        "storage": "0",
        "isLegalMoney": w.fiat,
        "trading": True,
        "networkList": [_network_json(w.coin, n) for n in w.networks.values()],
    }


def _network_json(coin: str, n: Network) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "network": n.network,
        "coin": coin,
        "withdrawIntegerMultiple": "0.00000001",
        "isDefault": n.is_default,
        "depositEnable": n.deposit,
        "withdrawEnable": n.withdraw,
        "depositDesc": "" if n.deposit else "Wallet Maintenance, Deposit Suspended",
        "withdrawDesc": "" if n.withdraw else "Wallet Maintenance, Withdrawal Suspended",
        "specialTips": "",
        "specialWithdrawTips": "",
        "name": "BNB Smart Chain (BEP20)" if n.network == "BSC" else n.network,
        "resetAddressStatus": False,
        "addressRegex": "",
        "memoRegex": "",
        "withdrawFee": _amount(n.withdraw_fee),
        "withdrawMin": _amount(2 * n.withdraw_fee),
        "withdrawMax": "9999999999.99999999",
        "withdrawInternalMin": "0.00000001",
        "depositDust": "0.00000001",
        "minConfirm": 1,
        "unLockConfirm": 0,
        "sameAddress": False,
        "withdrawTag": False,
        "estimatedArrivalTime": 5,
        "busy": False,
    }
    return entry
