"""Alembic migrations of the ledger schema (run by `arb.ledger.migrate.upgrade_to_head`, not imported by arb)."""
