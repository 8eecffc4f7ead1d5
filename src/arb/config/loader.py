"""Load settings: shipped YAML < user file (`--config`) < `ARB_*` env vars, validated all at once.

Why a custom YAML walk instead of `yaml.safe_load`: PyYAML silently keeps the last of two duplicate keys (a duplicated
instrument would vanish without a word), and it forgets line numbers. Walking the node tree lets us refuse duplicates
and remember, for every key, the file and line it came from, so each problem is reported as
`file:line: dotted.key: problem`. All problems are collected and raised together in one `ConfigError`; nothing is
returned half-validated.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from arb.config.schema import CFD_ASSET_CLASSES, Settings

SHIPPED_FILES = ("venues.yaml", "instruments.yaml", "limits.yaml")
ENV_PREFIX = "ARB_"

Path_ = tuple[str, ...]


class ConfigError(ValueError):
    """The configuration cannot be used. `problems` holds one `where: key: problem` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass
class _Source:
    """Merged raw config plus where each key path was last set."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[Path_, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _where(mark: yaml.Mark | None, file: str) -> str:
    return f"{file}:{mark.line + 1}" if mark is not None else file


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~5x faster on the 2,000 lines


def _walk(node: yaml.Node, loader: yaml.SafeLoader, file: str, path: Path_, src: _Source) -> Any:
    src.origin[path] = _where(node.start_mark, file)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool):
                src.problems.append(f"{_where(key_node.start_mark, file)}: {_dotted(path)}: keys must be scalars")
                continue
            skey = str(key)
            if skey in out:
                src.problems.append(
                    f"{_where(key_node.start_mark, file)}: {_dotted((*path, skey))}: duplicate key "
                    f"(first defined at line {src.origin[(*path, skey)].rsplit(':', 1)[-1]})"
                )
                continue
            out[skey] = _walk(value_node, loader, file, (*path, skey), src)
            src.origin[(*path, skey)] = _where(key_node.start_mark, file)  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(child, loader, file, (*path, str(i)), src) for i, child in enumerate(node.value)]
    return loader.construct_object(node)


def _read_yaml(text: str, file: str, src: _Source) -> dict[str, Any]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        src.problems.append(f"{_where(mark, file)}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return {}
    finally:
        loader.dispose()
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        src.problems.append(f"{file}: the top level must be a mapping of settings")
        return {}
    result: dict[str, Any] = _walk(node, loader, file, (), src)
    return result


def _merge(base: dict[str, Any], over: Mapping[str, Any], path: Path_, origin: dict[Path_, str], file: str) -> None:
    """Deep-merge mappings (a user file can change one fee); lists and scalars are replaced whole."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, (*path, key), origin, file)
        else:
            base[key] = value


def _dotted(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _env_origins() -> dict[Path_, str]:
    out: dict[Path_, str] = {}
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX):
            path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
            out[path] = f"environment variable {name}"
    return out


def _origin_of(path: Path_, origin: Mapping[Path_, str]) -> str:
    for n in range(len(path), -1, -1):
        if path[:n] in origin:
            return origin[path[:n]]
    return "settings"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validation_problems(exc: ValidationError, origin: Mapping[Path_, str]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {_short(err['input'])})"
        if any(s in loc for s in ("redis_url", "database_url")):
            msg = err["msg"]  # never echo a value that may hold a password
        problems.append(f"{_origin_of(loc, origin)}: {_dotted(loc)}: {msg}")
    return problems


def _symbol_quote(symbol: str) -> str | None:
    if "/" not in symbol:
        return None
    return symbol.split("/", 1)[1].split(":", 1)[0]


def _ccxt_pro_has(exchange_id: str) -> bool:
    # Look for the module file: importing `ccxt.pro` (even via find_spec of a submodule) loads ~100 exchange classes.
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations or not exchange_id.isidentifier():
        return False
    return any((Path(loc) / "pro" / f"{exchange_id}.py").is_file() for loc in spec.submodule_search_locations)


