"""Reading tables from files: CSV (pandas; large UTF-8 files by pyarrow as pandas types them), Parquet
(pyarrow), NPZ (NumPy, never unpickling).

Every reader returns a DataFrame whose index is each row's number in the file
with the header as row 1 (the number an editor shows), so every later message
can name the row. Column names are stripped of surrounding spaces, and a
repeated name is an error before anything else happens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError

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
        frame.index = np.arange(2, len(frame) + 2)  # as if the header were row 1, like a CSV file
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
        frame = _read_csv_arrow(path, header, sep, encoding, pd)
        if frame is None:  # small, or pyarrow would not read it as pandas does: pandas' own reader
            frame = _read_csv_fast(path, options, pd)
        if frame is None:  # typed differently than a whole read would type it, or unreadable: read it whole
            frame = pd.read_csv(path, **options, low_memory=False)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(_encoding_message(what, encoding, exc)) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not a readable CSV file: {_first_line(exc)}") from None
    frame.columns = header
    frame.index = np.arange(2, len(frame) + 2)
    blank = _blank_rows(frame)
    return frame[~blank] if blank.any() else frame


#: Files from this size on are read with pyarrow's CSV reader (below it pandas' reader is as fast).
ARROW_MIN_BYTES = 5 * 2**20
#: Rows pandas reads first to decide each column's type, which pyarrow then parses the whole file as.
_SAMPLE_ROWS = 5_000


def _read_csv_arrow(path: Path, names: list[str], sep: str, encoding: str, pd):
    """A large UTF-8 CSV file read by pyarrow as pandas would read it, or None (then pandas reads it).

    pandas' parallel reader maps the whole file into memory next to its pieces
    and the frame they are gathered into (*measured* on 10^6 x 23: a 549 MB
    peak for a 183 MB frame, 196 MB of it the file's pages); pyarrow's, given
    every column's type, frees each block once converted (212-232 MB) at
    about the same speed. The types are pandas' own, from the first
    ``_SAMPLE_ROWS`` rows; a later value pyarrow cannot parse as that type (a
    word in a number column, a bad row, a quoted line break at a block
    boundary) makes it fail, and pandas then reads the file as it always did,
    with its own messages.
    """
    if path.stat().st_size < ARROW_MIN_BYTES or _encoding_name(encoding) != "UTF-8":
        return None
    import pyarrow as pa

    types = _sample_types(path, names, sep, encoding, pd, pa)
    if types is None:
        return None
    na_words = _pandas_na_strings()
    # pyarrow matches every cell against its list of NA strings, which costs a quarter of its read (measured):
    # first only blank cells; text columns then drop pandas' NA words from their categories, and a number
    # column holding one ("NA" from R) fails that read, so it reads again with pandas' whole list.
    frame = None
    for nulls in ([""], sorted(na_words)):
        frame, parsed = _arrow_frame(path, names, sep, types, nulls, pa)
        if parsed:  # read (or read and found to differ from pandas): no second try
            break
    # Hand the reader's freed blocks back to the system now (Arrow's allocator keeps them otherwise: measured
    # 373 MB resident after the read, 201 MB after this), so the split and the training matrix can use it.
    pa.default_memory_pool().release_unused()
    if frame is None:
        return None
    for name, kind in types.items():
        if pa.types.is_dictionary(kind):
            words = [c for c in frame[name].cat.categories if c in na_words]
            if words:
                frame[name] = frame[name].cat.remove_categories(words)
    return frame


def _pandas_na_strings() -> frozenset[str]:
    """The strings ``pandas.read_csv`` reads as missing by default (its documented ``na_values`` list)."""
    try:
        from pandas._libs.parsers import STR_NA_VALUES  # pandas' own set, should it ever change
    except ImportError:  # pragma: no cover - a pandas that moved it: the list its documentation gives
        STR_NA_VALUES = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",  # noqa: N806
                         "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
    return frozenset(STR_NA_VALUES)


def _arrow_frame(path: Path, names: list[str], sep: str, types: dict, nulls: list[str], pa):
    """The file read by pyarrow as a DataFrame, or None; and False if pyarrow could not parse it so."""
    import pyarrow.csv as pacsv

    options = (pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=4 << 20),
               pacsv.ParseOptions(delimiter=sep, ignore_empty_lines=False),  # a blank line: an all-missing row
               pacsv.ConvertOptions(column_types=types, null_values=nulls,
                                    true_values=["True", "TRUE", "true"], false_values=["False", "FALSE", "false"],
                                    strings_can_be_null=True, quoted_strings_can_be_null=True))
    try:
        table = pacsv.read_csv(path, *options)
    except (pa.ArrowException, OSError):
        return None, False
    for name, column in zip(names, table.columns):
        kind = types[name]
        if column.null_count and (pa.types.is_boolean(kind) or  # pandas: an object column
                                  pa.types.is_integer(kind) and _int_beyond_float(column, pa)):
            return None, True
    # One block per column, each Arrow column freed once converted; text columns become ``category``.
    return table.to_pandas(split_blocks=True, self_destruct=True), True


def _sample_types(path: Path, names: list[str], sep: str, encoding: str, pd, pa) -> dict | None:
    """pyarrow types of the columns as pandas types them in the first rows; None for one it has no twin for."""
    try:
        sample = pd.read_csv(path, sep=sep, encoding=encoding, skip_blank_lines=False, nrows=_SAMPLE_ROWS)
    except Exception:  # noqa: BLE001 - pandas reads the whole file next and reports the problem its way
        return None
    if sample.shape[1] != len(names):
        return None
    types = {}
    for name, dtype in zip(names, sample.dtypes):
        if dtype == np.float64:
            types[name] = pa.float64()
        elif dtype == np.int64:
            types[name] = pa.int64()
        elif dtype == np.bool_:
            types[name] = pa.bool_()
        elif isinstance(dtype, pd.StringDtype):  # text (object columns mix types: pandas' reader keeps those)
            types[name] = pa.dictionary(pa.int32(), pa.string())
        else:
            return None
    return types


def _int_beyond_float(column, pa) -> bool:
    """An integer column (with gaps, so float64 in pandas) holding a value float64 cannot hold exactly."""
    import pyarrow.compute as pc

    extremes = pc.min_max(column)
    return max(abs(extremes["min"].as_py()), abs(extremes["max"].as_py())) >= 2**53


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
    for i, dtype in enumerate(frame.dtypes):
        if getattr(dtype, "kind", "") == "f":
            x = frame.iloc[:, i].to_numpy()
            # fmax/fmin skip NaN without a temporary array; an all-missing column gives NaN (False below).
            if x.size and max(-np.fmin.reduce(x), np.fmax.reduce(x)) >= 2.0**53:
                return True
    return False


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
    import pyarrow.parquet as pq

    try:
        # Text columns come back dictionary-encoded (Parquet usually stores them so): pandas then gets
        # ``category`` columns without hashing a million strings, which is what bpexp makes of them anyway.
        schema = pq.read_schema(path)
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        table = pq.read_table(path, read_dictionary=text or None)
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
