"""fit's BLAS thread policy: fixed counts, the measured auto choice, restoring the caller's setting, config."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import bpexp
from bpexp.config import ConfigError, load_experiment
from bpexp.errors import InvalidInputError
from bpexp.runner import fit_options
from bpexp.train.threads import (
    MAX_WAIT_FRACTION,
    BlasThreads,
    available_cores,
    run_queue_wait,
    runnable_others,
)


def _blas_threads() -> int:
    """NumPy's own BLAS (SciPy's, loaded later by scikit-learn imports, is a separate library)."""
    return max(i["num_threads"] for i in threadpool_info()
               if i["user_api"] == "blas" and "numpy" in i["filepath"])


def _data(n=600, d=64, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n)


@pytest.mark.parametrize("threads", [1, 2, "auto"])
def test_fit_restores_the_callers_setting(threads):
    X, y = _data()
    for caller in (1, 2):
        with threadpool_limits(limits=caller, user_api="blas"):
            history = bpexp.fit(bpexp.MLP([64, 128, 10], seed=0), X, y, epochs=1, batch_size=64, threads=threads)
            assert _blas_threads() == caller
        if threads != "auto":
            assert history.blas_threads == threads


def test_fit_restores_the_setting_when_training_fails():
    X, y = _data()
    X[5, 3] = 1e30  # overflows in the first epoch
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(bpexp.errors.TrainingDivergedError):
            bpexp.fit(bpexp.MLP([64, 32, 10], seed=0), X, y, optimizer="sgd", lr=10.0, epochs=3, batch_size=600,
                      threads=1)
        assert _blas_threads() == 2


def test_results_are_bit_identical_for_a_seed_and_thread_count():
    """Same seed and thread count: the same bits. Across thread counts only rounding may differ:
    whether it does depends on the OpenBLAS kernel the CPU gets (on some, threads split a sum)."""
    X, y = _data(n=1024, d=256)
    runs = {}
    for threads in (1, 2, 1, 2):
        model = bpexp.MLP([256, 256, 128, 10], dropout=0.1, seed=3)
        history = bpexp.fit(model, X, y, optimizer="adam", epochs=2, batch_size=128, seed=3, threads=threads)
        runs.setdefault(threads, []).append((model.params.copy(), history["train_loss"]))
    for (p1, loss1), (p2, loss2) in runs.values():
        assert np.array_equal(p1, p2) and loss1 == loss2
    np.testing.assert_allclose(runs[1][0][0], runs[2][0][0], rtol=1e-4, atol=1e-6)


def test_auto_is_reproducible_and_none_leaves_blas_alone():
    X, y = _data()
    a, b = (bpexp.MLP([64, 128, 10], seed=1) for _ in range(2))
    bpexp.fit(a, X, y, optimizer="adam", epochs=2, seed=1)
    with threadpool_limits(limits=1, user_api="blas"):
        history = bpexp.fit(b, X, y, optimizer="adam", epochs=2, seed=1, threads=None)
    assert np.array_equal(a.params, b.params)
    assert history.blas_threads is None


def test_auto_uses_one_thread_on_one_allowed_core():
    X, y = _data()
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert available_cores() == 1
        history = bpexp.fit(bpexp.MLP([64, 128, 10], seed=0), X, y, epochs=1, threads="auto")
    finally:
        os.sched_setaffinity(0, before)
    assert history.blas_threads == 1


@pytest.mark.parametrize(("seconds_on_1", "seconds_on_2", "expected"), [(0.002, 0.010, 1), (0.010, 0.002, 2)])
def test_auto_probe_keeps_one_thread_unless_more_are_clearly_faster(seconds_on_1, seconds_on_2, expected,
                                                                   monkeypatch):
    if available_cores() < 2:
        pytest.skip("needs 2 cores")
    # The timing rule alone: a sleeping step's wake-ups wait for a CPU on a loaded machine, which the
    # run-queue rule would rightly count (it has its own test with a real neighbour below).
    monkeypatch.setattr("bpexp.train.threads.MAX_WAIT_FRACTION", float("inf"))
    monkeypatch.setattr("bpexp.train.threads.runnable_others", lambda: 0)

    calls = []

    def step():  # a step whose duration depends on the thread count it runs with
        calls.append(_blas_threads())
        time.sleep(seconds_on_1 if calls[-1] == 1 else seconds_on_2)

    with threadpool_limits(limits=2, user_api="blas"):
        policy = BlasThreads("auto")
        assert policy.start(step) == expected
        assert set(calls) == {1, 2} and set(policy.timings) == {1, 2}
        assert _blas_threads() == expected
        policy.restore()
        assert _blas_threads() == 2


@pytest.mark.parametrize(("ratio_of_2", "expected", "next_probe"), [
    (0.93, 1, "soon"),  # faster, but not clearly: one thread, and measured again soon
    (1.20, 1, "later"),  # slower: one thread for the usual interval
    (0.50, 2, "later"),
])
def test_a_close_call_is_measured_again_soon(ratio_of_2, expected, next_probe, monkeypatch):
    import bpexp.train.threads as policy

    if available_cores() < 2:
        pytest.skip("needs 2 cores")
    monkeypatch.setattr(policy, "runnable_others", lambda: 0)
    monkeypatch.setattr(policy.BlasThreads, "_timed_rounds", lambda self, step, most, reps: (
        {1: [1e-3, 1e-3, 1e-3], most: [ratio_of_2 * 1e-3] * 3}, 0.0))
    with threadpool_limits(limits=2, user_api="blas"):
        blas = policy.BlasThreads("auto")
        assert blas.start(lambda: None) == expected
        assert blas._reprobe_after == {"soon": policy.REPROBE_SOON_SECONDS, "later": policy.REPROBE_SECONDS}[next_probe]
        probes = []
        monkeypatch.setattr(policy.BlasThreads, "probe", lambda self, step: probes.append(1))
        blas._last_probe = time.perf_counter() - policy.REPROBE_SOON_SECONDS  # 0.5 s of training later
        blas.after_step(1e-3, lambda: None)
        assert probes == ([1] if next_probe == "soon" else [])
        blas.restore()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_threads_are_named(bad):
    X, y = _data(n=20)
    with pytest.raises(InvalidInputError, match=r"threads must be a positive integer, 'auto' or None, got"):
        bpexp.fit(bpexp.MLP([64, 10]), X, y, threads=bad)


def test_training_threads_in_the_experiment_config(tmp_path):
    base = {"dataset": {"name": "moons"}}
    config, _ = load_experiment(base)
    assert config.training.threads == "auto" and fit_options(config)["threads"] == "auto"
    config, _ = load_experiment({**base, "training": {"threads": 1}})
    assert fit_options(config)["threads"] == 1
    config, _ = load_experiment({**base, "training": {"threads": None}})
    assert fit_options(config)["threads"] is None
    with pytest.raises(ConfigError, match=r"training\.threads"):
        load_experiment({**base, "training": {"threads": 0}})


def test_probes_between_steps_do_not_change_the_training(monkeypatch):
    """Re-measuring before every step (probe steps on the first batch on 1 and 2 threads) leaves the
    weights and history exactly as a fixed single-thread fit makes them."""
    import bpexp.train.threads as policy

    if available_cores() < 2:
        pytest.skip("needs 2 cores")
    X, y = _data(n=512)
    reference = bpexp.MLP([64, 128, 10], dropout=0.2, seed=5)
    expected = bpexp.fit(reference, X, y, optimizer="adam", epochs=2, batch_size=64, seed=5, threads=1)
    monkeypatch.setattr(policy, "REPROBE_SECONDS", 0.0)
    # Probe steps run on both thread counts, but training stays on one: results across thread counts
    # may differ in rounding on some CPUs (see the test above), what the probe steps leave may not.
    monkeypatch.setattr(policy, "MIN_SPEEDUP", float("inf"))
    monkeypatch.setattr(policy, "runnable_others", lambda: 0)
    probes = []
    original = policy.BlasThreads.probe
    monkeypatch.setattr(policy.BlasThreads, "probe", lambda self, step: (probes.append(1), original(self, step)))
    with threadpool_limits(limits=2, user_api="blas"):
        model = bpexp.MLP([64, 128, 10], dropout=0.2, seed=5)
        history = bpexp.fit(model, X, y, optimizer="adam", epochs=2, batch_size=64, seed=5, threads="auto")
    assert len(probes) >= 16  # at the start and after every one of the 16 steps
    assert np.array_equal(model.params, reference.params)
    assert history["train_loss"] == expected["train_loss"]


def _spinner_on(core: int) -> subprocess.Popen:
    """A real CPU-bound process pinned to ``core`` (a neighbour: a browser tab, another run), spinning
    when this returns (on a loaded machine the interpreter alone may take longer to start than a sleep)."""
    spinner = subprocess.Popen([sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
                               stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    assert spinner.stdout.readline().strip() == "spinning"
    return spinner


def test_auto_uses_one_thread_while_another_process_holds_a_core():
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs 2 cores")
    a = np.ones((256, 512), np.float32)
    w = np.ones((512, 512), np.float32)
    out = np.empty((256, 512), np.float32)

    def step():  # real BLAS products, large enough that two threads help on a quiet machine
        np.matmul(a, w, out=out)

    spinner = _spinner_on(cores[-1])
    reasons = []
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            policy = BlasThreads("auto")
            policy.start(step)  # the scheduler may hold the neighbour back for this probe's milliseconds
            reasons.append(policy.reason)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 1.0:  # a second of training steps, as fit runs them
                s0 = time.perf_counter()
                step()
                policy.after_step(time.perf_counter() - s0, step)
            reasons.append(policy.reason)
            chosen = policy.current
            policy.restore()
    finally:
        spinner.kill()
        spinner.wait()
    assert chosen == 1, reasons
    # Seen before any product runs (another task is runnable) or while two threads run (they wait):
    assert "running on the other cores" in policy.reason or (
        "waited" in policy.reason and policy.wait_fraction > MAX_WAIT_FRACTION), reasons


def test_runnable_others_sees_a_busy_neighbour():
    cores = sorted(os.sched_getaffinity(0))
    spinner = _spinner_on(cores[-1])
    try:
        assert runnable_others() >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_run_queue_wait_counts_the_time_a_thread_could_not_run():
    cores = sorted(os.sched_getaffinity(0))
    spinner = _spinner_on(cores[0])
    try:
        os.sched_setaffinity(0, {cores[0]})  # share one core with the spinner
        w0, t0 = run_queue_wait(), time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            pass
        waited = run_queue_wait() - w0
    finally:
        os.sched_setaffinity(0, set(cores))
        spinner.kill()
        spinner.wait()
    assert waited > 0.05, waited  # about half of the 0.3 s on a fair scheduler
