"""The native engine says exactly what the real ALFWorld engine says (needs the `alfworld` extra).

240 generated tasks (every task type, seen and unseen room layouts, small and full-size rooms) are exported
as real ALFWorld games and played in both engines with the same commands: the expert's plan with random
admissible commands and invalid commands mixed in. Feedback text, admissible command sets and `won` must be
identical after every command.
"""

from __future__ import annotations

import pytest

pytest.importorskip("alfworld", reason="the differential test needs the real engine: pip install pilot-envs[alfworld]")

from pilot_envs.alfworld.differential import compare_scene, differential_scenes
from pilot_envs.alfworld.scene import TASK_TYPES

CHUNKS, PER_CHUNK = 12, 20
SCENES = differential_scenes(CHUNKS * PER_CHUNK, seed=2026)


def test_scenes_cover_every_type_and_both_room_sets():
    assert {s.task.task_type for s in SCENES} == set(TASK_TYPES)
    assert {s.task_id.split("/")[0] for s in SCENES} == {"train", "valid_unseen"}
    assert any(len(s.receptacles) > 8 for s in SCENES) and any(len(s.receptacles) <= 8 for s in SCENES)


@pytest.mark.engine
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_native_engine_matches_real_alfworld(chunk, tmp_path):
    failures, wins = [], 0
    for k in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        res = compare_scene(SCENES[k], seed=k, max_steps=30, workdir=tmp_path)
        wins += res.won
        if res.mismatches:
            m = res.mismatches[0]
            failures.append(f"{res.task_id} step {m.step} {m.command!r} [{m.what}]\n native={m.native!r}\n real={m.real!r}")
    assert not failures, "\n".join(failures)
    assert wins >= PER_CHUNK * 0.9, "the expert-driven command sequences should mostly reach the goal"
