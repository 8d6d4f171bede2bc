"""The ``bpexp`` command. Subcommands import what they need lazily, so ``--help`` is fast.

Each area keeps its commands in its own module (``tracking_commands``,
``sweep_commands``, ``export_commands``) as a ``COMMANDS`` list.
"""

from __future__ import annotations

import click

from bpexp._version import __version__
from bpexp.cli import export_commands, sweep_commands, tracking_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bpexp")
def main() -> None:
    """Train, track, tune and ship multilayer perceptrons.

    \b
    Quick tour:
      bpexp train experiments/digits.yaml --set optimizer.lr=0.003
      bpexp runs --experiment digits
      bpexp ui
    """


for _command in (*tracking_commands.COMMANDS, *sweep_commands.COMMANDS, *export_commands.COMMANDS):
    main.add_command(_command)
