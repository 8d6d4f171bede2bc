"""One MNIST-shaped epoch: bpexp vs scikit-learn vs the matmul floor, side by side.

Data: 60,000 x 784 float32 synthetic inputs, 10 classes; network 784-256-128-10
(ReLU), batch 128, Adam (lr 1e-3). Each repetition runs, interleaved, one epoch
of:

* floor   - the epoch's matrix products alone (same shapes, nothing else): the
            least any NumPy implementation of this epoch can cost;
* bpexp   - ``bpexp.fit(..., epochs=1)``; the epoch time is the trainer's own
            ``epoch_seconds`` (shuffling, batches, forward, backward, Adam,
            validation-free), and the whole call is reported too;
* sklearn - ``MLPClassifier.partial_fit`` (one epoch, same sizes, float32, alpha=0).

Medians and ratios are printed; on a shared machine absolute times drift but
same-run ratios hold. Targets (issue #2): bpexp <= 2.0x floor, <= 0.7x sklearn,
peak extra memory during fit <= 100 MB.

Run:  .venv/bin/python benchmarks/bench_epoch.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import warnings

import numpy as np

import bpexp

N, D, H1, H2, K, BATCH = 60_000, 784, 256, 128, 10, 128


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D), dtype=np.float32)
    teacher = rng.standard_normal((D, K), dtype=np.float32)
    y = np.argmax(X @ teacher, axis=1)
    return X, y


def floor_epoch(X, weights, bufs) -> float:
    """Forward and backward matrix products of one epoch, nothing else."""
    (W1, W2, W3), (a1, a2, z, d2, d1, g1, g2, g3) = weights, bufs
    t = time.perf_counter()
    for s in range(0, N, BATCH):
        xb = X[s : s + BATCH]
        n = xb.shape[0]
        np.matmul(xb, W1, out=a1[:n])
        np.matmul(a1[:n], W2, out=a2[:n])
        np.matmul(a2[:n], W3, out=z[:n])
        np.matmul(a2[:n].T, z[:n], out=g3)
        np.matmul(z[:n], W3.T, out=d2[:n])
        np.matmul(a1[:n].T, d2[:n], out=g2)
        np.matmul(d2[:n], W2.T, out=d1[:n])
        np.matmul(xb.T, d1[:n], out=g1)
    return time.perf_counter() - t


def bpexp_epoch(X, y, rep: int) -> tuple[float, float]:
    model = bpexp.MLP([D, H1, H2, K], activation="relu", seed=rep)
    t = time.perf_counter()
    history = bpexp.fit(model, X, y, optimizer="adam", lr=1e-3, epochs=1, batch_size=BATCH, seed=rep)
    return history[-1]["epoch_seconds"], time.perf_counter() - t


def sklearn_epoch(X, y, rep: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(H1, H2), solver="adam", batch_size=BATCH, learning_rate_init=1e-3,
                        alpha=0.0, random_state=rep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        clf.partial_fit(X, y, classes=np.arange(K))
        return time.perf_counter() - t


def peak_fit_memory_mb(X, y) -> float:
    """Peak memory allocated by bpexp.fit (on top of the dataset), via tracemalloc."""
    model = bpexp.MLP([D, H1, H2, K], activation="relu", seed=0)
    tracemalloc.start()
    tracemalloc.reset_peak()
    bpexp.fit(model, X, y, optimizer="adam", lr=1e-3, epochs=1, batch_size=BATCH, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    X, y = make_data()
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(s, dtype=np.float32) * 0.05 for s in ((D, H1), (H1, H2), (H2, K))]
    bufs = [np.empty(s, np.float32) for s in ((BATCH, H1), (BATCH, H2), (BATCH, K), (BATCH, H2), (BATCH, H1),
                                               (D, H1), (H1, H2), (H2, K))]
    print(f"data: {N}x{D} float32 ({X.nbytes / 2**20:.0f} MB), net {D}-{H1}-{H2}-{K} relu, batch {BATCH}, Adam")
    times: dict[str, list[float]] = {"floor": [], "bpexp": [], "bpexp_call": [], "sklearn": []}
    floor_epoch(X, weights, bufs)  # warm up BLAS threads and caches
    for rep in range(args.reps):
        times["floor"].append(floor_epoch(X, weights, bufs))
        epoch, call = bpexp_epoch(X, y, rep)
        times["bpexp"].append(epoch)
        times["bpexp_call"].append(call)
        times["sklearn"].append(sklearn_epoch(X, y, rep))
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print("\nmedian epoch seconds: " + "  ".join(f"{k} {v:.3f}" for k, v in med.items()))
    r_floor, r_sk = med["bpexp"] / med["floor"], med["bpexp"] / med["sklearn"]
    print(f"bpexp / matmul floor = {r_floor:.2f}x   (target <= 2.0)  {'OK' if r_floor <= 2.0 else 'MISSED'}")
    print(f"bpexp / sklearn      = {r_sk:.2f}x   (target <= 0.7)  {'OK' if r_sk <= 0.7 else 'MISSED'}")
    print(f"sklearn / floor      = {med['sklearn'] / med['floor']:.2f}x")
    print(f"whole fit() call / floor = {med['bpexp_call'] / med['floor']:.2f}x (adds input checks and setup)")
    best = {k: min(v) for k, v in times.items()}
    print(f"best-of-{args.reps} (less sensitive to a busy machine): bpexp / floor = "
          f"{best['bpexp'] / best['floor']:.2f}x, bpexp / sklearn = {best['bpexp'] / best['sklearn']:.2f}x")
    peak = peak_fit_memory_mb(X, y)
    print(f"peak memory allocated by fit on top of the {X.nbytes / 2**20:.0f} MB dataset: {peak:.1f} MB "
          f"(target <= 100)  {'OK' if peak <= 100 else 'MISSED'}")


if __name__ == "__main__":
    main()
