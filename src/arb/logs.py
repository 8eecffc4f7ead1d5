"""Structured logging: one event per line, `key=value`, on stderr (stdout is for command output)."""

from __future__ import annotations

import logging
import sys
import time
from urllib.parse import urlsplit, urlunsplit


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        # one event per line, whatever a library puts in its message (web3 logs multi-line subscription notes)
        message = record.getMessage().replace("\n", " ")
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} event={message}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every migration context at INFO (plugins, "Will assume transactional DDL"); the ledger logs
    # the one line that matters (`ledger.migrating` / `ledger.opened`).
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # web3 narrates every subscription and queue sync at INFO; the DEX connector logs what matters (`dex.*`).
    logging.getLogger("web3").setLevel(max(logging.WARNING, root.level))


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`, for logs and output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
