"""Reference RL trainers for the pilot-envs suite."""
