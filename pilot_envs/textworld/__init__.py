"""PilotTextWorld-v0: games made by TextWorld's own generators, played by the real TextWorld engine."""
