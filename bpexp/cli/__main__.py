"""``python -m bpexp.cli``: the ``bpexp`` command without its script."""

from bpexp.cli import run

run()
