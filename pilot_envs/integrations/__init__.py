"""Adapters that let other training stacks use the envs (imported explicitly; nothing here is imported by
``pilot_envs`` itself, so the optional dependencies of an adapter load only when it is used).

- :mod:`pilot_envs.integrations.trl`: TRL's ``GRPOTrainer(environment_factory=...)`` (the ``[trl]`` extra);
  :mod:`pilot_envs.integrations.trl_warmstart`: warm starts and evaluation in TRL's layout.
"""
