"""``bpexp sweep`` (Optuna studies)."""

COMMANDS: list = []
