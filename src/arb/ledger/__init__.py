"""Ledger: SQLAlchemy models and repositories for opportunities, intents, orders, fills, positions and runs."""
