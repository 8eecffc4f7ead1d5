"""Which assets a headline is about: tickers and names, tuned against false positives.

A wrong asset is worse than a missed one (the index of an unrelated coin moves), so the rules are strict:

- `$BTC` (a cashtag, any case) and `(LINK)` (a ticker in parentheses, upper case) always name the asset;
- a bare ticker counts only in upper case and as a whole word: "SOL" but not "solution" or "sol";
- a bare ticker that is also an English word or a common abbreviation ("ONE", "OP", "LINK", "DOT", "NEAR", "APT",
  all tickers of one or two characters, ...) counts only as a cashtag, in parentheses, or through a name alias —
  "one of the biggest", "an APT group" and "OP-ED" name no asset;
- alias names ("bitcoin", "ether", "near protocol") match case-insensitively as whole words; longer names win, so
  "Bitcoin Cash" is BCH, not BTC, and "Ethereum Classic" is ETC, not ETH.

Deliberately absent from the default names: words with a common non-crypto meaning ("stellar", "optimism", "maker",
"cosmos", "graph"); add them through `strategy.sentiment.aliases` if a feed uses them unambiguously.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

DEFAULT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "xbt"),
    "ETH": ("ether", "ethereum"),
    "XRP": ("ripple",),
    "BNB": ("binance coin",),
    "SOL": ("solana",),
    "TRX": ("tron",),
    "DOGE": ("dogecoin",),
    "ADA": ("cardano",),
    "HYPE": ("hyperliquid",),
    "LINK": ("chainlink",),
    "BCH": ("bitcoin cash",),
    "XLM": ("stellar lumens",),
    "SUI": (),
    "AVAX": ("avalanche",),
    "HBAR": ("hedera",),
    "LTC": ("litecoin",),
    "TON": ("toncoin",),
    "SHIB": ("shiba inu",),
    "DOT": ("polkadot",),
    "XMR": ("monero",),
    "UNI": ("uniswap",),
    "PEPE": (),
    "APT": ("aptos",),
    "NEAR": ("near protocol",),
    "AAVE": (),
    "ICP": ("internet computer",),
    "ETC": ("ethereum classic",),
    "POL": ("polygon",),
    "ARB": ("arbitrum",),
    "ATOM": (),
    "FIL": ("filecoin",),
    "OP": (),
    "USDT": ("tether",),
    "USDC": (),
}
"""The largest coins by market value with the names news uses for them; merged with `strategy.sentiment.aliases`."""

_AMBIGUOUS = frozenset(
    "ONE OP LINK DOT NEAR APT UNI GAS SAND MASK FLOW CAKE MAGIC ACE ANT APE BAND BEAM BLUR COMP CORE DASH EDU FUN "
    "GALA HIGH HOT ICE JOE KEY LOOM MOVE PEOPLE POND RARE ROSE RUNE SUN SUPER WIN WOO ZEN TRUMP BONK WIF JUP ENS "
    "GRT MANA ONT STORJ TAO KAS VET SEI INJ FET IMX STX CRO MNT AR ZK W ENA ALGO POL ATOM TON SUI HYPE".split()
)
"""Tickers that are also words or common abbreviations in upper case (an APT group, a DOT regulation, FET, ...)."""

_TICKER = re.compile(r"^[A-Z0-9]{1,15}$")
_CANDIDATES = re.compile(
    r"(?<![A-Za-z0-9])(?:\$(?P<cash>[A-Za-z0-9]{1,15})|\((?P<paren>[A-Z0-9]{1,15})\)|(?P<bare>[A-Z][A-Z0-9]{1,14}))"
    r"(?![A-Za-z0-9])"
)


def merge_aliases(*mappings: Mapping[str, Sequence[str]], defaults: bool = True) -> dict[str, tuple[str, ...]]:
    """`DEFAULT_ALIASES` (unless `defaults=False`) with each mapping's names added, per asset, in order.

    Raises ValueError for an asset that is not an upper-case ticker or an empty name, naming it.
    """
    merged: dict[str, list[str]] = {}
    for mapping in ((DEFAULT_ALIASES,) if defaults else ()) + mappings:
        for asset, names in mapping.items():
            _check_asset(asset)
            bucket = merged.setdefault(asset, [])
            for name in names:
                cleaned = " ".join(name.split()).lower()
                if not cleaned:
                    raise ValueError(f"strategy.sentiment.aliases.{asset}: empty name")
                if cleaned not in bucket:
                    bucket.append(cleaned)
    return {asset: tuple(names) for asset, names in merged.items()}


def assets_of(text: str, aliases: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The assets (keys of `aliases`) that `text` mentions, sorted; see the module docstring for the rules."""
    return _matcher(_freeze(aliases))(text)


def _check_asset(asset: str) -> None:
    if not _TICKER.match(asset):
        raise ValueError(f"strategy.sentiment.aliases: asset {asset!r} is not an upper-case ticker like 'BTC'")


def _freeze(aliases: Mapping[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((asset, tuple(names)) for asset, names in aliases.items()))


@functools.lru_cache(maxsize=32)
def _matcher(frozen: tuple[tuple[str, tuple[str, ...]], ...]) -> _Matcher:
    return _Matcher(dict(frozen))


class _Matcher:
    def __init__(self, aliases: Mapping[str, Sequence[str]]) -> None:
        self._tickers = frozenset(aliases)
        for asset in self._tickers:
            _check_asset(asset)
        self._by_name: dict[str, str] = {}
        for asset, names in aliases.items():
            for name in names:
                key = " ".join(name.split()).lower()
                if not key:
                    raise ValueError(f"strategy.sentiment.aliases.{asset}: empty name")
                other = self._by_name.setdefault(key, asset)
                if other != asset:
                    raise ValueError(f"strategy.sentiment.aliases: name {key!r} is given for both {other} and {asset}")
        alternatives = "|".join(
            r"\s+".join(map(re.escape, key.split())) for key in sorted(self._by_name, key=len, reverse=True)
        )
        self._names = (
            re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE) if alternatives else None
        )

    def __call__(self, text: str) -> tuple[str, ...]:
        found: set[str] = set()
        for match in _CANDIDATES.finditer(text):
            cash, paren, bare = match.group("cash", "paren", "bare")
            if cash is not None:
                ticker = cash.upper()
            elif paren is not None:
                ticker = paren
            elif len(bare) > 2 and bare not in _AMBIGUOUS:
                ticker = bare
            else:
                continue
            if ticker in self._tickers:
                found.add(ticker)
        if self._names is not None:
            found.update(self._by_name[" ".join(m.group(0).split()).lower()] for m in self._names.finditer(text))
        return tuple(sorted(found))
