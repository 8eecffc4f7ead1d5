"""Sim: local venues on 127.0.0.1 that speak real exchange protocols, for the demo, tests and benchmarks."""
