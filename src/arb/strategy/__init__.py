"""Strategy: the directional layer (indicators, news sentiment, RL signal on 1H candles, blending)."""
