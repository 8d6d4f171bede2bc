"""Table data shared by the runs and trials tables: records, filtering, sorting, fixed-width text.

Pure Python (no widgets, no MLflow): :class:`~bpexp.widgets.table.TableView` draws a
:class:`Table` as one multi-select list whose option labels are the aligned text rows, so
even 500 runs are one widget and sort/filter are a single re-render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Widest a column gets in the text rows; longer cells end with an ellipsis.
MAX_WIDTH = 26
BEST_MARK = "★"


@dataclass(frozen=True)
class Column:
    """One column: ``key`` identifies it (e.g. ``"metric:test_accuracy"``), ``title`` is shown.

    ``higher_is_better`` gives the natural sort direction of metric columns (best first);
    ``None`` means "not a metric": sorted ascending by default.
    """

    key: str
    title: str
    higher_is_better: bool | None = None


@dataclass
class Record:
    """One row before filtering: its id (a run id, a trial number), cell values by column key,
    and the params it can be filtered by (``{"model.hidden": "[64]"}``)."""

    id: str
    values: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """What a table view shows: the visible rows (filtered and sorted) as values and text.

    Attributes
    ----------
    columns : list of Column
    records : list of Record
        The visible rows in display order.
    texts : list of list of str
        Formatted cells of each visible row.
    total : int
        Number of rows before filtering.
    best_id : str or None
        Id of the best row (whether visible or not).
    sort_key : str or None
    descending : bool
    """

    columns: list[Column]
    records: list[Record]
    texts: list[list[str]]
    total: int
    best_id: str | None
    sort_key: str | None
    descending: bool

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def lines(self) -> tuple[str, list[str]]:
        """The header and one aligned text line per visible row; the best row starts with ★."""
        widths = [min(MAX_WIDTH, max([len(c.title), *(len(t[i]) for t in self.texts)]))
                  for i, c in enumerate(self.columns)]
        numeric = [c.higher_is_better is not None for c in self.columns]

        def line(cells: list[str]) -> str:
            out = []
            for text, width, right in zip(cells, widths, numeric):
                text = text if len(text) <= width else text[: width - 1] + "…"
                out.append(text.rjust(width) if right else text.ljust(width))
            return "  ".join(out).rstrip()

        header = "  " + line([c.title for c in self.columns])
        rows = [f"{BEST_MARK if r.id == self.best_id else ' '} {line(t)}" for r, t in zip(self.records, self.texts)]
        return header, rows

    def to_text(self) -> str:
        """The whole table as text (header, rule, rows): for logs, docs and tests."""
        header, rows = self.lines()
        return "\n".join([header, "-" * len(header), *rows])


def format_value(value: Any) -> str:
    """A cell's text: integers without decimals, metrics with 4 decimals, tiny/huge numbers in g-format."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.4f}"


def _sort_key(value: Any) -> tuple:
    """Numbers before text, numeric text (a param "0.001") compared as a number; ``None`` sorts apart."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    text = str(value)
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text.lower())


class TableSource:
    """Base class of table controllers: holds records and columns, filters and sorts them.

    Subclasses fill :attr:`columns`, :attr:`records` and :attr:`best_id` (in ``refresh``)
    and may override :attr:`default_sort`.
    """

    columns: list[Column]
    records: list[Record]
    best_id: str | None = None
    default_sort: str | None = None

    def refresh(self) -> None:
        """Reload the records (a table view's Refresh button calls this)."""

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(f"no column {key!r}; columns: {[c.key for c in self.columns]}")

    def default_descending(self, key: str | None) -> bool:
        """Best first for metric columns, ascending for the others."""
        if key is None:
            return False
        return bool(self.column(key).higher_is_better)

    def filter_params(self) -> list[tuple[str, str]]:
        """``(title, param)`` pairs worth filtering by: params with more than one value."""
        values: dict[str, set[str]] = {}
        for r in self.records:
            for k, v in r.params.items():
                values.setdefault(k, set()).add(v)
        return [(k, k) for k in sorted(values) if len(values[k]) > 1]

    def param_values(self, param: str) -> list[str]:
        """The distinct values of ``param`` among the records, in natural order."""
        return sorted({r.params[param] for r in self.records if param in r.params}, key=_sort_key)

    def table(self, sort: str | None = None, descending: bool | None = None, text: str = "",
              param: str | None = None, value: str | None = None) -> Table:
        """The visible rows: those containing ``text`` (case-insensitive, in any cell, or starting the id)
        and having ``param == value``, sorted by column ``sort`` (rows lacking it last).

        Parameters
        ----------
        sort : str, optional
            A column key; default :attr:`default_sort`.
        descending : bool, optional
            Default: best first for metric columns, else ascending.
        """
        sort = sort if sort is not None else self.default_sort
        if sort is not None:
            self.column(sort)  # a clear KeyError for an unknown column
        if descending is None:
            descending = self.default_descending(sort)
        rows = [(r, [format_value(r.values.get(c.key)) for c in self.columns]) for r in self.records]
        if param is not None and value is not None:
            rows = [(r, t) for r, t in rows if r.params.get(param) == value]
        needle = text.strip().lower()
        if needle:
            # ids match by prefix only (pasting a short run id works; two hex letters do not match everything)
            rows = [(r, t) for r, t in rows if r.id.lower().startswith(needle) or any(needle in c.lower() for c in t)]
        if sort is not None:
            have = [row for row in rows if row[0].values.get(sort) is not None]
            lack = [row for row in rows if row[0].values.get(sort) is None]
            have.sort(key=lambda row: _sort_key(row[0].values[sort]), reverse=descending)
            rows = have + lack
        return Table(list(self.columns), [r for r, _ in rows], [t for _, t in rows], len(self.records),
                     self.best_id, sort, descending)
