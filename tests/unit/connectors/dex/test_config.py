"""DEX venue endpoints in config: `urls: {rpc, ws, private_rpc}`, checked at load and when a connector starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arb.config import load_settings
from arb.connectors.dex.pools import DexConfigError, RpcEndpoint


def uniswap_v2(urls: dict[str, str]) -> object:
    venue = load_settings(None).venues["uniswap_v2"]
    return type(venue).model_validate({**venue.model_dump(), "urls": urls})


def test_rpc_ws_and_private_rpc_make_the_endpoint() -> None:
    venue = (
        load_settings(None)
        .venues["uniswap_v2"]
        .model_copy(update={"urls": {"rpc": "https://node", "ws": "wss://node/ws", "private_rpc": "https://protect"}})
    )
    assert RpcEndpoint.from_venue("uniswap_v2", venue) == RpcEndpoint(
        http_url="https://node", ws_url="wss://node/ws", private_url="https://protect"
    )


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        ({"rpc": "wss://node"}, "urls.rpc must be an absolute http/https URL"),
        ({"rpc": "https://node", "ws": "https://node"}, "urls.ws must be an absolute ws/wss URL"),
        ({"rpc": "https://node", "http": "https://x"}, "take the keys rpc, ws and private_rpc"),
    ],
)
def test_bad_dex_urls_are_refused_at_load_naming_the_key(urls: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        uniswap_v2(urls)


def test_a_connector_needs_the_rpc_url() -> None:
    venue = load_settings(None).venues["uniswap_v2"]
    with pytest.raises(DexConfigError, match=r"venues\.uniswap_v2\.urls\.rpc is required"):
        RpcEndpoint.from_venue("uniswap_v2", venue)
