"""The ``bpexp`` command. Subcommands import what they need lazily, so ``--help`` is fast."""

from __future__ import annotations

import click

from bpexp._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bpexp")
def main() -> None:
    """Train, track, tune and ship multilayer perceptrons."""


@main.command()
def demo() -> None:
    """Train an MLP on the digits dataset and print its test metrics."""
    import bpexp

    ds = bpexp.load_dataset("digits")
    parts = bpexp.split(ds, seed=0)
    model = bpexp.MLP([ds.n_features, 64, ds.n_outputs], activation="relu", standardize=True, seed=0)
    history = bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                        optimizer="adam", lr=1e-3, epochs=60, batch_size=32, seed=0,
                        callbacks=[bpexp.EarlyStopping(patience=10), bpexp.ProgressBar("digits")])
    metrics = bpexp.evaluate(model, parts.X_test, parts.y_test)
    click.echo(f"trained {model} for {len(history)} epochs ({history.stop_reason or 'all epochs'})")
    click.echo("test: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
