"""Output heads fused with their loss.

Only the pairs whose gradient with respect to the logits is ``(y_hat - y) / N``
(or, for Huber, its clipped form) exist, so an output/loss mismatch cannot be
built. Each head works in place on the logits buffer, and its per-row
temporaries are reused work arrays (:func:`bpexp.nn.scratch.scratch`), so a
training step allocates nothing here.

Losses are sums over outputs, averaged over samples:

* softmax + cross-entropy: ``mean_i(-log p_i[y_i])`` with a log-sum-exp shift;
* sigmoid + binary cross-entropy: ``mean_i sum_k max(z,0) - z y + log1p(exp(-|z|))``;
* identity + MSE: ``mean_i sum_k (y_hat - y)^2 / 2`` (half the squared error, as in
  scikit-learn, so that the gradient is exactly the residual);
* identity + Huber: ``mean_i sum_k huber_delta(y_hat - y)``.
"""

from __future__ import annotations

import numpy as np

from bpexp.errors import InvalidInputError
from bpexp.nn.scratch import scratch


class Head:
    """An output activation fused with its loss.

    Attributes
    ----------
    output, loss : str
        The registry names of the pair.
    target_kind : str
        ``"index"`` for integer class indices of shape (N,), ``"matrix"`` for
        float targets of shape (N, K).
    """

    output = ""
    loss = ""
    target_kind = "matrix"

    def forward_loss(self, z: np.ndarray, y: np.ndarray) -> float:
        """Turn logits ``z`` into outputs in place and return the mean loss."""
        raise NotImplementedError

    def output_only(self, z: np.ndarray) -> np.ndarray:
        """Turn logits into outputs in place (no targets needed)."""
        raise NotImplementedError

    def n_correct(self, out: np.ndarray, y: np.ndarray) -> int:
        """Rows whose thresholded outputs match the targets (0 for regression heads)."""
        hit = np.greater_equal(out, 0.5, out=scratch(self, "hit", out.shape, bool))
        truth = np.greater_equal(y, 0.5, out=scratch(self, "truth", out.shape, bool))
        np.equal(hit, truth, out=hit)
        return int(np.count_nonzero(hit.all(axis=1, out=scratch(self, "row", out.shape[:1], bool))))

    def delta(self, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Overwrite the outputs with dLoss/dz and return them."""
        n = out.shape[0]
        out -= y
        out *= 1.0 / n
        return out

    def config(self) -> dict:
        """Constructor options, saved with the model."""
        return {}

    @property
    def name(self) -> str:
        return f"{self.output}+{self.loss}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Head):
    output = "softmax"
    loss = "cross_entropy"
    target_kind = "index"

    def _work(self, n: int, k: int, dtype) -> tuple:
        """Per-batch-shape work arrays: row maxima, row sums, true-class values, flat indices, ones."""
        cache = self.__dict__.setdefault("_work_cache", {})
        key = (n, k, dtype)
        work = cache.get(key)
        if work is None:
            if len(cache) >= 8:  # training needs two shapes (full and last batch); stay bounded otherwise
                cache.clear()
            work = cache[key] = (
                np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype), np.empty(n, np.intp),
                np.arange(n, dtype=np.intp) * k, np.ones(k, dtype), np.ones(n, dtype),
            )
        return work

    def forward_loss(self, z, y):
        # Tiny row-wise steps: a NumPy call costs 0.3-6 us here, so the cheapest form of each is used:
        # array methods (z.take, z.argmax: ~0.4 us) rather than the np.* functions wrapping them (~5 us),
        # BLAS products for the sums, and mode="clip" (the default mode="raise" buffers the output).
        n, k = z.shape
        mx, s, z_true, flat, row_start, ones_k, ones_n = self._work(n, k, z.dtype)
        z.max(axis=1, out=mx)
        z -= mx[:, None]
        np.add(row_start, y, out=flat)
        z.reshape(-1).take(flat, out=z_true, mode="clip")
        np.exp(z, out=z)
        np.matmul(z, ones_k, out=s)
        z /= s[:, None]
        # loss_i = log(sum_j exp(z_j)) - z_true  (z already shifted by its max)
        np.log(s, out=s)
        return float(s.dot(ones_n) - z_true.dot(ones_n)) / n

    def output_only(self, z):
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def n_correct(self, out, y):
        n = out.shape[0]
        pred = out.argmax(axis=1, out=scratch(self, "argmax", (n,), np.intp))
        return int(np.count_nonzero(np.equal(pred, y, out=scratch(self, "hit", (n,), bool))))

    def delta(self, out, y):
        n, k = out.shape
        _, _, p_true, flat, row_start, _, _ = self._work(n, k, out.dtype)
        np.add(row_start, y, out=flat)
        flat_out = out.reshape(-1)
        flat_out.take(flat, out=p_true, mode="clip")
        p_true -= 1
        flat_out.put(flat, p_true, mode="clip")
        out *= 1.0 / n
        return out


class SigmoidBinaryCrossEntropy(Head):
    output = "sigmoid"
    loss = "binary_cross_entropy"

    def forward_loss(self, z, y):
        n = z.shape[0]
        # Stable BCE with logits: max(z, 0) - z*y + log1p(exp(-|z|)).
        t = np.maximum(z, 0, out=scratch(self, "t", z.shape, z.dtype))
        loss = float(t.sum()) - float(np.vdot(z, y))
        np.abs(z, out=t)
        np.negative(t, out=t)
        np.exp(t, out=t)
        np.log1p(t, out=t)
        loss += t.sum()
        self.output_only(z)
        return float(loss) / n

    def output_only(self, z):
        z *= 0.5
        np.tanh(z, out=z)
        z *= 0.5
        z += 0.5
        return z


class IdentityMSE(Head):
    output = "identity"
    loss = "mse"

    def forward_loss(self, z, y):
        r = np.subtract(z, y, out=scratch(self, "r", z.shape, z.dtype))
        return 0.5 * float(np.vdot(r, r)) / z.shape[0]

    def output_only(self, z):
        return z

    def n_correct(self, out, y):
        return 0


class IdentityHuber(IdentityMSE):
    output = "identity"
    loss = "huber"

    def __init__(self, delta: float = 1.0):
        if not float(delta) > 0:
            raise InvalidInputError(f"huber delta must be positive, got {delta}")
        self.huber_delta = float(delta)

    def config(self):
        return {"delta": self.huber_delta}

    def forward_loss(self, z, y):
        d = self.huber_delta
        r = np.subtract(z, y, out=scratch(self, "r", z.shape, z.dtype))
        np.abs(r, out=r)
        quad = np.minimum(r, d, out=scratch(self, "quad", z.shape, z.dtype))
        # 0.5 q^2 + d (r - q): quadratic inside the band, linear outside.
        sq = float(np.vdot(quad, quad))
        r -= quad
        loss = 0.5 * sq + d * float(r.sum())
        return loss / z.shape[0]

    def output_only(self, z):
        return z

    def delta(self, out, y):
        n = out.shape[0]
        out -= y
        np.clip(out, -self.huber_delta, self.huber_delta, out=out)
        out *= 1.0 / n
        return out


HEADS: dict[tuple[str, str], type[Head]] = {
    (cls.output, cls.loss): cls
    for cls in (SoftmaxCrossEntropy, SigmoidBinaryCrossEntropy, IdentityMSE, IdentityHuber)
}

#: The default (output, loss) pair for each task.
TASK_DEFAULTS = {
    "classification": None,  # softmax+cross_entropy, or sigmoid+bce for a single output unit
    "multilabel": ("sigmoid", "binary_cross_entropy"),
    "regression": ("identity", "mse"),
}


def get_head(task: str, n_outputs: int, output: str | None = None, loss: str | None = None) -> Head:
    """Return the fused head for ``task`` (or an explicit ``output``/``loss`` pair).

    Raises
    ------
    InvalidInputError
        For an unknown task, an invalid output/loss pair, or a pair that does not
        suit the task or the number of outputs.
    """
    if task not in TASK_DEFAULTS:
        raise InvalidInputError(f"unknown task {task!r}; expected one of {sorted(TASK_DEFAULTS)}")
    if output is None and loss is None:
        if task == "classification":
            pair = ("sigmoid", "binary_cross_entropy") if n_outputs == 1 else ("softmax", "cross_entropy")
        else:
            pair = TASK_DEFAULTS[task]
    else:
        pair = (output or _default_output(loss), loss or _default_loss(output))
    if pair not in HEADS:
        valid = ", ".join(f"{o}+{l}" for o, l in HEADS)
        raise InvalidInputError(
            f"invalid output/loss pair {pair[0]!r} + {pair[1]!r}; valid pairs are {valid}"
        )
    allowed = {
        "classification": {("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")},
        "multilabel": {("sigmoid", "binary_cross_entropy")},
        "regression": {("identity", "mse"), ("identity", "huber")},
    }[task]
    if pair not in allowed:
        raise InvalidInputError(f"output/loss pair {pair[0]}+{pair[1]} does not suit task {task!r}")
    if pair == ("softmax", "cross_entropy") and n_outputs < 2:
        raise InvalidInputError(
            "softmax + cross_entropy needs at least 2 output units; "
            "use 1 output unit with sigmoid + binary_cross_entropy for binary classification"
        )
    if task == "classification" and pair[0] == "sigmoid" and n_outputs != 1:
        raise InvalidInputError(
            f"binary classification with a sigmoid head has 1 output unit, got {n_outputs}; "
            "use task='multilabel' for several independent labels"
        )
    return HEADS[pair]()


def _default_output(loss):
    return {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")


def _default_loss(output):
    return {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(output, "mse")
