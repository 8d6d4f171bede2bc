"""Reading tables from files: CSV (pandas), Parquet (pyarrow), NPZ (NumPy, never unpickling).

Every reader returns a DataFrame whose index is each row's number in the file
with the header as row 1 (the number an editor shows), so every later message
can name the row. Column names are stripped of surrounding spaces, and a
repeated name is an error before anything else happens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError
from bpexp.nn.parallel import map_threads, table_threads

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
#: UTF-8 with or without a byte-order mark, at training and at prediction time alike.
DEFAULT_ENCODING = "utf-8-sig"


def read_table(path, *, encoding: str | None = None, what: str | None = None):
    """Read a CSV or Parquet file into a DataFrame indexed by file row number.

    Parameters
    ----------
    path : path
        ``.csv`` (``.tsv``: tab-separated) or ``.parquet``.
    encoding : str, optional
        Text encoding of a CSV file; default UTF-8 with or without a BOM.
    what : str, optional
        How messages name the file (default its path).

    Raises
    ------
    InvalidInputError
        A missing, empty, undecodable or malformed file, or repeated column names.
    """
    path = Path(path)
    what = what or str(path)
    if not path.is_file():
        raise InvalidInputError(f"{what} does not exist")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path, what)
        frame.index = _row_numbers(len(frame))  # as if the header were row 1, like a CSV file
    else:
        frame = _read_csv(path, encoding or DEFAULT_ENCODING, "\t" if suffix == ".tsv" else ",", what)
    if frame.shape[0] == 0:
        raise InvalidInputError(f"{what} has a header but no data rows")
    return frame


def _read_csv(path: Path, encoding: str, sep: str, what: str):
    import pandas as pd

    header = _csv_header(path, encoding, sep, what)
    # Blank lines are kept (as all-missing rows, dropped below) so the index stays the file's line number.
    options = {"sep": sep, "encoding": encoding, "skip_blank_lines": False}
    try:
        large = path.stat().st_size >= TYPED_MIN_BYTES
        frame = _read_csv_fast(path, options | (_text_as_categories(path, options, pd) if large else {}), pd)
        if frame is None:  # typed differently than a whole read would type it, or unreadable: read it whole
            frame = pd.read_csv(path, **options, low_memory=False)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(_encoding_message(what, encoding, exc)) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not a readable CSV file: {_first_line(exc)}") from None
    if large:
        _release_freed_memory()
    frame.columns = header
    frame.index = _row_numbers(len(frame))
    blank = _blank_rows(frame)
    return frame[~blank] if blank.any() else frame


def _row_numbers(n_rows: int):
    """The file row numbers of ``n_rows`` data rows under a header (2, 3, ...), as a range: no array is written."""
    import pandas as pd

    return pd.RangeIndex(2, n_rows + 2)


#: Files from this size on have their text columns read straight into ``category`` columns.
TYPED_MIN_BYTES = 5 * 2**20
#: Rows read first to find the text columns.
_SAMPLE_ROWS = 5_000


def _text_as_categories(path: Path, options: dict, pd) -> dict:
    """``{"dtype": {column: "category"}}`` for the text columns of a (large) file's first rows, else ``{}``.

    pandas then keeps each chunk of a text column as codes, not as strings, and
    holds far less at its peak (*measured* on 10^6 x 23, 196 MB: 377 MB above the
    process's RSS against 541 MB for a plain read, budget 503 MB; as fast as the
    plain read, ~10 % faster than pyarrow's reader given every column's type). Only
    columns pandas reads as text (its string dtype) are named: a number column
    that turns to text later in the file is typed per chunk and found by
    :func:`_read_csv_fast`, and object columns (booleans with gaps) stay as pandas
    makes them. The values and missing cells are pandas' own: a category is the
    text a plain read gives, and bpexp makes text columns ``category`` anyway.
    """
    try:
        sample = pd.read_csv(path, **options, nrows=_SAMPLE_ROWS)
    except Exception:  # noqa: BLE001 - the whole read next reports the problem its way
        return {}
    text = [name for name, dtype in sample.dtypes.items() if isinstance(dtype, pd.StringDtype)]
    return {"dtype": dict.fromkeys(text, "category")} if text else {}


def _release_freed_memory() -> None:
    """Give the memory a large read freed back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    pandas parses a large file on several threads, and glibc keeps what each
    thread freed in that thread's own heap, where the main thread's next arrays
    (the split's copy, the training matrix) do not reuse it: *measured* on
    10^6 x 23, 338 MB resident after the read for a 162 MB frame, 189 MB after a
    trim (11 ms), and a peak 106 MB lower through to the training matrix.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator has no such call
        pass


def _read_csv_fast(path: Path, options: dict, pd):
    """pandas' default reader (pandas 3.1 parses a large file on every core), or None where it may differ.

    It infers types per chunk of the file. Where chunks disagree it says so (a
    ``DtypeWarning``: a column that is numbers in one chunk and text in another)
    or, mixing integers and floats, gives the float64 a whole read gives, the
    same numbers below 2**53. For those cases, and for any error (whose message
    is then the whole read's), the caller reads the file whole, as bpexp always did.
    """
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(path, **options)
    except Exception:  # noqa: BLE001 - the whole read raises (and reports) it the usual way
        return None
    others = [w for w in caught if not issubclass(w.category, pd.errors.DtypeWarning)]
    if len(others) < len(caught) or _has_huge_floats(frame):
        return None
    for w in others:  # what a plain read would have shown
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return frame


def _has_huge_floats(frame) -> bool:
    """A float column holding a number of 2**53 or more (there chunked typing may round differently)."""
    floats = [frame.iloc[:, i].to_numpy() for i, dtype in enumerate(frame.dtypes) if getattr(dtype, "kind", "") == "f"]
    return any(map_threads(_beyond_exact_integers, floats, table_threads(len(frame))))


def _beyond_exact_integers(x: np.ndarray) -> bool:
    # fmax/fmin skip NaN without a temporary array; an all-missing column gives NaN (False below).
    return bool(x.size) and max(-np.fmin.reduce(x), np.fmax.reduce(x)) >= 2.0**53


def _blank_rows(frame) -> np.ndarray:
    """Rows in which every value is missing (``frame.isna().all(axis=1)``), stopping at the first full column."""
    blank = np.ones(len(frame), dtype=bool)
    for i in range(frame.shape[1]):
        blank &= frame.iloc[:, i].isna().to_numpy()
        if not blank.any():
            break
    return blank


def _csv_header(path: Path, encoding: str, sep: str, what: str) -> list[str]:
    """The header row as written (pandas would rename a repeated ``a`` to ``a.1`` silently)."""
    import csv

    try:
        with path.open(newline="", encoding=encoding) as fh:
            row = next(csv.reader(fh, delimiter=sep), None)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(_encoding_message(what, encoding, exc)) from None
    except csv.Error as exc:
        raise InvalidInputError(f"{what}: cannot read its header row: {exc}") from None
    except LookupError:
        raise InvalidInputError(f"{what}: unknown text encoding {encoding!r}") from None
    if not row or not any(c.strip() for c in row):
        raise InvalidInputError(f"{what} is empty (no header row)")
    names = [c.strip() for c in row]
    check_column_names(names, what)
    return names


def check_column_names(names: list[str], what: str) -> None:
    """Refuse repeated and empty column names, naming them."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInputError(f"{what} has repeated column names {repeated}: every column needs its own name")
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise InvalidInputError(f"{what}: column(s) {empty} (counting from 1) have no name in the header")


def _read_parquet(path: Path, what: str):
    import pyarrow as pa
    import pyarrow.dataset as pads
    from pyarrow.fs import LocalFileSystem

    try:
        schema = pads.dataset(str(path), format="parquet", filesystem=LocalFileSystem()).schema
        # Text columns come back dictionary-encoded (Parquet usually stores them so): pandas then gets
        # ``category`` columns without hashing a million strings, which is what bpexp makes of them anyway.
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        options = pads.ParquetReadOptions(dictionary_columns=text)
        source = pads.dataset(str(path), format=pads.ParquetFileFormat(read_options=options),
                              filesystem=LocalFileSystem())
        # One batch per row group: each column of a one-row-group file is then one Arrow chunk, which pandas
        # wraps instead of concatenating (pq.read_table cuts row groups into 128 Ki-row batches; *measured*
        # on 10^6 x 23: read + to_pandas 57 ms against 82 ms).
        table = source.to_table(batch_size=PARQUET_BATCH_ROWS)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"{what} is not a readable Parquet file: {_first_line(exc)}") from None
    names = [str(n).strip() for n in table.column_names]
    check_column_names(names, what)
    # One block per column: pandas then wraps Arrow's buffers instead of copying every float column into one.
    frame = table.to_pandas(split_blocks=True)
    del table
    # The reader's freed buffers back to the system (Arrow's allocator keeps them), for the split and the
    # training matrix that come next.
    pa.default_memory_pool().release_unused()
    frame.columns = names
    return frame


#: Rows per batch when reading Parquet: more than any row group holds in practice (one chunk per row group).
PARQUET_BATCH_ROWS = 1 << 26


def read_npz(path, what: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``y`` of an ``.npz`` file, read with ``allow_pickle=False``."""
    path = Path(path)
    what = what or f"NPZ file {path}"
    if not path.is_file():
        raise InvalidInputError(f"{what} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if missing:
                raise InvalidInputError(f"{what} lacks arrays {sorted(missing)}; it has {npz.files}")
            return np.asarray(npz["X"], dtype=np.float64), npz["y"]
    except ValueError as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"{what} is not readable without pickle: {exc}") from None


def _encoding_message(what: str, encoding: str, exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start:exc.start + 1].hex() if hasattr(exc, "object") else "?"
    return (f"{what} is not {_encoding_name(encoding)} text (byte 0x{byte} at offset {exc.start}); "
            "if it is Latin-1 or another encoding, name it: dataset.encoding (e.g. 'latin-1') or --encoding")


def _encoding_name(encoding: str) -> str:
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8") else encoding


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
