"""``bpexp export`` and ``bpexp predict``."""

COMMANDS: list = []
