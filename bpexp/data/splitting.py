"""Seeded train/test partitions of row positions, drawn exactly as scikit-learn's ``train_test_split`` draws them.

bpexp's splits have always been ``train_test_split(positions, test_size=..., random_state=seed,
stratify=labels)``; every recorded run, digest and test relies on which rows went where. This
module draws the same rows with NumPy alone (the same ``RandomState`` calls in the same order),
because importing ``sklearn.model_selection`` costs ~1-2 s of every ``bpexp train``, sweep worker and
``bpexp predict`` that needs a split, more than many trainings take. On 10^6 rows it is also faster
(scikit-learn gathers each class's rows into a Python list). ``tests/test_splitting.py`` checks the
partitions against scikit-learn's own over sizes, fractions, seeds and class layouts; should a
scikit-learn release ever draw differently, that test says so, and bpexp's splits stay as they were.
"""

from __future__ import annotations

import math

import numpy as np

from bpexp.nn.parallel import map_threads, table_threads


def train_test_positions(positions: np.ndarray, test_size: float, seed: int,
                         labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split(positions, test_size=test_size, random_state=seed, stratify=labels)``.

    Parameters
    ----------
    positions : ndarray of int
        The row positions to partition.
    test_size : float
        Fraction in (0, 1) of ``positions`` in the test part (rounded up).
    seed : int
    labels : ndarray, optional
        Class of each position: stratify by it (each class keeps its share in both parts).

    Returns
    -------
    train, test : ndarray
        Subsets of ``positions``, in drawn order.

    Raises
    ------
    ValueError
        The same cases as scikit-learn: an empty train part, a class with a single
        member, fewer rows in a part than there are classes.
    """
    n = positions.shape[0]
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0:
        raise ValueError(f"with {n} samples and test_size={test_size} the train part would be empty")
    rng = np.random.RandomState(seed)
    if labels is None:
        order = rng.permutation(n)
        return positions[order[n_test:n_test + n_train]], positions[order[:n_test]]
    train, test = _stratified(np.asarray(labels), n_train, n_test, rng)
    return positions[train], positions[test]


def _stratified(y: np.ndarray, n_train: int, n_test: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``StratifiedShuffleSplit``'s first split, its random draws in its order."""
    if y.ndim == 2:  # multilabel: each distinct row is a class, as scikit-learn keys them
        y = np.array([" ".join(row.astype("str")) for row in y])
    classes, y_indices, class_counts = _classes(y)
    if class_counts.min() < 2:
        few = classes[class_counts < 2].tolist()
        raise ValueError(f"the least populated classes have only 1 member, too few to stratify: {few}")
    for part, size in (("train", n_train), ("test", n_test)):
        if size < classes.shape[0]:
            raise ValueError(f"the {part} part would hold {size} rows, fewer than the {classes.shape[0]} classes")
    # A stable sort has one answer, whatever the algorithm: NumPy radix-sorts keys of 16 bits or fewer, O(n).
    keys = y_indices.astype(np.uint16) if classes.shape[0] <= 2**16 else y_indices
    members = np.split(np.argsort(keys, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i, rows in enumerate(members):
        drawn = rows.take(rng.permutation(class_counts[i]), mode="clip")
        train.append(drawn[:n_i[i]])
        test.append(drawn[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def label_counts(y: np.ndarray) -> np.ndarray | None:
    """``np.bincount(y)`` when ``y`` holds small non-negative integers (class labels usually do), else None.

    Counting such labels is one pass over ``y`` where ``np.unique`` sorts it (*measured*,
    10^6 labels: ~5 ms against ~60 ms).
    """
    if y.dtype.kind in "iu" and y.size:
        lo, hi = int(y.min()), int(y.max())
        if lo >= 0 and hi < 4 * y.size + 1024:
            return np.bincount(y)
    return None


def _classes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(y, return_inverse=True, return_counts=True)``, by :func:`label_counts` where it applies."""
    counts = label_counts(y)
    if counts is None:
        return np.unique(y, return_inverse=True, return_counts=True)
    classes = np.flatnonzero(counts)
    code = np.zeros(counts.size, dtype=np.intp)
    code[classes] = np.arange(classes.size)
    return classes.astype(y.dtype), code[y], counts[classes]


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """Rows to draw per class: the floor of each share, then one more for the largest remainders (ties at random).

    scikit-learn's ``_approximate_mode``, step for step (its random tie-breaks are part of the split).
    """
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def take_rows(frame, positions: np.ndarray):
    """``frame.iloc[positions]`` (same index, columns, dtypes and values), a large table's columns on threads.

    A random gather is one cache miss per value, so each column is gathered by NumPy's
    ``take`` (which runs without the GIL) on a thread of its own; category columns by
    their codes. Other column types (text, nullable, object) go through pandas.
    *Measured*, 700,000 of 10^6 rows x 22 columns: 100 ms against 222 ms for ``iloc``.
    """
    import pandas as pd

    threads = table_threads(positions.size)
    if threads <= 1 or frame.shape[1] == 0:
        return frame.iloc[positions]
    index = frame.index.take(positions)

    def gathered(col):
        if isinstance(col.dtype, pd.CategoricalDtype):
            values = pd.Categorical.from_codes(col.cat.codes.to_numpy().take(positions), dtype=col.dtype)
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "biuf":
            values = col.to_numpy().take(positions)
        else:
            return col.take(positions)
        return pd.Series(values, index=index, name=col.name, copy=False)

    # The frame is indexed on this thread only (pandas does not promise thread safety); the gathers run on threads.
    columns = map_threads(gathered, [frame.iloc[:, i] for i in range(frame.shape[1])], threads)
    # copy=False: one block per column, as the table's own (no copy of every float column into one block).
    out = pd.DataFrame(dict(enumerate(columns)), index=index, copy=False)
    out.columns = frame.columns
    return out
