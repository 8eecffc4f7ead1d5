"""Backtest: replay recorded grid streams through scanner and executor; directional and walk-forward tests."""
