"""The per-epoch record that :func:`bpexp.fit` returns."""

from __future__ import annotations


class History:
    """Per-epoch logs of one :func:`bpexp.fit` call.

    ``history["val_loss"]`` is the list of that value over epochs,
    ``history[-1]`` the last epoch's dict of logs, ``len(history)`` the number
    of epochs run.

    Attributes
    ----------
    epochs : list of dict
        One dict of logs per epoch (``epoch`` counts from 1).
    stop_reason : str or None
        Why training ended before ``epochs`` (early stopping, a callback).
    best_epoch : int or None
        The epoch whose weights the model holds after early stopping restored them.
    status : str
        ``"completed"``, ``"stopped"`` (by a callback), ``"interrupted"`` or ``"failed"``.
    blas_threads : int or None
        The BLAS thread count training ended with (see ``fit(threads=...)``); None without threadpoolctl.
    """

    def __init__(self):
        self.epochs: list[dict] = []
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None
        self.status = "running"
        self.blas_threads: int | None = None

    def append(self, logs: dict) -> None:
        self.epochs.append(logs)

    @property
    def history(self) -> dict[str, list]:
        """Keras-style ``{key: [value per epoch]}`` (keys missing in an epoch are skipped)."""
        keys = dict.fromkeys(k for e in self.epochs for k in e)
        return {k: [e[k] for e in self.epochs if k in e] for k in keys}

    def __getitem__(self, key):
        if isinstance(key, str):
            return [e[key] for e in self.epochs if key in e]
        return self.epochs[key]

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self):
        return iter(self.epochs)

    def __eq__(self, other) -> bool:
        return isinstance(other, History) and self.epochs == other.epochs

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        keys = ("train_loss", "val_loss", "val_accuracy", "val_r2")
        shown = {k: round(last[k], 4) for k in keys if k in last}
        return f"History(epochs={len(self)}, status={self.status!r}, last={shown})"
