"""Risk: pre-trade checks, limits, kill switch and portfolio risk; every order passes through it."""
