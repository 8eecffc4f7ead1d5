"""Executor: paired-leg execution, order state machine, idempotent client ids, timeouts, paper venue."""
