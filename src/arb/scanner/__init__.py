"""Scanner: fee-, gas- and slippage-adjusted spread matrix and priority scores over the grid mirror.

`kernel` (the vectorised spread matrix), `reference` (the plain-Python scanner it is tested against), `costs` (fees,
haircuts, gas per cell), `score` (priority factors), `engine` (`Scanner`: lifecycle over the live mirror), `stream`
(lifecycle events on Redis).
"""