def _cross_check(settings: Settings, origin: Mapping[Path_, str]) -> list[str]:
    """What single fields cannot tell: references between venues, chains, instruments and quote currencies."""
    problems: list[str] = []

    def bad(path: Path_, msg: str) -> None:
        problems.append(f"{_origin_of(path, origin)}: {_dotted(path)}: {msg}")

    for vid, venue in settings.venues.items():
        if venue.kind == "cex" and venue.ccxt_id and not _ccxt_pro_has(venue.ccxt_id):
            bad(("venues", vid, "ccxt_id"), f"unknown venue id {venue.ccxt_id!r}: ccxt.pro has no such exchange")
        if venue.kind == "dex" and venue.chain not in settings.chains:
            bad(("venues", vid, "chain"), f"chain {venue.chain!r} is not configured under chains")
    for ccy, table in settings.quote_equivalence.items():
        if ccy not in table:
            bad(("quote_equivalence", ccy), f"{ccy} must list itself (haircut 0.0)")
    seen: dict[tuple[str, str], str] = {}
    for iid, inst in settings.instruments.items():
        if inst.quote not in settings.quote_equivalence:
            bad(("instruments", iid, "quote"), f"quote currency {inst.quote!r} has no entry in quote_equivalence")
        for vid, symbol in inst.venues.items():
            path = ("instruments", iid, "venues", vid)
            previous = seen.setdefault((vid, symbol), iid)
            if previous != iid:
                bad(path, f"duplicate instrument: {vid} symbol {symbol!r} is already mapped by {previous!r}")
            for msg in _symbol_problems(settings, inst.quote, vid, symbol):
                bad(path, msg)
    return problems + _type_problems(settings, origin) + _strategy_problems(settings, origin)


def _strategy_problems(settings: Settings, origin: Mapping[Path_, str]) -> list[str]:
    """The directional layer fetches crypto candles from one CEX venue and fx / commodity / index ones from the CFD
    venue, each for instruments that venue lists."""
    candles = settings.strategy.candles
    where = ("strategy", "candles")
    venue = settings.venues.get(candles.venue)
    if venue is None or venue.kind != "cex":
        return [
            f"{_origin_of((*where, 'venue'), origin)}: strategy.candles.venue: {candles.venue!r} is not a configured "
            "CEX venue (candles come from its fetch_ohlcv)"
        ]
    problems = []
    cfd = candles.cfd_venue
    if cfd is not None and (settings.venues.get(cfd) is None or settings.venues[cfd].kind != "cfd"):
        problems.append(
            f"{_origin_of((*where, 'cfd_venue'), origin)}: strategy.candles.cfd_venue: {cfd!r} is not a configured "
            "CFD venue (fx / commodity / index candles come from it)"
        )
        cfd = None
    for i, iid in enumerate(candles.assets):
        inst = settings.instruments.get(iid)
        path = cast(Path_, (*where, "assets", i))  # list items are keyed by index, as _walk records them
        at = f"{_origin_of(path, origin)}: {_dotted(path)}"
        if inst is None:
            problems.append(f"{at}: unknown instrument {iid!r}")
        elif inst.asset_class in CFD_ASSET_CLASSES:
            if candles.cfd_venue is None:
                problems.append(f"{at}: {iid!r} is {inst.asset_class}: set strategy.candles.cfd_venue to fetch it")
            elif cfd is not None and cfd not in inst.venues:
                problems.append(f"{at}: {iid!r} is not listed on {cfd}")
        elif candles.venue not in inst.venues:
            problems.append(f"{at}: {iid!r} is not listed on {candles.venue}")
    weights = [s.name for s in settings.strategy.sentiment.sources]
    dupes = sorted({n for n in weights if weights.count(n) > 1})
    if dupes:
        sources = ("strategy", "sentiment", "sources")
        problems.append(f"{_origin_of(sources, origin)}: {_dotted(sources)}: duplicate source names {dupes}")
    return problems


def _type_problems(settings: Settings, origin: Mapping[Path_, str]) -> list[str]:
    """Spot vs perp: symbols of the right kind, and each perp's underlying."""
    found: list[tuple[Path_, str]] = []
    for iid, inst in settings.instruments.items():
        for vid, symbol in inst.venues.items():
            problem = _symbol_kind_problem(settings, inst.type, vid, symbol)
            if problem:
                found.append((("instruments", iid, "venues", vid), problem))
        if inst.type == "perp":
            found += [(("instruments", iid, "underlying"), msg) for msg in _underlying_problems(settings, iid)]
    return [f"{_origin_of(path, origin)}: {_dotted(path)}: {msg}" for path, msg in found]


