"""Capital.com configuration: URLs from config, credentials from env, request bodies, sharding, the epic mapping."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import msgspec
import pytest

from arb.config import load_settings
from arb.connectors.capital_com import (
    CapitalComCredentials,
    PositionRequest,
    StreamOptions,
    WorkingOrderRequest,
    capital_com_connector,
    endpoint_from_config,
    shard_epics,
)
from arb.connectors.capital_com.orders import _created_since


def test_paper_mode_uses_the_demo_urls_and_live_mode_the_live_ones() -> None:
    cfg = load_settings(None).venues["capital_com"]

    demo = endpoint_from_config(cfg, live=False)
    live = endpoint_from_config(cfg, live=True)

    assert demo.rest_url == "https://demo-api-capital.backend-capital.com"
    assert live.rest_url == "https://api-capital.backend-capital.com"
    assert live.ws_url == demo.ws_url == "wss://api-streaming-capital.backend-capital.com/connect"


def test_a_missing_url_is_named() -> None:
    cfg = load_settings(None).venues["capital_com"].model_copy(update={"urls": {"rest_demo": "https://x"}})

    with pytest.raises(ValueError, match=r"urls\.ws_demo not configured"):
        endpoint_from_config(cfg, live=False)


def test_credentials_come_from_env_and_their_repr_masks_the_secrets() -> None:
    env = {
        "ARB_CAPITAL_COM_API_KEY": "key-123",
        "ARB_CAPITAL_COM_IDENTIFIER": "me@example.com",
        "ARB_CAPITAL_COM_PASSWORD": "pw-456",
    }

    creds = CapitalComCredentials.from_env(environ=env)

    assert creds is not None
    assert creds.api_key.get_secret_value() == "key-123"
    assert "key-123" not in repr(creds)
    assert "pw-456" not in repr(creds)
    assert CapitalComCredentials.from_env(environ={}) is None


def test_incomplete_credentials_name_the_missing_variables() -> None:
    with pytest.raises(ValueError, match="set ARB_CAPITAL_COM_IDENTIFIER, ARB_CAPITAL_COM_PASSWORD"):
        CapitalComCredentials.from_env(environ={"ARB_CAPITAL_COM_API_KEY": "k"})


def test_a_position_request_goes_on_the_wire_with_exact_decimal_numbers() -> None:
    req = PositionRequest(
        epic="GOLD", direction="BUY", size=Decimal("0.10"), stop_level=Decimal("2300.5"), profit_level=Decimal("2400")
    )

    wire = msgspec.json.Encoder(decimal_format="number").encode(req.body())

    assert wire == b'{"epic":"GOLD","direction":"BUY","size":0.10,"stopLevel":2300.5,"profitLevel":2400}'


def test_a_working_order_request_carries_level_and_type() -> None:
    req = WorkingOrderRequest(epic="EURUSD", direction="SELL", size=Decimal(1000), level=Decimal("1.0925"), type="STOP")

    assert req.body() == {
        "epic": "EURUSD",
        "direction": "SELL",
        "size": Decimal(1000),
        "level": Decimal("1.0925"),
        "type": "STOP",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": Decimal(0)}, "size must be a positive finite Decimal"),
        ({"size": Decimal("NaN")}, "size must be a positive finite Decimal"),
        ({"size": 1.5}, "size must be a positive finite Decimal"),
        ({"direction": "LONG"}, "direction must be BUY or SELL"),
        ({"epic": ""}, "epic must not be empty"),
        ({"stop_level": Decimal(-1)}, "stop_level must be a positive finite Decimal"),
        ({"guaranteed_stop": True}, "guaranteed_stop needs stop_level"),
    ],
)
def test_a_bad_position_request_is_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"epic": "GOLD", "direction": "BUY", "size": Decimal(1)}
    with pytest.raises(ValueError, match=message):
        PositionRequest(**(base | fields))  # type: ignore[arg-type]


def test_a_deal_counts_as_ours_if_dated_at_most_five_seconds_before_the_send() -> None:
    sent = dt.datetime(2024, 6, 7, 12, 0, 10, tzinfo=dt.UTC)

    assert _created_since("2024-06-07T12:00:05.000", sent)
    assert not _created_since("2024-06-07T12:00:04.999", sent)
    assert not _created_since("yesterday", sent)


def test_112_epics_go_over_three_connections_of_at_most_40() -> None:
    epics = [f"E{i}" for i in range(112)]

    shards = shard_epics(epics)

    assert [len(s) for s in shards] == [40, 40, 32]
    assert [e for s in shards for e in s] == epics


def test_stream_options_refuse_more_than_40_epics_a_connection() -> None:
    with pytest.raises(ValueError, match=r"epics_per_connection must be 1\.\.40"):
        StreamOptions(epics_per_connection=41)


def test_all_100_fx_commodity_and_index_instruments_and_the_crypto_cfds_have_unique_epics() -> None:
    settings = load_settings(None)
    mapped = {iid: i.venues["capital_com"] for iid, i in settings.instruments.items() if "capital_com" in i.venues}
    non_crypto = [iid for iid, i in settings.instruments.items() if i.asset_class in ("fx", "commodity", "index")]

    assert len(non_crypto) == 100
    assert set(non_crypto) <= set(mapped)
    assert len(set(mapped.values())) == len(mapped)
    assert all(re.fullmatch(r"[A-Z0-9_.]+", e) for e in mapped.values())
    crypto = [iid for iid in mapped if settings.instruments[iid].asset_class.startswith("crypto")]
    assert len(crypto) >= 30


def test_the_settings_connector_streams_every_mapped_epic_from_the_demo_urls_in_paper_mode() -> None:
    settings = load_settings(None)
    creds = CapitalComCredentials.from_env(
        environ={"ARB_CAPITAL_COM_API_KEY": "k", "ARB_CAPITAL_COM_IDENTIFIER": "i", "ARB_CAPITAL_COM_PASSWORD": "p"}
    )

    connector = capital_com_connector(settings, lambda q: None, credentials=creds)

    assert settings.mode == "paper"
    assert connector.endpoint.rest_url == "https://demo-api-capital.backend-capital.com"
    assert connector.epics["EURUSD"] == "EUR/USD"
    assert len(connector.epics) == sum("capital_com" in i.venues for i in settings.instruments.values())


def test_the_settings_connector_without_credentials_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for what in ("API_KEY", "IDENTIFIER", "PASSWORD"):
        monkeypatch.delenv(f"ARB_CAPITAL_COM_{what}", raising=False)

    with pytest.raises(ValueError, match="set ARB_CAPITAL_COM_API_KEY, _IDENTIFIER and _PASSWORD"):
        capital_com_connector(load_settings(None), lambda q: None)
