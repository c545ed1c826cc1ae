"""Makes ``envs_under_test`` (the registry of env ids the tests parametrise over) importable and checks it."""

from __future__ import annotations

import envs_under_test  # noqa: F401  (asserts the registry is not empty)
