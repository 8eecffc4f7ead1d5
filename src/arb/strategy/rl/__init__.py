"""The RL signal: the futures environment and its cost model (`env`, `costs`), stable-baselines3 agents
(`agents`) and Optuna tuning (`tune`). Needs the `ml` extra; import the submodules you use."""
