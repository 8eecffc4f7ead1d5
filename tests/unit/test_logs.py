"""Structured logs: one event per line, whatever a library writes."""

from __future__ import annotations

import logging

import pytest

from arb.logs import configure_logging


def test_a_multi_line_message_stays_one_line_and_web3_chatter_is_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        logging.getLogger("arb.test").info("subscribed:\n    label: NewHeads")
        logging.getLogger("web3.providers.persistent").info("Successfully subscribed to subscription:\n  x")
        logging.getLogger("web3.providers.persistent").warning("reconnecting")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("logger=arb.test event=subscribed:     label: NewHeads")
    assert "level=warning logger=web3.providers.persistent event=reconnecting" in lines[1]
