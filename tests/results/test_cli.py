"""`raymtl results`: the report in three formats, SQL over the tables, and errors as exit 2."""

from __future__ import annotations

import csv
import io
import json

import pytest

from raymtl.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["results", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_gives_table1_and_table2_matching_the_summary(capsys, finished_run, summary):
    code, out, _ = run_cli(capsys, finished_run, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    run = finished_run.name
    assert doc["runs"][run]["members"] == {
        "asc": {"done": 4, "running": 0, "failed": 0, "missing": 0},
        "aec": {"done": 4, "running": 0, "failed": 0, "missing": 0},
    }
    for task in ("asc", "aec"):
        s = summary["tasks"][task]
        t2 = doc["table2"]["tasks"][task]["runs"][run]
        assert t2["ensemble_accuracy"] == s["ensemble_accuracy"]
        assert t2["eight_member_mean"] == s["eight_member"]["mean"]
        assert (t2["member_mean"], t2["member_std"]) == (
            s["member_accuracy"]["mean"],
            s["member_accuracy"]["std"],
        )
        row = next(r for r in doc["table1"]["tasks"][task] if r["experiment"] == f"finetune-{task}")
        assert row["runs"][run]["mean"] == pytest.approx(s["table1"]["triple"]["mean"], abs=1e-12)
    assert doc["table1"]["variant"] == "triple"
    code, out, _ = run_cli(capsys, finished_run, "--format", "json", "--variant", "all")
    row = next(r for r in json.loads(out)["table1"]["tasks"]["aec"] if r["experiment"] == "finetune-aec")
    assert row["runs"][run]["mean"] == pytest.approx(
        summary["tasks"]["aec"]["table1"]["all"]["mean"], abs=1e-12
    )


def test_table_prints_both_tables_beside_the_papers_figures(capsys, finished_run, summary):
    code, out, _ = run_cli(capsys, finished_run)
    assert code == 0
    assert f"{finished_run.name} ({finished_run}): members asc 4/4 done; aec 4/4 done; reduced" in out
    lines = out.splitlines()
    fine = next(ln for ln in lines if ln.startswith("Fine-tuned model for ASC"))
    mean = 100 * summary["tasks"]["asc"]["table1"]["triple"]["mean"]
    assert f"{mean:.2f} ± 0.00 (1/2)" in fine and fine.rstrip().endswith("79.44 ± 0.38")
    ens = [ln for ln in lines if ln.startswith("ensemble of all members")]
    acc = [100 * summary["tasks"][t]["ensemble_accuracy"] for t in ("asc", "aec")]
    assert f"{acc[0]:.2f} (4)" in ens[0] and ens[0].rstrip().endswith("84.50 (24)")
    assert f"{acc[1]:.2f} (4)" in ens[1] and ens[1].rstrip().endswith("77.50 (24)")


def test_csv_is_long_form_with_the_papers_figures(capsys, finished_run, summary):
    code, out, _ = run_cli(capsys, finished_run, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    ens = {r["task"]: r for r in rows if r["table"] == "table2" and r["row"] == "ensemble"}
    assert float(ens["asc"]["mean"]) == summary["tasks"]["asc"]["ensemble_accuracy"]
    assert float(ens["asc"]["paper_mean"]) == 0.845


def test_sql_prints_the_rows(capsys, finished_run):
    code, out, _ = run_cli(capsys, finished_run, "--sql", "select count(*) as n from members")
    assert code == 0
    assert out.splitlines()[:3] == ["n", "-", "8"]
    code, out, _ = run_cli(
        capsys,
        finished_run,
        "--sql",
        "select task, state, count(*) as n from members group by all order by task",
        "--format",
        "json",
    )
    assert json.loads(out) == [
        {"task": "aec", "state": "done", "n": 4},
        {"task": "asc", "state": "done", "n": 4},
    ]
    code, out, _ = run_cli(
        capsys,
        finished_run,
        "--sql",
        "select trial from members where task = 'asc' " "order by trial limit 1",
        "--format",
        "csv",
    )
    assert out.splitlines() == ["trial", "finetune-asc-d1-r1-quadruple"]


@pytest.mark.parametrize(
    "query,message",
    [
        ("selec 1", "syntax error"),
        ("select * from no_such_table", "no_such_table does not exist"),
        ("select * from read_text('/etc/hostname')", "disabled by configuration"),
    ],
)
def test_a_bad_query_is_a_message_and_exit_2(capsys, finished_run, query, message):
    code, out, err = run_cli(capsys, finished_run, "--sql", query)
    assert code == 2
    assert err.startswith("raymtl results: error: query failed:") and message in err
    assert "Traceback" not in err and out == ""


def test_a_folder_that_is_not_a_run_exits_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, tmp_path / "nothing")
    assert code == 2 and "no such RUN folder" in err


def test_schema_lists_every_table(capsys, finished_run):
    code, out, _ = run_cli(capsys, finished_run, "--schema")
    assert code == 0
    for name in (
        "members:",
        "trials:",
        "results:",
        "metrics:",
        "table1:",
        "table2:",
        "confusion:",
        "scores:",
    ):
        assert any(line.startswith(name) for line in out.splitlines()), name


def test_no_run_at_all_exits_2(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "give at least one RUN folder" in err
