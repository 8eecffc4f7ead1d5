"""Hedging: close the residual exposure a partial or failed pair leaves, on the best venue."""
