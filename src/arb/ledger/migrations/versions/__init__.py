"""One module per schema revision; Alembic loads them by file, in the order their `down_revision` chain gives."""
