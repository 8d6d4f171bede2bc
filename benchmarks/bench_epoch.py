"""The trainer against the matmul floor, PyTorch CPU and scikit-learn, side by side in one run.

1. **MNIST-shaped epoch** - 60,000 x 784 float32 synthetic inputs, 10 classes,
   784-256-128-10 ReLU, batch 128, Adam (lr 1e-3). Each repetition runs, interleaved:

   * floor   - the epoch's matrix products alone (same shapes, nothing else), on the BLAS
               thread count bpexp's probe chose in that repetition: the least any NumPy
               implementation of this epoch can cost under the same conditions;
   * bpexp   - ``bpexp.fit(..., epochs=1)``; the trainer's own ``epoch_seconds``
               (shuffling, batch gathers, forward, backward, Adam), the whole call too;
   * torch   - a plain PyTorch CPU loop (``nn.Sequential``, ``torch.optim.Adam``), its
               default threads;
   * sklearn - ``MLPClassifier.partial_fit`` (one epoch, same sizes, float32, alpha=0).

   Targets: bpexp <= 1.5x floor, <= 0.6x PyTorch, <= 0.5x scikit-learn (medians).
2. **Small model** (where sweeps live) - digits 64-128-64-10, batch 32, Adam, 10 epochs:
   microseconds a step for bpexp, PyTorch on one thread and scikit-learn. Target: <= 150 us.
3. **Busy machine** - an MNIST-1D-sized fit (4,000 x 40, 40-256-256-10, batch 100, Adam,
   20 epochs), quiet and with one CPU-bound process that this script starts on the last
   allowed core, interleaved; the whole ``fit`` call (with its thread probe). Target:
   busy <= 1.5x quiet. PyTorch's figure (default threads; its median epoch of 5, times 20)
   is printed beside it.
4. **Memory** - peak memory allocated by ``fit`` on top of the MNIST-shaped dataset
   (tracemalloc). Target: <= 100 MB.

Medians of interleaved repetitions and their ranges are printed: on a shared machine
absolute times drift but same-run ratios hold. Without PyTorch installed its columns
read "PyTorch not installed".

Run:  .venv/bin/python benchmarks/bench_epoch.py [--reps 5] [--only mnist,small,busy,memory]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import bpexp

N, D, H1, H2, K, BATCH = 60_000, 784, 256, 128, 10, 128
TORCH_BUSY_EPOCHS = 5  # PyTorch's busy-machine figure: median epoch of 5, scaled to the 20-epoch fit
TARGETS = {"floor": 1.5, "torch": 0.6, "sklearn": 0.5, "small_us": 150.0, "busy": 1.5, "memory_mb": 100.0}


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def make_data(n=N, d=D, k=K, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    teacher = rng.standard_normal((d, k), dtype=np.float32)
    return X, np.argmax(X @ teacher, axis=1)


def _stats(values, scale=1.0, fmt="{:.3f}") -> str:
    v = [x * scale for x in values]
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"


def _verdict(value, target) -> str:
    return "OK" if value <= target else f"MISSED by {value / target - 1:.0%}"


# ---------------------------------------------------------------------------- contestants
def floor_epoch(X, weights, bufs) -> float:
    """Forward and backward matrix products of one epoch, nothing else."""
    (W1, W2, W3), (a1, a2, z, d2, d1, g1, g2, g3) = weights, bufs
    t = time.perf_counter()
    for s in range(0, X.shape[0], BATCH):
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


def bpexp_fit(X, y, sizes, batch, epochs, rep, **options):
    model = bpexp.MLP(sizes, activation="relu", seed=rep)
    t = time.perf_counter()
    history = bpexp.fit(model, X, y, optimizer="adam", lr=1e-3, epochs=epochs, batch_size=batch, seed=rep,
                        **options)
    return history, time.perf_counter() - t


def torch_fit(torch, X, y, sizes, batch, epochs, rep, threads=None) -> tuple[list[float], float]:
    """A plain PyTorch loop; returns the per-epoch seconds and the whole call."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t_all = time.perf_counter()
        torch.manual_seed(rep)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        epoch_times = []
        for _ in range(epochs):
            t = time.perf_counter()
            perm = torch.randperm(Xt.shape[0])
            for s in range(0, Xt.shape[0], batch):
                idx = perm[s : s + batch]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            epoch_times.append(time.perf_counter() - t)
        return epoch_times, time.perf_counter() - t_all
    finally:
        torch.set_num_threads(before)


