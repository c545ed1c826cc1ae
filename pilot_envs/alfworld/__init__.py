"""The native ALFWorld-compatible household engine (pure Python)."""
