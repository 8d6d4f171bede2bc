"""bpexp.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier, side by side in one run.

Two regimes, the same data and settings for both estimators (Adam, lr 1e-3, a fixed number
of epochs: ``tol=0`` and ``n_iter_no_change`` above ``max_iter``, so neither stops early;
the same L2 strength, which is ``alpha_sklearn / batch_size`` in bpexp's batch-size-
independent scaling):

* digits  - 1,347 x 64 training rows (standardized), 64-100-10 ReLU, batch 32, 30 epochs:
            the small-batch regime, where the cost per step (Python and call overhead) rules.
            Both train in float64 (the data's dtype: ``dtype="auto"`` is scikit-learn's rule);
            bpexp with ``dtype="float32"`` is shown too.
* mnist   - 60,000 x 784 float32 synthetic rows (a random linear teacher, as in
            bench_epoch.py; 10,000 more for testing), 784-256-128-10, batch 128, 3 epochs;
            both train in float32.

Each repetition fits both (interleaved); medians and ranges over the repetitions are
printed, with the fit-time ratio (target <= 0.6x scikit-learn's), the test-accuracy
difference (target: within 0.5 points) and, for digits, the cost per optimizer step beside
PyTorch CPU's for the same network, batch and optimizer (if torch is installed).

Run:  .venv/bin/python benchmarks/bench_sklearn.py [--reps 5] [--mnist-reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

SK_ALPHA = 1e-4  # scikit-learn's default


def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def mnist_data(n_train: int = 60_000, n_test: int = 10_000, d: int = 784, k: int = 10):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_train + n_test, d), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((d, k), dtype=np.float32), axis=1)
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:]


def fit_both(data, hidden, batch, epochs, rep, extra_bpexp=None):
    """Fit time and test accuracy of scikit-learn's and bpexp's estimator (and bpexp variants)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    from bpexp.sklearn import MLPClassifier

    X_train, X_test, y_train, y_test = data
    common = dict(hidden_layer_sizes=hidden, solver="adam", learning_rate_init=1e-3, batch_size=batch,
                  max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=rep)
    makers = {"sklearn": lambda: SkMLP(alpha=SK_ALPHA, **common),
              "bpexp": lambda: MLPClassifier(alpha=SK_ALPHA / batch, **common)}
    for name, options in (extra_bpexp or {}).items():
        makers[name] = lambda options=options: MLPClassifier(alpha=SK_ALPHA / batch, **common, **options)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, make in makers.items():
            est = make()
            t = time.perf_counter()
            est.fit(X_train, y_train)
            out[name] = (time.perf_counter() - t, est.score(X_test, y_test), est.n_iter_)
    return out


def torch_step_seconds(data, hidden, batch, epochs) -> float | None:
    """Seconds per Adam step of the same network in PyTorch (CPU, float64 like the data), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)  # as bpexp's fit does for batches this small (sklearn has no such rule)
    X_train, _, y_train, _ = data
    torch.manual_seed(0)
    sizes = [X_train.shape[1], *hidden, int(y_train.max()) + 1]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=SK_ALPHA / batch)
    X, y = torch.from_numpy(X_train), torch.from_numpy(y_train.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()
    steps, t = 0, time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0])
        for s in range(0, X.shape[0], batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
            steps += 1
    return (time.perf_counter() - t) / steps


def print_rep(rep, run) -> None:
    print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[0]:.3f}s acc {v[1]:.4f}" for k, v in run.items()), flush=True)


def summarize(title, runs, steps_per_fit=None):
    """Print medians and ranges; return (median time ratio, median accuracy difference in points)."""
    names = list(runs[0])
    print(f"\n{title}")
    for name in names:
        times = [r[name][0] for r in runs]
        accs = [r[name][1] for r in runs]
        step = f"   {statistics.median(times) / steps_per_fit * 1e6:6.0f} us/step" if steps_per_fit else ""
        print(f"  {name:14s} fit {statistics.median(times):7.3f} s (range {min(times):.3f}-{max(times):.3f})"
              f"   test accuracy {statistics.median(accs):.4f} (range {min(accs):.4f}-{max(accs):.4f}){step}")
    ratios = [r["bpexp"][0] / r["sklearn"][0] for r in runs]
    diffs = [100 * (r["bpexp"][1] - r["sklearn"][1]) for r in runs]
    ratio, diff = statistics.median(ratios), statistics.median(diffs)
    print(f"  bpexp / sklearn fit time = {ratio:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}; target <= 0.6)"
          f"  {'OK' if ratio <= 0.6 else 'MISSED'}")
    print(f"  accuracy bpexp - sklearn = {diff:+.2f} points (range {min(diffs):+.2f} to {max(diffs):+.2f}; "
          f"target within 0.5)  {'OK' if abs(diff) <= 0.5 else 'MISSED'}")
    for name in names[2:]:
        r = [x[name][0] / x["sklearn"][0] for x in runs]
        print(f"  {name} / sklearn fit time = {statistics.median(r):.2f}x (range {min(r):.2f}-{max(r):.2f})")
    return ratio, diff


def run_digits(reps: int) -> None:
    data = digits_data()
    hidden, batch, epochs = (100,), 32, 30
    n = data[0].shape[0]
    steps = epochs * -(-n // batch)
    print(f"digits: {n} train / {data[1].shape[0]} test rows, 64-100-10 relu, batch {batch}, {epochs} epochs "
          f"({steps} Adam steps), float64; alpha {SK_ALPHA:g} (sklearn) = {SK_ALPHA / batch:.3g} (bpexp)")
    runs, torch_times = [], []
    for rep in range(reps):
        runs.append(fit_both(data, hidden, batch, epochs, rep, {"bpexp float32": {"dtype": "float32"}}))
        print_rep(rep, runs[-1])
        torch_times.append(torch_step_seconds(data, hidden, batch, epochs))  # interleaved with the others
    summarize("digits (small batches), medians over reps:", runs, steps)
    if torch_times[0] is None:
        print("  PyTorch CPU: not installed")
    else:
        import torch

        print(f"  PyTorch CPU {torch.__version__} (same net, batch and Adam; float64, "
              f"{torch.get_num_threads()} BLAS thread): {statistics.median(torch_times) * 1e6:.0f} us/step "
              f"(range {min(torch_times) * 1e6:.0f}-{max(torch_times) * 1e6:.0f})")


def run_mnist(reps: int) -> None:
    data = mnist_data()
    hidden, batch, epochs = (256, 128), 128, 3
    print(f"\nmnist-shaped: {data[0].shape[0]}x{data[0].shape[1]} float32 train, {data[1].shape[0]} test, "
          f"784-256-128-10 relu, batch {batch}, {epochs} epochs")
    runs = []
    for rep in range(reps):
        runs.append(fit_both(data, hidden, batch, epochs, rep))
        print_rep(rep, runs[-1])
    summarize("mnist-shaped, medians over reps:", runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="repetitions on digits")
    parser.add_argument("--mnist-reps", type=int, default=3, help="repetitions on the MNIST-shaped set")
    args = parser.parse_args()
    run_digits(args.reps)
    run_mnist(args.mnist_reps)


if __name__ == "__main__":
    main()
