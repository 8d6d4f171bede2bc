"""Command lines bpexp prints for people to copy: they must run as printed from a fresh shell.

After ``make demo`` the project's ``.venv/bin`` is not on the user's PATH, so a
printed ``bpexp ui`` or ``mlflow models serve ...`` fails (command not found, or
``uvicorn ... Return code = 127``). Printed commands therefore name the
``bpexp`` of the running environment by its absolute path, unless the ``bpexp``
found on PATH is that very program; serving goes through ``bpexp serve``, which
finds uvicorn in its own environment.

Standard library only: every layer may use it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def bpexp_program(*, bare_if_on_path: bool = True) -> str:
    """How to invoke this environment's ``bpexp`` from any shell.

    Parameters
    ----------
    bare_if_on_path : bool
        Return plain ``bpexp`` when the ``bpexp`` on PATH is this environment's one.
        Pass False for text that outlives the shell (a model card).

    Returns
    -------
    str
        ``bpexp``, ``/abs/path/.venv/bin/bpexp``, or ``/abs/python -m bpexp.cli``
        when no ``bpexp`` script exists (a checkout used without installing).
    """
    # sys.executable is the venv's python (a symlink: not resolved, so its bin dir is the venv's).
    script = Path(sys.executable).absolute().with_name("bpexp")
    if not script.is_file():
        return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m bpexp.cli"
    if bare_if_on_path:
        found = shutil.which("bpexp")
        if found and os.path.realpath(found) == os.path.realpath(script):
            return "bpexp"
    return shlex.quote(str(script))


def bpexp_command(*args, bare_if_on_path: bool = True) -> str:
    """A ``bpexp ARGS...`` command line (arguments shell-quoted) that runs as printed.

    Examples
    --------
    >>> bpexp_command("ui").endswith("bpexp ui")
    True
    """
    return " ".join([bpexp_program(bare_if_on_path=bare_if_on_path), *(shlex.quote(str(a)) for a in args)])


def serve_command(model: str, port: int = 5001, tracking_uri: str | None = None, *,
                  bare_if_on_path: bool = True) -> str:
    """The command serving ``model`` (a folder or ``models:/`` URI) on 127.0.0.1:``port``.

    ``tracking_uri`` is passed for ``models:/`` URIs (they are resolved through the
    registry). A password in it is masked (:func:`bpexp.redaction.redact`): printed
    text never carries one, so such a command needs ``$MLFLOW_TRACKING_URI`` (or
    ``MLFLOW_TRACKING_PASSWORD``) set by the user instead.
    """
    from bpexp.redaction import MASK, redact

    args = ["serve", str(model), "--port", str(port)]
    if tracking_uri and str(model).startswith("models:/"):
        shown = redact(tracking_uri)
        if MASK not in shown:
            args += ["--tracking-uri", shown]
    return bpexp_command(*args, bare_if_on_path=bare_if_on_path)


def store_args(tracking_uri: str | None) -> list[str]:
    """``["--tracking-uri", URI]`` when a printed command must name the store, else ``[]``.

    A command run from the same directory finds the same store by itself when
    ``tracking_uri`` is what it would resolve to anyway (``$MLFLOW_TRACKING_URI``
    or the project's ``mlruns/``). The URI is shown with its password masked.
    """
    from bpexp.redaction import redact
    from bpexp.tracking.store import resolve_tracking_uri

    if not tracking_uri or tracking_uri == resolve_tracking_uri(None):
        return []
    return ["--tracking-uri", redact(tracking_uri)]