def _symbol_kind_problem(settings: Settings, inst_type: str, vid: str, symbol: str) -> str | None:
    """A perp is a ccxt linear swap (`BTC/USDT:USDT`, settled in its quote) on a CEX; a spot symbol is no swap."""
    venue = settings.venues.get(vid)
    if venue is None:
        return None  # reported by _symbol_problems
    settle = symbol.split(":", 1)[1] if ":" in symbol else None
    if inst_type == "spot":
        return f"{symbol!r} is a derivative symbol: declare the instrument `type: perp`" if settle else None
    if venue.kind != "cex":
        return f"perps are traded on CEX venues only; {vid} is a {venue.kind} venue"
    if settle is None or settle != _symbol_quote(symbol):
        return f"{symbol!r} is not a linear perpetual symbol (BASE/QUOTE:QUOTE, settled in its quote currency)"
    return None


def _underlying_problems(settings: Settings, iid: str) -> list[str]:
    """A perp's underlying exists, is spot, and is the same economic pair (else its basis means nothing)."""
    perp = settings.instruments[iid]
    spot = settings.instruments.get(perp.underlying or "")
    if spot is None:
        return [f"underlying {perp.underlying!r} is not a configured instrument"]
    problems = []
    if spot.type != "spot":
        problems.append(f"underlying {perp.underlying!r} must be a spot instrument, not a {spot.type}")
    if (spot.base, spot.quote) != (perp.base, perp.quote):
        problems.append(
            f"underlying {perp.underlying!r} is {spot.base}/{spot.quote}, the perp is {perp.base}/{perp.quote}: "
            "they must have the same base and quote"
        )
    return problems


def _symbol_problems(settings: Settings, inst_quote: str, vid: str, symbol: str) -> list[str]:
    venue = settings.venues.get(vid)
    if venue is None:
        return [f"symbol {symbol!r} is mapped to venue {vid!r}, which is not configured"]
    if venue.kind == "cfd":
        return []  # epics (EURUSD, GOLD) carry no quote currency to check
    quote = _symbol_quote(symbol)
    if quote is None:
        return [f"symbol {symbol!r} must look like BASE/QUOTE"]
    problems = []
    if venue.kind == "dex":
        chain = settings.chains.get(venue.chain or "")
        tokens = chain.tokens if chain is not None else {}
        problems += [
            f"token {t!r} is not in the token table of chain {venue.chain!r}"
            for t in symbol.split("/")
            if t not in tokens
        ]
    if quote not in venue.quote_currencies:
        problems.append(f"quote currency {quote!r} of {symbol!r} is not among {vid}'s quote_currencies")
    equivalents = settings.quote_equivalence.get(inst_quote)
    if equivalents is not None and quote not in equivalents:
        problems.append(f"{quote!r} is not declared equivalent to {inst_quote!r} in quote_equivalence")
    return problems


def load_settings(user_file: str | Path | None = None, *, shipped_dir: Path | None = None) -> Settings:
    """Build the Settings or raise ConfigError listing every problem with its file, line and key."""
    src = _Source()
    if shipped_dir is not None:
        shipped = [(str(shipped_dir / name), (shipped_dir / name).read_text()) for name in SHIPPED_FILES]
    else:
        pkg = resources.files("arb.config")
        shipped = [(f"arb/config/{name}", (pkg / name).read_text()) for name in SHIPPED_FILES]
    layers = list(shipped)
    if user_file is not None:
        path = Path(user_file)
        try:
            layers.append((str(path), path.read_text()))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read config file: {exc.strerror}"]) from None
    for file, text in layers:
        origin: dict[Path_, str] = {}
        layer_src = _Source(origin=origin, problems=src.problems)
        data = _read_yaml(text, file, layer_src)
        _merge(src.data, data, (), src.origin, file)
        src.origin.update(origin)
    src.origin.update(_env_origins())
    if src.problems:
        raise ConfigError(src.problems)
    try:
        settings = Settings(**src.data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(exc, src.origin)) from None
    problems = _cross_check(settings, src.origin)
    if problems:
        raise ConfigError(problems)
    return settings
