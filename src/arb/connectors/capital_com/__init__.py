"""Capital.com (CFDs: FX, commodities, indices, crypto): our own connector, since there is no ccxt class for it.

Built on Capital.com's public API documentation: https://open-api.capital.com/ (REST: session, markets, positions,
working orders, confirms; WebSocket: `marketData.subscribe`, `quote`, `ping`) and
https://capital.com/api-general-information (base URLs, 10 requests/s per user, one position/order request per
0.1 s, one session per second, sessions lapsing 10 minutes after last use, at most 40 instruments per streaming
connection). One module per concern, like every venue adapter (STYLE: one skeleton per venue adapter):

* `wire`   - payloads as typed Structs, quote conversion, opening hours;
* `limits` - the documented request limits, enforced before a request exists;
* `client` - `CapitalComClient`: the session (tokens, keep-alive, renewal, re-login) and every REST call;
* `orders` - `CapitalComTrader`: positions and working orders, confirmed by deal reference, never resent blind (E17);
* `stream` - `CapitalComConnector`: sharded streaming of quotes into the grid, market-closed periods marked as such.

    connector = capital_com_connector(settings, writer.put)       # credentials from ARB_CAPITAL_COM_*
    await connector.run()                                          # until cancelled, like CcxtConnector.run
"""

from __future__ import annotations

from arb.connectors.capital_com.client import (
    CapitalComClient,
    CapitalComCredentials,
    CapitalComError,
    CapitalComNotFound,
    ClientOptions,
    Endpoint,
    SessionExpired,
    endpoint_from_config,
)
from arb.connectors.capital_com.limits import RateLimits, RequestGate
from arb.connectors.capital_com.orders import CapitalComTrader, Deal, PositionRequest, WorkingOrderRequest
from arb.connectors.capital_com.stream import (
    CapitalComConnector,
    StreamOptions,
    capital_com_connector,
    shard_epics,
)
from arb.connectors.capital_com.wire import OpeningHours

__all__ = [
    "CapitalComClient",
    "CapitalComConnector",
    "CapitalComCredentials",
    "CapitalComError",
    "CapitalComNotFound",
    "CapitalComTrader",
    "ClientOptions",
    "Deal",
    "Endpoint",
    "OpeningHours",
    "PositionRequest",
    "RateLimits",
    "RequestGate",
    "SessionExpired",
    "StreamOptions",
    "WorkingOrderRequest",
    "capital_com_connector",
    "endpoint_from_config",
    "shard_epics",
]
