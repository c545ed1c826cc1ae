"""Play one planner_executor episode with scripted agents and print the transcript.

The planner writes the oracle plan (one step per subgoal, from ``info["subgoals"]``) whenever it has the
turn; the executor follows the oracle expert (``info["expert_action"]``). Swap either function for an LLM.

    python examples/multiagent_planner_executor.py --env-id PilotALFWorld-PickClean-v0 --seed 3
"""

from __future__ import annotations

import argparse

from pilot_envs.multiagent import planner_executor_v0


def planner(obs: dict, info: dict) -> str:
    steps = " ".join(f"Step {i + 1}: {goal}." for i, goal in enumerate(info["subgoals"]))
    return f"<think>The task is: {obs['task']}.</think><plan>{steps}</plan>"


def executor(obs: dict, info: dict) -> str:
    return f"<action>{info['expert_action'] or 'look'}</action>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="PilotALFWorld-v0", help="any single-agent id of pilot_envs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replan-every", type=int, default=None, help="planner's turn every k executor turns")
    args = parser.parse_args()

    env = planner_executor_v0.env(env_id=args.env_id, replan_every=args.replan_every, render_mode="ansi")
    env.reset(seed=args.seed)
    obs = env.observe("executor")
    print(f"TASK: {obs['task']}\n\n{obs['text']}\n")
    returns = dict.fromkeys(env.possible_agents, 0.0)
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        returns[agent] += reward
        if terminated or truncated:
            env.step(None)
            continue
        if agent == "planner":
            print(f"--- planner's turn ({info['trigger']})")
        env.step((planner if agent == "planner" else executor)(obs, info))
        print(env.render(), "\n")
    print(f"won: {info['won']}   returns: {returns}")
    env.close()


if __name__ == "__main__":
    main()
