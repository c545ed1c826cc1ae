"""What every text env shares: spaces, the action protocol, tasks and subgoals, rewards, the env class."""
