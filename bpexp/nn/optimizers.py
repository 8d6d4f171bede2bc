"""Gradient-step rules that update the model's flat parameter array in place.

Every optimizer keeps its state in arrays shaped like the parameters and
updates them with ``out=`` operations, so a step allocates nothing. Weight
decay (AdamW) touches the weights only: they are the prefix
``params[:n_weights]``.

A step is a handful of whole-array passes, and the step's cost is the number
of passes (each ~25 us over MNIST's 235,146 float32 parameters; ``np.sqrt`` ~85):
every constant factor is folded into one scalar so that no pass is spent on it,
and ``g * g`` is used instead of ``np.square`` (same numbers, ~30 % faster).
Fusing further is not possible in NumPy alone (no fused multiply-add ufunc):
Adam is 10 passes, RMSprop 8, SGD with momentum 4. Running each half of the
arrays on a second thread (NumPy releases the GIL in each pass) was tried and
measured: the step alone got ~25 % faster, a whole MNIST-shaped epoch did not
(0.478 s vs 0.502 s, 6 interleaved reps: after each product OpenBLAS's worker
spins on the other core, and the hand-offs cost what the halves gain), so
the step stays on one thread.
"""

from __future__ import annotations

import math

import numpy as np

from bpexp.errors import InvalidInputError


class Optimizer:
    """Base class.

    Parameters
    ----------
    lr : float
        The base learning rate; a schedule may change :attr:`lr` between epochs.
    """

    name = ""
    default_lr = 0.01

    def __init__(self, lr: float | None = None):
        self.lr = float(self.default_lr if lr is None else lr)
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise InvalidInputError(f"learning rate must be a positive number, got {lr}")

    def setup(self, params: np.ndarray, n_weights: int) -> None:
        """Allocate fresh state for ``params`` (called once per :func:`bpexp.fit`)."""
        self.n_weights = n_weights
        self._tmp = np.empty_like(params)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads``."""
        raise NotImplementedError

    def config(self) -> dict:
        """The hyperparameters, for logging."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "n_weights"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With momentum ``mu`` the update is PyTorch's: ``v = mu v + g``;
    ``p -= lr v`` (or ``p -= lr (g + mu v)`` with Nesterov).
    """

    name = "sgd"

    def __init__(self, lr: float | None = None, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise InvalidInputError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise InvalidInputError("nesterov=True needs a momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def setup(self, params, n_weights):
        super().setup(params, n_weights)
        self._v = np.zeros_like(params) if self.momentum else None

    def step(self, params, grads):
        tmp = self._tmp
        if self._v is None:
            np.multiply(grads, self.lr, out=tmp)
        else:
            v = self._v
            v *= self.momentum
            v += grads
            if self.nesterov:
                np.multiply(v, self.momentum, out=tmp)
                tmp += grads
                tmp *= self.lr
            else:
                np.multiply(v, self.lr, out=tmp)
        params -= tmp


class Adam(Optimizer):
    """Adam with bias correction; the step counter starts at 1 and counts updates.

    The update is the textbook one (Kingma & Ba, Algorithm 1)::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    The state is kept as ``M = m / (1 - b1)`` and ``V = v / (1 - b2)`` (so
    ``M = b1 M + g``, ``V = b2 V + g^2``) with the constant factors folded into
    the step size and eps: the same numbers with two fewer passes over the
    parameters per step, which is where an epoch's time goes besides the matrix
    products.
    """

    name = "adam"
    default_lr = 1e-3

    def __init__(self, lr: float | None = None, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        for nm, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise InvalidInputError(f"{nm} must be in [0, 1), got {b}")
        if not eps > 0:
            raise InvalidInputError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def setup(self, params, n_weights):
        super().setup(params, n_weights)
        self._m = np.zeros_like(params)  # M = m / (1 - beta1)
        self._v = np.zeros_like(params)  # V = v / (1 - beta2)
        self._t = 0

    def _decay(self, params):
        pass

    def step(self, params, grads):
        self._t += 1
        b1, b2, m, v, tmp = self.beta1, self.beta2, self._m, self._v, self._tmp
        m *= b1
        m += grads
        v *= b2
        np.multiply(grads, grads, out=tmp)
        v += tmp
        self._decay(params)
        # m_hat = (1 - b1) M / (1 - b1^t) and sqrt(v_hat) = s sqrt(V) with s = sqrt((1 - b2) / (1 - b2^t)), so
        # lr m_hat / (sqrt(v_hat) + eps) = lr_t M / (sqrt(V) + eps / s),  lr_t = lr (1 - b1) / ((1 - b1^t) s).
        s = math.sqrt((1.0 - b2) / (1.0 - b2**self._t))
        lr_t = self.lr * (1.0 - b1) / ((1.0 - b1**self._t) * s)
        np.sqrt(v, out=tmp)
        tmp += self.eps / s
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        params -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter) on weights only.

    Each step multiplies the weights (not the biases) by ``1 - lr * weight_decay``
    before the Adam update; the decay never enters the gradient moments.
    """

    name = "adamw"

    def __init__(self, lr: float | None = None, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, beta1, beta2, eps)
        if weight_decay < 0:
            raise InvalidInputError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)

    def _decay(self, params):
        if self.weight_decay:
            params[: self.n_weights] *= 1.0 - self.lr * self.weight_decay


