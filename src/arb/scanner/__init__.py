"""Scanner: fee-, gas- and slippage-adjusted spread matrix and priority scores over the grid mirror."""
