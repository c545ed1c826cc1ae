"""PilotScienceWorld-v0: the real ScienceWorld engine (Java) behind the pilot-envs contract."""