class RMSprop(Optimizer):
    """RMSprop: ``s = rho s + (1 - rho) g^2``; ``p -= lr g / (sqrt(s) + eps)``.

    As in :class:`Adam`, the state is kept as ``S = s / (1 - rho)`` (one pass
    fewer per step) with the constant folded into the step size and eps.
    """

    name = "rmsprop"
    default_lr = 1e-3

    def __init__(self, lr: float | None = None, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(lr)
        if not 0.0 <= rho < 1.0:
            raise InvalidInputError(f"rho must be in [0, 1), got {rho}")
        if not eps > 0:
            raise InvalidInputError(f"eps must be positive, got {eps}")
        self.rho, self.eps = float(rho), float(eps)

    def setup(self, params, n_weights):
        super().setup(params, n_weights)
        self._s = np.zeros_like(params)  # S = s / (1 - rho)

    def step(self, params, grads):
        s, tmp = self._s, self._tmp
        s *= self.rho
        np.multiply(grads, grads, out=tmp)
        s += tmp
        # sqrt(s) = c sqrt(S) with c = sqrt(1 - rho): lr g / (sqrt(s) + eps) = (lr / c) g / (sqrt(S) + eps / c).
        c = math.sqrt(1.0 - self.rho)
        np.sqrt(s, out=tmp)
        tmp += self.eps / c
        np.divide(grads, tmp, out=tmp)
        tmp *= self.lr / c
        params -= tmp


OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (SGD, Adam, AdamW, RMSprop)}


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None, **options) -> Optimizer:
    """Build an optimizer from a name (plus ``lr`` and options) or pass one through.

    Raises
    ------
    InvalidInputError
        Unknown name, an option the optimizer does not take, or ``lr``/options
        given alongside an optimizer instance (they would be ignored silently).
    """
    if isinstance(optimizer, Optimizer):
        if lr is not None or options:
            raise InvalidInputError(
                "lr and optimizer options go into the optimizer object when you pass one, "
                f"e.g. {type(optimizer).__name__}(lr=...); got lr={lr!r}, options={options}"
            )
        return optimizer
    cls = OPTIMIZERS.get(optimizer) if isinstance(optimizer, str) else None
    if cls is None:
        raise InvalidInputError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
    try:
        return cls(lr=lr, **options)
    except TypeError:
        import inspect

        valid = [p for p in inspect.signature(cls).parameters if p != "lr"]
        bad = sorted(set(options) - set(valid))
        raise InvalidInputError(
            f"optimizer {optimizer!r} does not take {bad}; its options are {valid}"
        ) from None