def sklearn_epochs(X, y, sizes, batch, epochs, rep) -> list[float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="adam", batch_size=batch,
                        learning_rate_init=1e-3, alpha=0.0, random_state=rep)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            t = time.perf_counter()
            clf.partial_fit(X, y, classes=np.arange(sizes[-1]))
            times.append(time.perf_counter() - t)
    return times


# ---------------------------------------------------------------------------- sections
def mnist_section(reps, torch) -> None:
    X, y = make_data()
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(s, dtype=np.float32) * 0.05 for s in ((D, H1), (H1, H2), (H2, K))]
    bufs = [np.empty(s, np.float32) for s in ((BATCH, H1), (BATCH, H2), (BATCH, K), (BATCH, H2), (BATCH, H1),
                                               (D, H1), (H1, H2), (H2, K))]
    print(f"\n== 1. MNIST-shaped epoch: {N}x{D} float32 ({X.nbytes / 2**20:.0f} MB), {D}-{H1}-{H2}-{K} relu, "
          f"batch {BATCH}, Adam; {reps} interleaved reps")
    times: dict[str, list[float]] = {"bpexp": [], "bpexp_call": [], "floor": [], "torch": [], "sklearn": []}
    threads = []
    floor_epoch(X, weights, bufs)  # warm up BLAS threads and caches
    for rep in range(reps):
        history, call = bpexp_fit(X, y, [D, H1, H2, K], BATCH, 1, rep)
        times["bpexp"].append(history[-1]["epoch_seconds"])
        times["bpexp_call"].append(call)
        threads.append(history.blas_threads)
        with threadpool_limits(limits=history.blas_threads, user_api="blas"):  # same conditions as bpexp's epoch
            times["floor"].append(floor_epoch(X, weights, bufs))
        if torch is not None:
            times["torch"].append(torch_fit(torch, X, y, [D, H1, H2, K], BATCH, 1, rep)[0][0])
            time.sleep(0.2)  # let PyTorch's OpenMP threads stop spinning before the next contestant
        times["sklearn"].append(sklearn_epochs(X, y, [D, H1, H2, K], BATCH, 1, rep)[0])
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items() if v)
              + f"  (bpexp BLAS threads {threads[-1]})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print("median (range) epoch seconds: " + "  ".join(f"{k} {_stats(v)}" for k, v in times.items() if v))
    r = med["bpexp"] / med["floor"]
    print(f"bpexp / matmul floor   = {r:.2f}x  (target <= {TARGETS['floor']})  {_verdict(r, TARGETS['floor'])}")
    if torch is None:
        print("bpexp / PyTorch CPU    = PyTorch not installed")
    else:
        r = med["bpexp"] / med["torch"]
        print(f"bpexp / PyTorch CPU    = {r:.2f}x  (target <= {TARGETS['torch']})  {_verdict(r, TARGETS['torch'])}")
    r = med["bpexp"] / med["sklearn"]
    print(f"bpexp / scikit-learn   = {r:.2f}x  (target <= {TARGETS['sklearn']})  {_verdict(r, TARGETS['sklearn'])}")
    print(f"whole fit() call / floor = {med['bpexp_call'] / med['floor']:.2f}x (adds input checks, the thread probe)")
    best = {k: min(v) for k, v in times.items() if v}
    print(f"best-of-{reps}: bpexp / floor = {best['bpexp'] / best['floor']:.2f}x")


def small_section(reps, torch) -> None:
    from sklearn.datasets import load_digits

    Xd, yd = load_digits(return_X_y=True)
    X, y = (Xd / 16.0).astype(np.float32), yd
    sizes, batch, epochs = [64, 128, 64, 10], 32, 10
    steps = -(-X.shape[0] // batch)
    print(f"\n== 2. Small model: digits {X.shape[0]}x64, 64-128-64-10 relu, batch {batch}, Adam, {epochs} epochs "
          f"({steps} steps each); microseconds a step (median epoch / steps); {reps} interleaved reps")
    us: dict[str, list[float]] = {"bpexp": [], "torch_1thread": [], "sklearn": []}
    for rep in range(reps):
        history, _ = bpexp_fit(X, y, sizes, batch, epochs, rep)
        us["bpexp"].append(statistics.median(history["epoch_seconds"]) / steps * 1e6)
        if torch is not None:
            epoch_times, _ = torch_fit(torch, X, y, sizes, batch, epochs, rep, threads=1)
            us["torch_1thread"].append(statistics.median(epoch_times) / steps * 1e6)
        us["sklearn"].append(statistics.median(sklearn_epochs(X, y, sizes, batch, epochs, rep)) / steps * 1e6)
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.0f} us" for k, v in us.items() if v)
              + f"  (bpexp BLAS threads {history.blas_threads})", flush=True)
    b = statistics.median(us["bpexp"])
    torch_text = (f"PyTorch (1 thread) {_stats(us['torch_1thread'], fmt='{:.0f}')} us"
                  if us["torch_1thread"] else "PyTorch not installed")
    print(f"bpexp {_stats(us['bpexp'], fmt='{:.0f}')} us a step (target <= {TARGETS['small_us']:.0f})  "
          f"{_verdict(b, TARGETS['small_us'])};  {torch_text};  scikit-learn {_stats(us['sklearn'], fmt='{:.0f}')} us")


