"""Exceptions raised by bpexp.

Every error about bad input subclasses :class:`ValueError`, so callers that
already catch ``ValueError`` keep working; the bpexp subclasses let callers be
more precise.
"""


class BpexpError(Exception):
    """Base class of all bpexp errors.

    Messages often name a tracking URI or a storage URL; any password in them is
    masked here (:func:`bpexp.redaction.redact`), so no bpexp error, printed or
    stored in a ``bpexp.error`` tag, carries a credential.
    """

    def __init__(self, *args):
        from bpexp.redaction import redact

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class InvalidInputError(BpexpError, ValueError):
    """Data, shapes, labels or names given to bpexp are not usable."""


class ModelFormatError(BpexpError, ValueError):
    """A saved model folder is missing, incomplete or tampered with."""


class TrainingDivergedError(BpexpError, ArithmeticError):
    """The loss or the weights became non-finite during training.

    The model's weights are restored to the last finite state before this is
    raised, so no NaN weights are left behind.
    """
