"""Credentials out of everything bpexp writes or prints.

A tracking URI such as ``http://alice:pa55word@mlflow-host:5000`` or an Optuna
storage such as ``postgresql://bob:p@ss@db-host/optuna`` carries a password.
bpexp needs the full URI to connect, but every place that *shows* or *stores*
one (messages, run tags, Optuna study attributes, model cards, the "see it:"
line) goes through :func:`redact` first.

The user-info part of a URI ends at its **last** ``@`` before the host (as
``urllib.parse`` and SQLAlchemy's ``make_url`` read it), so an unencoded ``@``
inside a password is masked too, not split in two. The user name is kept (it
tells which account is used), the password becomes ``***``; query parameters
named like secrets (``password=``, ``token=``...) are masked as well.

NumPy-free and import-free, so every layer may use it.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ : userinfo runs, greedily, up to the last "@" before the first "/" or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/]*)@")
# ?password=...&token=... inside a URI (stops at whitespace, "&", "#" or a quote).
_SECRET_QUERY = re.compile(r"(?P<key>[?&;](?:[A-Za-z_]*(?:password|passwd|pwd|secret|token|api_?key|access_?key)"
                           r"[A-Za-z_]*)=)(?P<value>[^\s&#'\"]+)", re.IGNORECASE)


def _mask_userinfo(match: re.Match) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    if not sep:
        return match.group(0)  # a user name alone (postgres@host) is no secret
    return f"{match.group('scheme')}{user}:{MASK}@"


def redact(text) -> str:
    """``text`` with the password of every URI in it replaced by ``***``.

    Parameters
    ----------
    text : str
        A URI, or any message that may contain URIs.

    Returns
    -------
    str

    Examples
    --------
    >>> redact("http://alice:pa55word@127.0.0.1:5000")
    'http://alice:***@127.0.0.1:5000'
    >>> redact("cannot open postgresql://bob:p@ss@db/optuna: refused")
    'cannot open postgresql://bob:***@db/optuna: refused'
    """
    if text is None:
        return text
    text = str(text)
    if "://" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, text)


def redact_mapping(values: dict) -> dict:
    """A copy of ``values`` (tags, params, attributes) with every string value redacted."""
    return {k: redact(v) if isinstance(v, str) else v for k, v in values.items()}
