"""The results catalogue: one definition per table, from which schemas and checks derive."""

from __future__ import annotations

import pytest

from raymtl.ensemble.reduce import PREDICTIONS_SCHEMA
from raymtl.results.catalog import BUILT, PARQUET, SCHEMAS, TABLES, VIEW, VIEWS
from raymtl.train.scoring import SCORES_SCHEMA


def test_every_table_is_built_scanned_or_a_view_with_its_sql():
    kinds = {name: t.kind for name, t in TABLES.items()}
    assert {n for n, k in kinds.items() if k == VIEW} == set(VIEWS)
    assert {n for n, k in kinds.items() if k == BUILT} == set(SCHEMAS)
    assert {n for n, k in kinds.items() if k == PARQUET} == {"scores", "predictions"}
    for t in TABLES.values():
        assert t.rows and len(set(t.names)) == len(t.names), t.name


def test_scanned_tables_are_their_files_schema_with_the_run_first():
    for name, file_schema in (("scores", SCORES_SCHEMA), ("predictions", PREDICTIONS_SCHEMA)):
        schema = TABLES[name].schema
        assert schema.names == ["run", *file_schema.names]
        assert schema.remove(0).equals(file_schema)


def test_a_row_with_a_missing_or_unknown_column_is_refused():
    classes = TABLES["classes"]
    good = {"run": "R", "task": "asc", "label": 0, "class_name": "beach"}
    assert classes.table([good]).to_pylist() == [good]
    with pytest.raises(AssertionError, match=r"missing \['class_name'\], unknown \['name'\]"):
        classes.table([{"run": "R", "task": "asc", "label": 0, "name": "beach"}])
    with pytest.raises(TypeError, match="view"):
        TABLES["confusion"].schema
