"""Datasets: built-in ones by name, user tables from CSV, Parquet, NPZ or a DataFrame, seeded splits.

* :func:`load_dataset` and :class:`Dataset` (:mod:`bpexp.data.loading`, :mod:`bpexp.data.dataset`);
* file readers on pandas and pyarrow (:mod:`bpexp.data.files`);
* column roles and learning a table's encoder (:mod:`bpexp.data.tabular`);
* the built-in sets (:mod:`bpexp.data.builtin`).
"""

from bpexp.data.builtin import BUILTIN_DATASETS, BUNDLED, SYNTHETIC, make_spirals, make_xor
from bpexp.data.dataset import Dataset, Split, split
from bpexp.data.loading import guess_task, load_dataset

__all__ = ["BUILTIN_DATASETS", "BUNDLED", "SYNTHETIC", "Dataset", "Split", "guess_task", "load_dataset",
           "make_spirals", "make_xor", "split"]