def _start_hog(cpu: int) -> subprocess.Popen:
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    time.sleep(0.3)  # let it start spinning
    return hog


def busy_section(reps, torch) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    X, y = make_data(n=4000, d=40, seed=2)
    sizes, batch, epochs = [40, 256, 256, 10], 100, 20
    print(f"\n== 3. Busy machine: {X.shape[0]}x{X.shape[1]}, {'-'.join(map(str, sizes))} relu, batch {batch}, Adam, "
          f"{epochs} epochs; whole fit call, quiet vs one CPU-bound process pinned to CPU {cpus[-1]} "
          f"(of {len(cpus)}); {reps} interleaved reps")
    if len(cpus) < 2:
        print("  skipped: this process may use only one CPU")
        return
    t: dict[str, list[float]] = {"bpexp_quiet": [], "bpexp_busy": [], "torch_quiet": [], "torch_busy": []}
    threads: dict[str, list] = {"quiet": [], "busy": []}
    for rep in range(reps):
        for state in ("quiet", "busy"):
            hog = _start_hog(cpus[-1]) if state == "busy" else None
            try:
                history, call = bpexp_fit(X, y, sizes, batch, epochs, rep)
                t[f"bpexp_{state}"].append(call)
                threads[state].append(history.blas_threads)
                if torch is not None:  # fewer epochs: on a loaded machine its two threads crawl
                    times = torch_fit(torch, X, y, sizes, batch, TORCH_BUSY_EPOCHS, rep)[0]
                    t[f"torch_{state}"].append(statistics.median(times) * epochs)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            time.sleep(0.2)
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in t.items() if v)
              + f"  (bpexp BLAS threads quiet {threads['quiet'][-1]}, busy {threads['busy'][-1]})", flush=True)
    r = statistics.median(t["bpexp_busy"]) / statistics.median(t["bpexp_quiet"])
    print(f"bpexp quiet {_stats(t['bpexp_quiet'])} s, busy {_stats(t['bpexp_busy'])} s: busy / quiet = {r:.2f}x "
          f"(target <= {TARGETS['busy']})  {_verdict(r, TARGETS['busy'])}")
    if torch is None:
        print("PyTorch not installed")
    else:
        rt = statistics.median(t["torch_busy"]) / statistics.median(t["torch_quiet"])
        print(f"PyTorch quiet {_stats(t['torch_quiet'])} s, busy {_stats(t['torch_busy'])} s: busy / quiet = "
              f"{rt:.2f}x  ({torch.get_num_threads()} threads)")


def memory_section() -> None:
    X, y = make_data()
    model = bpexp.MLP([D, H1, H2, K], activation="relu", seed=0)
    tracemalloc.start()
    tracemalloc.reset_peak()
    bpexp.fit(model, X, y, optimizer="adam", lr=1e-3, epochs=1, batch_size=BATCH, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak /= 2**20
    print(f"\n== 4. Memory: peak allocated by fit on top of the {X.nbytes / 2**20:.0f} MB dataset: {peak:.1f} MB "
          f"(target <= {TARGETS['memory_mb']:.0f})  {_verdict(peak, TARGETS['memory_mb'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="mnist,small,busy,memory", help="comma-separated sections to run")
    args = parser.parse_args()
    torch = _torch()  # imported first, so that every section sees the same loaded BLAS libraries
    load = os.getloadavg()
    print(f"{len(os.sched_getaffinity(0))} CPUs allowed, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          + (f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "PyTorch not installed"))
    sections = set(args.only.split(","))
    if "mnist" in sections:
        mnist_section(args.reps, torch)
    if "small" in sections:
        small_section(args.reps, torch)
    if "busy" in sections:
        busy_section(args.reps, torch)
    if "memory" in sections:
        memory_section()


if __name__ == "__main__":
    main()
