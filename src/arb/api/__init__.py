"""API: the FastAPI app (auth; arbitrage, portfolio, risk, monitoring, backtest and strategy routers)."""
