"""Shared fixtures of the trainer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny matmuls gain nothing from threads, and OpenMP spin-waits collapse throughput on a loaded 2-core
    machine (measured: 2000 -> 30-130 tokens/s), so the trainer tests run single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
