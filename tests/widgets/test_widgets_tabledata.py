"""Table data: formatting, filtering, sorting, aligned text rows."""

from __future__ import annotations

import pytest

from bpexp.widgets.tabledata import Column, Record, TableSource, format_value


class Source(TableSource):
    def __init__(self, records, best_id=None):
        self.columns = [Column("name", "run"), Column("param:lr", "lr"),
                        Column("metric:acc", "acc", higher_is_better=True),
                        Column("metric:loss", "loss", higher_is_better=False)]
        self.records = records
        self.best_id = best_id
        self.default_sort = "metric:acc"


def rec(name, lr, acc, loss=None):
    return Record(name, {"name": name, "param:lr": lr, "metric:acc": acc, "metric:loss": loss}, {"optimizer.lr": lr})


@pytest.fixture
def source():
    return Source([rec("a", "0.01", 0.90, 0.3), rec("b", "0.001", 0.95, 0.2), rec("c", "0.1", None, 0.9),
                   rec("d", "0.001", 0.93)], best_id="b")


def test_format_value():
    assert [format_value(v) for v in (None, 3, 3.0, 0.912345, 1e-4, 2.5e6, "x", float("nan"))] == \
        ["", "3", "3", "0.9123", "0.0001", "2.5e+06", "x", "nan"]


def test_default_sort_is_best_first_with_missing_values_last(source):
    t = source.table()
    assert t.ids == ["b", "d", "a", "c"]
    assert (t.sort_key, t.descending, t.total, t.best_id) == ("metric:acc", True, 4, "b")


def test_lower_is_better_metrics_sort_ascending_and_params_numerically(source):
    assert source.table(sort="metric:loss").ids == ["b", "a", "c", "d"]
    # "0.001" < "0.01" < "0.1" as numbers, not as text
    assert source.table(sort="param:lr").ids[-1] == "c"
    assert source.table(sort="param:lr", descending=True).ids[0] == "c"
    assert source.table(sort="name", descending=True).ids == ["d", "c", "b", "a"]


def test_unknown_sort_column_names_the_columns(source):
    with pytest.raises(KeyError, match="no column 'metric:nope'.*metric:acc"):
        source.table(sort="metric:nope")


def test_filters_by_text_and_by_param_value(source):
    assert source.table(text="0.001").ids == ["b", "d"]
    assert source.table(text="  B ").ids == ["b"]  # case-insensitive, trimmed
    assert source.table(param="optimizer.lr", value="0.001").ids == ["b", "d"]
    t = source.table(param="optimizer.lr", value="0.001", text="d")
    assert (t.ids, t.total) == (["d"], 4)
    assert source.filter_params() == [("optimizer.lr", "optimizer.lr")]
    assert source.param_values("optimizer.lr") == ["0.001", "0.01", "0.1"]


def test_text_rows_are_aligned_and_mark_the_best(source):
    header, rows = source.table().lines()
    assert header.split() == ["run", "lr", "acc", "loss"]
    assert rows[0].startswith("★ b")
    assert all(r.startswith("  ") for r in rows[1:])
    # numbers are right-aligned: the acc column ends at the same position in every row
    end = header.index("acc") + len("acc")
    assert [r[end - 6 : end] for r in rows] == ["0.9500", "0.9300", "0.9000", "      "]
    assert "-" * len(header) in source.table().to_text()


def test_long_cells_are_cut_with_an_ellipsis():
    s = Source([rec("x" * 60, "0.1", 0.5)])
    _, rows = s.table().lines()
    assert "…" in rows[0] and "x" * 60 not in rows[0]
