"""HiPER's answer format, registered as the ``hiper`` prompt format.

Each turn the agent answers ``<switch>KEEP|SWITCH</switch><subgoal>..</subgoal><action>..</action>``; the prompt
shows the subgoal it wrote last (the format *carries* its ``subgoal`` part). The expert of the SFT warm start
writes the milestone it works on as the subgoal and ``SWITCH`` whenever that milestone differs from the
previous turn's (and at turn 0), else ``KEEP``.
"""

from __future__ import annotations

from collections.abc import Mapping

from trainers.core.prompts import TAGGED, PromptFormat
from trainers.core.registry import FORMATS

__all__ = ["HIPER_FORMAT", "expert_switch"]


def expert_switch(values: Mapping[str, str | None], *, turn_idx: int, previous: str | None) -> dict[str, str]:
    """The expert's switch decision: ``SWITCH`` at turn 0 and when the milestone changed, else ``KEEP``."""
    return {"switch": "SWITCH" if turn_idx == 0 or values.get("subgoal") != previous else "KEEP"}


HIPER_FORMAT = FORMATS.register("hiper")(PromptFormat(
    name="hiper",
    instruction=(
        "Now it's your turn to act. First decide whether to keep the current subgoal or switch to a "
        "new one, and write KEEP or SWITCH within <switch> </switch> tags. Then write the subgoal you "
        "pursue within <subgoal> </subgoal> tags. Finally choose an admissible action for the current "
        "step and present it within <action> </action> tags."
    ),
    fields=("switch", "subgoal", "action"),
    field_templates=TAGGED,
    defaults={"switch": "KEEP", "subgoal": "{action}"},
    carry="subgoal",
    carry_line="Your current subgoal is: {}",
    carry_empty="none yet",
    expert=expert_switch,
))
