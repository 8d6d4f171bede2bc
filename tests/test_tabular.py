"""Real tables: readers, column roles, the encoder learned from the training split, raw rows at predict time.

Most tests use the palmerpenguins CSV shipped in experiments/data (a real public table
with strings and NA cells that bpexp did not make); the rest build the one odd case
each needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bpexp
from bpexp.data.files import read_table
from bpexp.data.tabular import fit_encoder, infer_roles
from bpexp.errors import InvalidInputError, ModelFormatError
from bpexp.nn.tabular import TabularEncoder

PENGUINS = Path(__file__).resolve().parents[1] / "experiments" / "data" / "penguins.csv"


@pytest.fixture(scope="module")
def penguins():
    ds = bpexp.load_dataset(PENGUINS, target="species")
    return ds, bpexp.split(ds, val_size=0.15, test_size=0.3, seed=0)


@pytest.fixture(scope="module")
def penguin_model(penguins):
    ds, parts = penguins
    enc = fit_encoder(parts.X_train, ds.roles)
    model = bpexp.MLP([enc.n_features_out, 32, 3], encoder=enc, seed=0)
    bpexp.fit(model, parts.X_train, parts.y_train, optimizer="adam", lr=0.01, epochs=60, batch_size=16, seed=0)
    return model


def _csv(tmp_path, text, name="t.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------ reading and roles
def test_penguins_roles_are_inferred_and_described(penguins):
    ds, _ = penguins
    assert ds.is_table and ds.n_samples == 344 and ds.classes.tolist() == ["Adelie", "Chinstrap", "Gentoo"]
    assert ds.roles.numeric == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    assert ds.roles.categorical == ["island", "sex"]
    assert ds.roles.describe().startswith("features: 5 numeric (bill_length_mm")
    assert "2 categorical (island, sex)" in ds.roles.describe()
    # The index is each row's line in the file: row 5 is the one with NA everywhere.
    assert ds.X.loc[5, ["bill_length_mm", "sex"]].isna().all()


def test_encoder_outputs_follow_the_training_split(penguins):
    ds, parts = penguins
    enc = fit_encoder(parts.X_train, ds.roles)
    names = enc.feature_names_out
    assert names[0] == "island=Biscoe"  # outputs follow the table's column order
    assert ["island=Biscoe", "island=Dream", "island=Torgersen"] == [n for n in names if n.startswith("island")]
    assert "sex=missing" in names  # NA sex is a category of its own
    X = enc.transform(parts.X_train)
    assert X.dtype == np.float32 and X.shape == (len(parts.y_train), enc.n_features_out)
    numeric = [names.index(c) for c in ("bill_depth_mm", "body_mass_g")]
    np.testing.assert_allclose(X[:, numeric].mean(axis=0), 0, atol=1e-5)  # standardized on train
    np.testing.assert_allclose(X[:, numeric].std(axis=0), 1, atol=1e-4)
    one_hot = [i for i, n in enumerate(names) if n.startswith("island=")]
    assert (X[:, one_hot].sum(axis=1) == 1).all()


def test_bom_is_dropped_the_same_way_at_train_and_predict_time(tmp_path, penguin_model):
    text = "\ufeff" + PENGUINS.read_text()
    path = _csv(tmp_path, text)
    ds = bpexp.load_dataset(path, target="species")
    assert ds.target_name == "species" and ds.feature_names[0] == "island"  # no "\ufeffspecies" column
    from bpexp.export.inputs import read_table_rows

    rows = read_table_rows(path, penguin_model)
    assert penguin_model.predict(rows).shape == (344,)


def test_non_utf8_file_is_one_line_naming_the_file_and_encoding_option(tmp_path):
    path = _csv(tmp_path, "ville,y\nMontréal,1\nQuébec,0\n", encoding="latin-1")
    with pytest.raises(InvalidInputError, match=r"t.csv is not UTF-8 text \(byte 0xe9 at offset \d+\).*encoding"):
        bpexp.load_dataset(path, target="y")
    ds = bpexp.load_dataset(path, target="y", encoding="latin-1")
    assert ds.X["ville"].tolist() == ["Montréal", "Québec"]


def test_repeated_and_unknown_column_names_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(InvalidInputError, match=r"repeated column names \['a'\]"):
        bpexp.load_dataset(_csv(tmp_path, "a,b,a,y\n1,2,3,0\n4,5,6,1\n"), target="y")
    path = _csv(tmp_path, "a,b,y\n1,x,0\n2,z,1\n", "u.csv")
    with pytest.raises(InvalidInputError, match=r"dataset.drop names column\(s\) \['id'\] that the data does not "
                                                r"have; its columns are \['a', 'b', 'y'\]"):
        bpexp.load_dataset(path, target="y", drop=["id"])
    with pytest.raises(InvalidInputError, match=r"named in both dataset.numeric and dataset.categorical"):
        bpexp.load_dataset(path, target="y", numeric=["a"], categorical=["a"])
    with pytest.raises(InvalidInputError, match=r"has no column 'label'; its columns are \['a', 'b', 'y'\]"):
        bpexp.load_dataset(path, target="label")


def test_target_problems_are_refused_with_counts_and_rows(tmp_path):
    path = _csv(tmp_path, "a,y\n1,x\n2,\n3,y\n4,\n5,x\n6,y\n")
    with pytest.raises(InvalidInputError, match=r"the target 'y' is missing in 2 row\(s\), first rows \[3, 5\]"):
        bpexp.load_dataset(path, target="y")
    ds = bpexp.load_dataset(path, target="y", drop_missing_target=True)
    assert ds.n_samples == 4 and ds.y.tolist() == ["x", "y", "x", "y"]
    with pytest.raises(InvalidInputError, match=r"the target 'y' has a single value \('same'\)"):
        bpexp.load_dataset(_csv(tmp_path, "a,y\n1,same\n2,same\n", "c.csv"), target="y")


def test_an_empty_column_and_a_free_text_column_suggest_drop(tmp_path):
    with pytest.raises(InvalidInputError, match=r"column 'notes' is empty \(every value is missing\); drop it"):
        bpexp.load_dataset(_csv(tmp_path, "a,notes,y\n1,,0\n2,,1\n"), target="y")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"user-{i}" for i in range(300)], "a": rng.normal(size=300),
                          "y": rng.integers(0, 2, 300)})
    ds = bpexp.load_dataset(frame, target="y")
    with pytest.raises(InvalidInputError, match=r"column 'id' has 300 categories \(more than max_categories=200\)"
                                                r".*drop it \(dataset.drop: \[id\]\)"):
        fit_encoder(ds.X, ds.roles, min_frequency=1)
    assert not bpexp.load_dataset(frame, target="y", drop=["id"]).is_table  # numbers only: the plain path


def test_dates_are_refused_with_what_to_do():
    frame = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=4), "y": [0, 1, 0, 1]})
    with pytest.raises(InvalidInputError, match=r"column 'when' holds dates or times.*drop it"):
        bpexp.load_dataset(frame, target="y")


def test_parquet_and_dataframes_load_like_the_csv(tmp_path, penguins):
    ds, _ = penguins
    raw = pd.read_csv(PENGUINS)
    raw.to_parquet(tmp_path / "p.parquet")
    from_parquet = bpexp.load_dataset(tmp_path / "p.parquet", target="species")
    from_frame = bpexp.load_dataset(raw, target="species")
    for other in (from_parquet, from_frame):
        assert other.roles.numeric == ds.roles.numeric and other.roles.categorical == ds.roles.categorical
        assert other.digest() == ds.digest()
    # Parquet's text columns arrive dictionary-encoded: the same encoder and matrix as from the CSV.
    assert fit_encoder(from_parquet.X, from_parquet.roles).to_dict() == fit_encoder(ds.X, ds.roles).to_dict()
    np.testing.assert_array_equal(fit_encoder(ds.X, ds.roles).transform(from_parquet.X),
                                  fit_encoder(ds.X, ds.roles).transform(ds.X))
    raw.assign(species="Adelie").to_parquet(tmp_path / "one.parquet")
    with pytest.raises(InvalidInputError, match=r"the target 'species' has a single value \('Adelie'\)"):
        bpexp.load_dataset(tmp_path / "one.parquet", target="species")


def test_parquet_of_several_row_groups_and_columns_stored_without_dictionary(tmp_path, penguins):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds, _ = penguins
    table = pa.Table.from_pandas(pd.read_csv(PENGUINS), preserve_index=False)
    pq.write_table(table, tmp_path / "p.pq", row_group_size=50, use_dictionary=False)  # 7 row groups
    assert pq.ParquetFile(tmp_path / "p.pq").metadata.num_row_groups == 7
    raw = read_table(tmp_path / "p.pq")
    assert str(raw["island"].dtype) == "category"  # text read as categories even when stored plain
    assert list(raw.index[:2]) == [2, 3]  # row numbers as in the CSV
    loaded = bpexp.load_dataset(tmp_path / "p.pq", target="species")
    assert loaded.digest() == ds.digest()
    assert fit_encoder(loaded.X, loaded.roles).to_dict() == fit_encoder(ds.X, ds.roles).to_dict()


@pytest.mark.parametrize("damage", ["a CSV file", "torn in half", "empty", "footer overwritten"])
def test_a_file_that_is_not_readable_parquet_is_one_line_naming_it(tmp_path, damage):
    path = tmp_path / "bad.parquet"
    pd.read_csv(PENGUINS).to_parquet(path)
    data = path.read_bytes()
    broken = {"a CSV file": PENGUINS.read_bytes(), "torn in half": data[: len(data) // 2], "empty": b"",
              "footer overwritten": data[:-12] + b"\0" * 12}[damage]
    path.write_bytes(broken)
    with pytest.raises(InvalidInputError) as err:
        bpexp.load_dataset(path, target="species")
    message = str(err.value)
    assert f"{path} is not a readable Parquet file" in message and "\n" not in message

def test_numeric_only_tables_keep_the_plain_array_path():
    ds = bpexp.load_dataset(PENGUINS.parent / "iris.csv", target="species")
    assert not ds.is_table and ds.X.dtype == np.float64
    expected = np.loadtxt(PENGUINS.parent / "iris.csv", delimiter=",", skiprows=1, usecols=range(4))
    np.testing.assert_array_equal(ds.X, expected)  # the same floats the old reader parsed


def test_booleans_and_named_integer_columns_are_categories():
    frame = pd.DataFrame({"flag": [True, False] * 20, "code": [1, 2, 3, 4] * 10, "x": np.arange(40.0),
                          "y": [0, 1] * 20})
    roles = infer_roles(frame, target="y", categorical=["code"])
    assert roles.categorical == ["flag", "code"] and roles.numeric == ["x"]
    assert roles.value_types == {"flag": "boolean", "code": "integer", "x": "float"}
    ds = bpexp.load_dataset(frame, target="y", categorical=["code"])
    enc = fit_encoder(ds.X, ds.roles)
    assert [n for n in enc.feature_names_out if "=" in n] == ["flag=False", "flag=True", "code=1", "code=2",
                                                               "code=3", "code=4"]
    # At predict time the raw values may arrive as bools/ints, strings, or floats from a column with gaps.
    rows = {"flag": [True, "False", None], "code": [3, "4", 2.0], "x": [1.0, 2.0, 3.0]}
    X = enc.transform(rows)
    assert X[:, 0:2].tolist() == [[0, 1], [1, 0], [0, 0]]
    assert X[:, 2:6].tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


# ------------------------------------------------------------------------------ the encoder at predict time
def test_rare_and_unseen_categories_go_to_other_and_are_counted():
    frame = pd.DataFrame({"c": ["a"] * 10 + ["b"] * 10 + ["rare"] * 2, "y": [0, 1] * 11})
    enc = fit_encoder(frame[["c"]], min_frequency=5)
    assert enc.feature_names_out == ["c=a", "c=b", "c=other"]
    unknown = {}
    X = enc.transform({"c": ["a", "rare", "never-seen", None]}, unknown=unknown)
    assert X.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    assert unknown == {"c": 3}  # the rare, the unseen and the missing value (training had no missing c)


def test_unseen_categories_without_an_other_bucket_are_all_zeros():
    enc = fit_encoder(pd.DataFrame({"c": ["a", "b"] * 10}), min_frequency=1)
    unknown = {}
    assert enc.transform({"c": ["b", "zzz"]}, unknown=unknown).tolist() == [[0, 1], [0, 0]]
    assert unknown == {"c": 1}


def test_raw_rows_in_python_with_strings_and_missing_values(penguins, penguin_model):
    ds, parts = penguins
    raw = pd.read_csv(PENGUINS)  # all columns, target included, NA as they come
    pred = penguin_model.predict(raw)
    assert pred.dtype.kind == "U" and set(pred) <= set(ds.classes)
    accuracy = bpexp.evaluate(penguin_model, parts.X_test, parts.y_test)["accuracy"]
    assert accuracy > 0.95
    rows = [{"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 218,
             "body_mass_g": 4950, "sex": None, "year": 2009}]
    assert penguin_model.predict(pd.DataFrame(rows)).tolist() == ["Gentoo"]


@pytest.mark.parametrize(("value", "message"), [
    ("abc", r"row 1, column 'year': 'abc' is not a number"),
    (np.inf, r"row 1, column 'year': inf is infinite"),
    (1e308, r"row 1, column 'year': 1e\+308 is beyond float32's range"),
    (None, r"row 1, column 'year': a missing value, and this column had none in training"),
])
def test_bad_values_in_numeric_columns_name_row_and_column(penguin_model, value, message):
    rows = pd.read_csv(PENGUINS).head(3).astype({"year": object})
    rows.loc[1, "year"] = value
    with pytest.raises(InvalidInputError, match=message):
        penguin_model.predict(rows)


def test_missing_and_unexpected_columns_are_named(penguin_model):
    rows = pd.read_csv(PENGUINS).head(3)
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) \['island'\]"):
        penguin_model.predict(rows.drop(columns=["island"]))
    with pytest.raises(InvalidInputError, match=r"unexpected column\(s\) \['colour'\]"):
        penguin_model.predict(rows.assign(colour="blue"))
    # A column that had gaps in training may be left out altogether: it is all missing.
    assert penguin_model.predict(rows.drop(columns=["sex"])).shape == (3,)
    with pytest.raises(InvalidInputError, match="must be a table with named columns"):
        penguin_model.predict(np.zeros((2, 7)))


def test_model_folder_keeps_the_encoder_as_json_and_round_trips(tmp_path, penguin_model):
    penguin_model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["preprocessing"]["kind"] == "table"
    with np.load(tmp_path / "m" / "weights.npz") as npz:
        assert sorted(npz.files) == ["W0", "W1", "b0", "b1"]  # nothing learned by the encoder is an array
    loaded = bpexp.load_model(tmp_path / "m")
    raw = pd.read_csv(PENGUINS)
    np.testing.assert_array_equal(loaded.predict_proba(raw), penguin_model.predict_proba(raw))


def _numeric(e):
    return next(c for c in e["columns"] if c["kind"] == "numeric")


def _categorical(e):
    return next(c for c in e["columns"] if c["kind"] == "categorical")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda e: _numeric(e).update(scale=0.0), "scale positive"),
    (lambda e: _numeric(e).update(median="x"), "field 'median' must be float"),
    (lambda e: _numeric(e).update(kind="text"), "kind 'numeric' or 'categorical'"),
    (lambda e: _categorical(e).update(categories=[1, 2]), "categories must be distinct strings"),
    (lambda e: _categorical(e).update(evil=True), r"unknown fields \['evil'\]"),
    (lambda e: e["columns"].pop(), "sizes\\[0\\] is 15 but the encoder produces"),
])
def test_a_tampered_encoder_is_refused(tmp_path, penguin_model, edit, message):
    penguin_model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    edit(meta["preprocessing"]["encoder"])
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=message):
        bpexp.load_model(tmp_path / "m")


def test_encoder_from_dict_round_trip_and_schema(penguin_model):
    enc = penguin_model.encoder
    again = TabularEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.feature_names_out == enc.feature_names_out and again.ignored == enc.ignored
    schema = {row["column"]: row for row in enc.schema()}
    assert schema["island"]["role"] == "categorical" and schema["island"]["categories"] == 3
    assert schema["bill_length_mm"]["role"] == "numeric" and 0 < schema["bill_length_mm"]["missing_fraction"] < 0.05


def test_mlp_refuses_a_mismatched_encoder(penguin_model):
    with pytest.raises(InvalidInputError, match="sizes\\[0\\] is 10 but the encoder produces 15"):
        bpexp.MLP([10, 3], encoder=penguin_model.encoder)
    with pytest.raises(InvalidInputError, match="the encoder already standardizes"):
        bpexp.MLP([15, 3], encoder=penguin_model.encoder, standardize=True)


def test_real_sklearn_table_with_injected_gaps_trains():
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.loc[::7, "alcohol"] = np.nan
    ds = bpexp.load_dataset(frame, target="target")
    parts = bpexp.split(ds, seed=1)
    enc = fit_encoder(parts.X_train, ds.roles)
    assert "alcohol=missing" in enc.feature_names_out
    model = bpexp.MLP([enc.n_features_out, 16, 3], encoder=enc, seed=0)
    bpexp.fit(model, parts.X_train, parts.y_train, optimizer="adam", lr=0.01, epochs=60, batch_size=16)
    assert bpexp.evaluate(model, parts.X_test, parts.y_test)["accuracy"] > 0.85


def test_table_regression_scales_its_targets_and_round_trips(tmp_path):
    ds = bpexp.load_dataset(PENGUINS, target="body_mass_g", drop_missing_target=True)
    assert ds.task == "regression" and ds.is_table
    parts = bpexp.split(ds, seed=0)
    enc = fit_encoder(parts.X_train, ds.roles)
    model = bpexp.MLP([enc.n_features_out, 32, 1], task="regression", encoder=enc, seed=0)
    bpexp.fit(model, parts.X_train, parts.y_train, optimizer="adam", lr=0.01, epochs=60, batch_size=16, seed=0)
    assert model.target_scaler is not None and 3000 < float(model.target_scaler.mean[0]) < 5500  # grams
    assert bpexp.evaluate(model, parts.X_test, parts.y_test)["r2"] > 0.7
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(parts.X_test), model.predict(parts.X_test))


def test_a_column_typed_differently_by_chunks_reads_as_a_whole_read_types_it(tmp_path):
    n = 400_000  # enough rows for pandas' chunked typing to see numbers first and text last
    lines = ["a,b,y"] + [f"{i % 7},{i % 3},{i % 2}" for i in range(n)] + ["x,1,0"]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = bpexp.load_dataset(path, target="y")
    whole = pd.read_csv(path, low_memory=False)
    assert ds.roles.categorical == ["a"] and not pd.api.types.is_numeric_dtype(whole["a"])  # text: categories
    assert ds.X["a"].iloc[-1] == "x" and ds.X["a"].iloc[0] == "0" and ds.X.index[-1] == n + 2


def test_a_bad_value_deep_in_a_large_table_names_its_own_row(penguin_model):
    raw = pd.concat([pd.read_csv(PENGUINS)] * 30, ignore_index=True)  # 10,320 rows: several transform blocks
    raw["year"] = raw["year"].astype(object)
    raw.loc[9000, "year"] = "soon"
    with pytest.raises(InvalidInputError, match=r"row 9000, column 'year': 'soon' is not a number"):
        penguin_model.predict(raw)
    rows = np.arange(len(raw)) + 2
    with pytest.raises(InvalidInputError, match=r"row 9002, column 'year'"):
        penguin_model.check_X(raw, "t.csv", row_numbers=rows)


def _force_threads(monkeypatch, threads: int) -> None:
    """Make every table pass use ``threads`` threads, however small the table and however many CPUs."""
    import bpexp.nn.parallel as parallel

    monkeypatch.setattr(parallel, "MIN_PARALLEL_ROWS", 1 if threads > 1 else 10**12)
    monkeypatch.setattr(parallel, "available_cores", lambda: threads)


@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_fit_and_transform_give_the_serial_results_bit_for_bit(monkeypatch, threads):
    raw = pd.concat([pd.read_csv(PENGUINS)] * 40, ignore_index=True)  # 13,760 rows: several 4,096-row blocks
    raw.loc[raw.index % 7 == 0, "bill_length_mm"] = np.nan
    roles = infer_roles(raw.drop(columns="species"))
    features = raw.drop(columns="species")
    _force_threads(monkeypatch, 1)
    serial_enc = fit_encoder(features, roles)
    serial_unknown: dict = {}
    serial = serial_enc.transform(features.iloc[::-1], unknown=serial_unknown)
    _force_threads(monkeypatch, threads)
    threaded_enc = fit_encoder(features, roles)
    threaded_unknown: dict = {}
    threaded = threaded_enc.transform(features.iloc[::-1], unknown=threaded_unknown)
    assert threaded_enc.to_dict() == serial_enc.to_dict()
    assert threaded.dtype == serial.dtype and np.array_equal(threaded, serial)
    assert threaded_unknown == serial_unknown


def test_a_bad_value_in_a_later_threads_rows_names_its_own_row(monkeypatch, penguin_model):
    raw = pd.concat([pd.read_csv(PENGUINS)] * 30, ignore_index=True)  # 10,320 rows: the bad ones in the 2nd half
    raw["year"] = raw["year"].astype(object)
    raw.loc[9000, "year"] = "soon"

    def message(threads: int) -> str:
        _force_threads(monkeypatch, threads)
        with pytest.raises(InvalidInputError) as caught:
            penguin_model.predict(raw)
        return str(caught.value)

    assert message(2) == message(1) == "X row 9000, column 'year': 'soon' is not a number"
    raw.loc[9500, "bill_depth_mm"] = np.inf  # a column before 'year': columns are checked in order, as ever
    assert message(2) == message(1)
    assert message(2).startswith("X row 9500, column 'bill_depth_mm': inf is infinite")


def test_too_many_categories_is_refused_the_same_way_on_threads(monkeypatch):
    frame = pd.DataFrame({"x": np.arange(3000.0), "a": [f"a{i % 5}" for i in range(3000)],
                          "b": [f"id{i}" for i in range(3000)], "c": [f"c{i}" for i in range(3000)]})
    _force_threads(monkeypatch, 2)
    with pytest.raises(InvalidInputError, match=r"column 'b' has 3000 categories") as caught:  # the first of two
        fit_encoder(frame, infer_roles(frame), min_frequency=1, max_categories=100)
    assert "'c'" not in str(caught.value)


def test_fitted_medians_are_numpys_median_bit_for_bit():
    # fit_encoder's median takes one partition instead of np.median's three; it must not move a single bit.
    from bpexp.data.tabular import median_of

    rng = np.random.default_rng(3)
    for n in [*range(1, 30), 1000, 1001, 100_000]:
        for x in (rng.standard_normal(n), rng.integers(0, 3, n).astype(float),
                  np.round(rng.standard_normal(n) * 1e6, 2), np.full(n, 7.25)):
            assert median_of(x.copy()) == float(np.median(x)), n
    assert median_of(np.array([])) == 0.0
    # Large arrays: the middle bracketed from a sample, NaN ignored, the input unchanged; patterns a sample can miss.
    step = 200_001 // 4096
    for x in (rng.standard_normal(200_001), np.sort(rng.standard_normal(200_000)), -np.arange(200_000.0),
              np.where(np.arange(200_001) % step == 0, 1e9, rng.standard_normal(200_001)),  # every sampled value huge
              rng.integers(0, 3, 200_000).astype(float), np.full(50_000, -2.5),
              np.concatenate([np.full(30_000, np.inf), rng.standard_normal(30_000)])):
        for gaps in (0.0, 0.01, 0.6):
            y = x.copy()
            y[rng.random(y.size) < gaps] = np.nan
            before = y.copy()
            valid = int(np.count_nonzero(~np.isnan(y)))
            assert median_of(y, valid) == float(np.nanmedian(y)), (y[:5], gaps)
            np.testing.assert_array_equal(y, before)
    frame = pd.DataFrame({"a": [1.0, np.nan, 4.0, 2.0, np.nan, 8.0], "b": list("xyxyxy")})
    enc = fit_encoder(frame, infer_roles(frame))
    assert enc.columns[0].median == float(np.median([1.0, 4.0, 2.0, 8.0])) == 3.0


def test_a_column_that_refuses_gaps_has_no_median_and_round_trips_as_json():
    # The median is the fill value of gaps: computed where training had gaps or gaps are allowed, else null.
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0, 8.0], "g": [1.0, np.nan, 3.0, 5.0], "c": [0.5, 1.5, 2.5, 9.0],
                          "b": list("xyxy")})
    enc = fit_encoder(frame, infer_roles(frame), allow_missing=["c"])
    a, g, c = enc.columns[:3]
    assert (a.median, a.allow_missing) == (None, False)
    assert (g.median, c.median) == (3.0, 2.0) and g.allow_missing and c.allow_missing
    state = json.loads(json.dumps(enc.to_dict()))
    assert state["columns"][0]["median"] is None
    again = TabularEncoder.from_dict(state)
    rows = pd.DataFrame({"a": [3.0, 5.0], "g": [np.nan, 2.0], "c": [np.nan, 1.0], "b": ["x", "y"]})
    np.testing.assert_array_equal(again.transform(rows), enc.transform(rows))
    with pytest.raises(InvalidInputError, match="column 'a': a missing value, and this column had none"):
        again.transform(rows.assign(a=[np.nan, 1.0]))
    older = json.loads(json.dumps(enc.to_dict()))
    older["columns"][0]["median"] = 2.5  # as saved before medians were skipped: still loads, same matrix
    np.testing.assert_array_equal(TabularEncoder.from_dict(older).transform(rows), enc.transform(rows))
    state["columns"][1]["median"] = None  # g allows gaps: a null fill value is a tampered file
    with pytest.raises(InvalidInputError, match="field 'median' must be float, got None"):
        TabularEncoder.from_dict(state)


def _large_csv(path: Path, n: int, special: dict[int, str] | None = None, bom: bool = False,
               flags: tuple[str, str] = ("True", "False"), gaps: tuple[str, ...] = ("", "NA", "nan", "NULL", "None")
               ) -> Path:
    """A CSV file over 5 MB (its text columns read as categories) with gaps in several spellings, text, booleans,
    dates."""
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal(n) * 100, 6)
    lines = ["num,count,full,flag,city,when,note,y"]
    for i in range(n):
        lines.append(f"{x[i] if i % 97 else gaps[i % len(gaps)]},{i % 11 if i % 89 else ''},{i},"
                     f"{flags[0] if i % 3 else flags[1]},{['Oslo', 'Rome', 'NA', ''][i % 4] if i % 5 else 'Lima'},"
                     f"2026-01-{1 + i % 28:02d},"
                     f"\"a, {i % 6}\",{i % 3}")
    for row, text in (special or {}).items():
        lines[row - 1] = text  # rows as an editor counts them: the header is row 1
    data = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode())
    assert path.stat().st_size > 5 * 2**20
    return path


@pytest.mark.parametrize("blank_line", [False, True])
def test_a_large_csv_with_its_text_read_as_categories_is_what_a_whole_read_gives(tmp_path, monkeypatch, blank_line):
    from bpexp.data import files

    # A blank line (an all-missing row to pandas) would make a boolean column objects: text flags with it.
    path = _large_csv(tmp_path / "big.csv", 120_000, special={50_000: ""} if blank_line else None, bom=True,
                      flags=("yes", "no") if blank_line else ("True", "False"),
                      gaps=("", "nan") if blank_line else ("", "NA", "nan", "NULL", "None"))
    options = {"sep": ",", "encoding": files.DEFAULT_ENCODING, "skip_blank_lines": False}
    text = ["city", "when", "note"] if not blank_line else ["flag", "city", "when", "note"]
    assert files._text_as_categories(path, options, pd) == {"dtype": dict.fromkeys(text, "category")}
    fast = bpexp.load_dataset(path, target="y")
    monkeypatch.setattr(files, "TYPED_MIN_BYTES", float("inf"))  # the same file read as plainly as a small one
    slow = bpexp.load_dataset(path, target="y")
    assert fast.roles.numeric == slow.roles.numeric == ["num", "count", "full"]
    assert fast.roles.categorical == slow.roles.categorical == ["flag", "city", "when", "note"]
    assert fast.roles.value_types == slow.roles.value_types
    assert fast.digest() == slow.digest() and list(fast.X.index) == list(slow.X.index)
    assert (50_000 not in fast.X.index) == blank_line and fast.X.index[-1] == 120_001  # rows as the file counts
    np.testing.assert_array_equal(fast.y, slow.y)
    enc = fit_encoder(slow.X, slow.roles)
    assert fit_encoder(fast.X, fast.roles).to_dict() == enc.to_dict()
    np.testing.assert_array_equal(enc.transform(fast.X), enc.transform(slow.X))


def test_a_large_csv_typed_differently_in_its_later_rows_is_read_whole(tmp_path):
    from bpexp.data import files

    # A word deep in a number column: pandas' whole read types the column as text, and says where it is.
    path = _large_csv(tmp_path / "word.csv", 120_000, special={100_000: "oops,1,2,True,Oslo,2026-01-01,x,1"})
    ds = bpexp.load_dataset(path, target="y")
    assert "num" in ds.roles.categorical and ds.X.loc[100_000, "num"] == "oops"
    with pytest.raises(InvalidInputError, match=r"row 100000, column 'num': 'oops' is not a number"):
        bpexp.load_dataset(path, target="y", numeric=["num"])
    # A row with a field too many: pandas' own message, with the file's line.
    bad = _large_csv(tmp_path / "row.csv", 120_000, special={90_000: "1,2,3,True,Oslo,2026-01-01,x,1,extra"})
    with pytest.raises(InvalidInputError, match=r"row.csv is not a readable CSV file: .*Expected 8 fields in line "
                                                r"90000, saw 9"):
        bpexp.load_dataset(bad, target="y")
    # Gaps in a boolean column, after the first rows: a column of objects (True, False, NaN), as a whole read gives.
    gaps = _large_csv(tmp_path / "flag.csv", 120_000, special={80_000: "1,2,3,,Oslo,2026-01-01,x,1"})
    whole = pd.read_csv(gaps, encoding=files.DEFAULT_ENCODING, skip_blank_lines=False, low_memory=False)
    flags = bpexp.load_dataset(gaps, target="y").X["flag"]
    assert flags.isna().sum() == whole["flag"].isna().sum() == 1 and flags.loc[80_000] != flags.loc[80_000]


def test_columns_with_gaps_finds_nan_but_not_infinity_and_reads_nullable_types():
    frame = pd.DataFrame({
        "clean": [1.0, 2.0, 3.0, 4.0], "nan": [1.0, np.nan, 3.0, 4.0], "inf": [1.0, np.inf, -np.inf, 4.0],
        "inf_and_nan": [np.inf, np.nan, 1.0, 2.0], "ints": [1, 2, 3, 4],
        "nullable": pd.array([1.5, None, 2.0, 3.0], dtype="Float64"), "text": ["a", None, "b", "c"],
        "cats": pd.Categorical(["a", "b", "a", "b"]),
    })
    assert bpexp.data.tabular.columns_with_gaps(frame) == ["nan", "inf_and_nan", "nullable", "text"]
    assert bpexp.data.tabular.columns_with_gaps(frame, ["ints", "nan"]) == ["nan"]
    big = pd.DataFrame({"a": np.arange(100_000.0), "b": np.arange(100_000.0), "c": np.full(100_000, 1e308)})
    big.loc[99_999, "b"] = np.nan  # the last row: every value is looked at, on threads
    assert bpexp.data.tabular.columns_with_gaps(big) == ["b"]  # "c" sums past 1e308 to inf, with no gap


def test_held_out_gaps_and_the_fit_give_the_encoder_the_whole_tables_gaps_give(penguins):
    from bpexp.data.dataset import Split
    from bpexp.data.tabular import columns_with_gaps, held_out_gaps

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"test_gap": rng.standard_normal(60), "train_gap": rng.standard_normal(60),
                          "none": rng.standard_normal(60), "kind": rng.choice(["x", "y"], 60)})
    frame.loc[55, "test_gap"] = np.nan  # rows 50-59 are the test rows below
    frame.loc[3, "train_gap"] = np.nan
    roles = infer_roles(frame)
    y = np.zeros(60)
    parts = Split(frame.iloc[:40], y[:40], frame.iloc[40:50], y[40:50], frame.iloc[50:], y[50:])
    assert held_out_gaps(parts, roles.numeric) == ["test_gap"]
    assert columns_with_gaps(frame, roles.numeric) == ["test_gap", "train_gap"]
    by_parts = fit_encoder(parts.X_train, roles, allow_missing=held_out_gaps(parts, roles.numeric))
    assert by_parts.to_dict() == fit_encoder(parts.X_train, roles, allow_missing=["test_gap", "train_gap"]).to_dict()
    allowed = {c.name: c.allow_missing for c in by_parts.columns if c.name in roles.numeric}
    assert allowed == {"test_gap": True, "train_gap": True, "none": False}
    ds, penguin_parts = penguins  # a real table: the same encoder either way
    whole = columns_with_gaps(ds.X, ds.roles.numeric)
    assert whole and fit_encoder(penguin_parts.X_train, ds.roles, allow_missing=whole).to_dict() == fit_encoder(
        penguin_parts.X_train, ds.roles, allow_missing=held_out_gaps(penguin_parts, ds.roles.numeric)).to_dict()


def test_category_counts_include_categories_no_training_row_holds():
    col = pd.Series(pd.Categorical(["a", "b", None, "a", "a"], categories=["a", "b", "zz"]))
    enc = fit_encoder(pd.DataFrame({"c": col}), min_frequency=2)
    (column,) = enc.columns
    assert column.categories == ["a"] and column.counts == [3] and column.has_other and column.has_missing
    assert column.missing_fraction == 0.2
