"""Honest spaces and the shared-memory codecs that make AsyncVectorEnv correct for text."""

from __future__ import annotations

import copy

import numpy as np
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory
from hypothesis import given
from hypothesis import strategies as st

from pilot_envs.core.spaces import CHARSET, PilotText, TextList, observation_space, sanitize


def test_text_space_charset_and_empty():
    space = PilotText(64)
    assert space.contains("")
    assert space.contains("You arrive at cabinet 1. On it: a mug 1, and nothing.")
    assert not space.contains("x" * 65)
    assert not space.contains("\x00")


def test_text_list_bounds():
    space = TextList(2, 10)
    assert space.contains(()) and space.contains(("a", "b"))
    assert not space.contains(("a", "b", "c"))
    assert not space.contains(["a"])  # lists are not tuples: gymnasium's Sequence convention
    for _ in range(20):
        assert space.contains(space.sample())


@given(st.text(max_size=200))
def test_sanitize_maps_into_charset(text):
    out = sanitize(text)
    assert all(c in CHARSET for c in out)
    assert len(out) == len(text)


@given(
    texts=st.lists(st.text(alphabet=CHARSET, max_size=50), min_size=3, max_size=3),
    lists=st.lists(st.lists(st.text(alphabet=CHARSET, max_size=20), max_size=5).map(tuple), min_size=3, max_size=3),
)
def test_shared_memory_round_trip(texts, lists):
    space = observation_space(num_subgoals=4, max_commands=8, text_max=64)
    shm = create_shared_memory(space, n=3)
    view = read_from_shared_memory(space, shm, n=3)
    for i in range(3):
        obs = {"text": texts[i], "task": texts[i][:10], "plan": lists[i], "subgoals_done": np.ones(4, np.int8),
               "progress": np.array([0.5], np.float32), "admissible_commands": lists[i]}
        write_to_shared_memory(space, i, obs, shm)
    snapshot = copy.deepcopy(view)
    assert snapshot["text"] == tuple(texts)
    assert snapshot["admissible_commands"] == tuple(lists)
    # the view is live: a later write shows through, the deep copy does not change
    write_to_shared_memory(space, 0, {**{k: v[0] for k, v in snapshot.items()}, "text": "changed"}, shm)
    assert view["text"][0] == "changed" and snapshot["text"][0] == texts[0]
