"""The dashboard's server: the page, its assets, the JSON API, and what it refuses (docs/serving.md).

One in-process server for the module, on 127.0.0.1, over three runs: the finished tiny ensemble,
a copy of it named with an HTML injection attempt (and injection class names), and a run caught
mid-training."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse

import pytest

from raymtl.dashboard.app import SECURITY_HEADERS, RunsData, create_app
from raymtl.dashboard.server import command_line, is_loopback, serve
from raymtl.run import progress as RP
from tests.results.conftest import EVIL_EVENT, EVIL_RUN_NAME, EVIL_SCENE
from tests.results.servers import get_json, request, thread_server


@pytest.fixture(scope="module")
def port(finished_run, evil_run, live_run):
    app = create_app([str(finished_run), str(evil_run), str(live_run)], refresh_s=3600)
    with thread_server(app) as p:
        yield p


def test_the_page_and_its_assets_are_served_with_security_headers(port):
    status, headers, body = request(port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script src="/static/app.js" defer></script>' in body
    for k, v in SECURITY_HEADERS.items():
        assert headers[k.lower()] == v
    assert "server" not in headers
    for name, kind in [
        ("app.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        status, headers, body = request(port, f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind) and body
    for name in ("app.js", "charts.js"):  # text goes in through textContent only, never parsed as HTML
        assert b"innerHTML" not in request(port, f"/static/{name}")[2]


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "/static/../../etc/passwd",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/app.py",
        "/static/",
        "/static",
        "/etc/passwd",
        "/index.html",
        "/docs",
        "/openapi.json",
        "/api",
        "/api/",
        "/api/nothing",
        "/api/runs/3/members",
        "/api/runs/-1/members",
        "/api/runs/99999999999999999999/members",
        "/api/runs/..%2F..%2Fetc%2Fpasswd/members",
        "/api/runs/%2Fetc%2Fpasswd/curves",
        "/api/runs/RUN2/curves",
        "/api/runs/0/confusion/xyz",
        "/api/runs/0/confusion/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/0/confusion/asc?trial=..%2F..%2Fetc%2Fpasswd",
        "/api/runs/0/confusion/asc?trial=finetune-asc-d9-r1-triple",
        "/api/runs/0/confusion/aec?trial=finetune-asc-d1-r1-triple",
        "/api/runs/2/confusion/asc",
    ],
)
def test_anything_but_the_page_assets_and_api_is_404(port, path):
    status, headers, body = request(port, path)
    assert status == 404, (path, status, body[:200])
    assert headers["content-type"] == "application/json" and "detail" in json.loads(body)
    assert b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_it_is_read_only(port, method):
    for path in ("/", "/api/overview", "/api/runs/0/members"):
        assert request(port, path, method)[0] == 405


def test_a_foreign_host_header_is_refused_on_loopback(port):
    assert request(port, "/api/overview", headers={"Host": "attacker.example"})[0] == 400
    assert request(port, "/api/overview", headers={"Host": f"localhost:{port}"})[0] == 200


def test_overview_has_each_runs_ensemble_accuracy_and_progress(port, summary, finished_run):
    data = get_json(port, "/api/overview")
    runs = data["runs"]
    assert [r["name"] for r in runs] == [finished_run.name, EVIL_RUN_NAME, "LIVE"]
    acc = {e["task"]: e["ensemble_accuracy"] for e in runs[0]["ensemble"]}
    assert acc == {t: s["ensemble_accuracy"] for t, s in summary["tasks"].items()}
    assert runs[0]["members"]["asc"] == {"done": 4, "running": 0, "failed": 0, "missing": 0}
    assert runs[0]["live"] is False and runs[2]["live"] is True and data["live"] is True
    assert runs[2]["ensemble"] == [] and runs[2]["reduced"] is False


def test_tables_api_matches_the_summary(port, summary, finished_run):
    data = get_json(port, "/api/tables?variant=all")
    run = finished_run.name
    for task, s in summary["tasks"].items():
        assert data["table2"]["tasks"][task]["runs"][run]["ensemble_accuracy"] == s["ensemble_accuracy"]
        row = next(r for r in data["table1"]["tasks"][task] if r["experiment"] == f"finetune-{task}")
        assert row["runs"][run]["mean"] == pytest.approx(s["table1"]["all"]["mean"], abs=1e-12)
        assert row["runs"]["LIVE"] is None or row["runs"]["LIVE"]["n_trials"] == 1
    # The claims as `raymtl results` computes them, per run (the finished run: the study's pairs).
    claims = data["claims"]
    assert claims["variant"] == "all" and len(claims["claims"]) == 12
    mtl = next(c for c in claims["claims"] if (c["task"], c["claim"]) == ("asc", "mtl > baseline-asc"))
    assert mtl["runs"][run]["n"] == 2 and mtl["runs"]["LIVE"]["words"] == "no pairs in this run"
    assert request(port, "/api/tables?variant=../../etc")[0] == 422


def test_runs_are_chosen_by_index_or_name(port, finished_run):
    by_index = get_json(port, "/api/runs/0/members")
    by_name = get_json(port, f"/api/runs/{urllib.parse.quote(finished_run.name)}/members")
    assert by_index == by_name and len(by_index["members"]) == 8
    evil = get_json(port, "/api/runs/" + urllib.parse.quote(EVIL_RUN_NAME, safe="") + "/members")
    assert evil["run"] == EVIL_RUN_NAME


def test_confusion_curves_and_size(port, summary, finished_run):
    c = get_json(port, "/api/runs/0/confusion/asc")
    assert c["accuracy"] == pytest.approx(summary["tasks"]["asc"]["ensemble_accuracy"])
    assert len(c["matrix"]) == len(c["classes"]) == 15
    m = get_json(port, "/api/runs/0/confusion/aec?trial=finetune-aec-d2-r1-quadruple")
    assert m["accuracy"] == pytest.approx(
        summary["tasks"]["aec"]["member_accuracy"]["per_member"]["finetune-aec-d2-r1-quadruple"]
    )
    curves = get_json(port, "/api/runs/0/curves")["tasks"]["asc"]
    ft = [s for s in curves if s["trial"] == "finetune-asc-d1-r1-triple"][0]
    assert [e["epoch"] for e in ft["epochs"]] == [0, 1, 2, 3]
    live = [s for s in get_json(port, "/api/runs/2/curves")["tasks"]["aec"] if s["live"]]
    assert [s["trial"] for s in live] == ["mtl-ic-d1-r1-quadruple", "mtl-ic-d2-r1-triple"]
    size = get_json(port, "/api/ensemble-size")
    got = [(r["members"], r["mean"]) for r in size["tasks"]["aec"][finished_run.name]]
    assert got == [(b["members"], b["mean"]) for b in summary["tasks"]["aec"]["by_size"]]
    assert size["paper"]["asc"] == [{"members": 24, "accuracy": 0.845}, {"members": 8, "accuracy": 0.842}]


def test_injection_names_are_data_never_markup(port):
    status, _, page = request(port, "/")
    for evil in (EVIL_RUN_NAME, EVIL_SCENE, EVIL_EVENT):
        assert evil.encode() not in page  # the page is static: names only arrive as JSON
    overview = get_json(port, "/api/overview")
    assert overview["runs"][1]["name"] == EVIL_RUN_NAME
    assert get_json(port, "/api/runs/1/confusion/asc")["classes"][0] == EVIL_SCENE
    assert get_json(port, "/api/runs/1/confusion/aec")["classes"][0] == EVIL_EVENT
    status, headers, _ = request(port, "/api/runs/1/confusion/asc")
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"


def test_the_store_is_reread_while_a_run_moves_on(live_run, tmp_path):
    run = tmp_path / "LIVE"
    shutil.copytree(live_run, run)
    data = RunsData([str(run)], refresh_s=0.05)

    def state():
        return {r["trial"]: r["state"] for r in data.store().rows("select trial, state from members")}

    assert state()["finetune-asc-d2-r1-quadruple"] == "missing"
    trial, now = "mtl-ic-d2-r1-quadruple", time.time()
    first_epoch = {"trial": trial, "epoch": 0, "loss_asc": 6.0}
    placement = RP.Placement("worker-2", 4343)
    RP.write_trial_progress(
        str(run), RP.TrialProgress(trial, "mtl-ic", {"asc": 6}, (first_epoch,), now, now, placement)
    )
    time.sleep(0.1)
    assert state()["finetune-asc-d2-r1-quadruple"] == "running"


def test_binding_beyond_loopback_warns_and_drops_the_host_check(monkeypatch, capsys, finished_run):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(config=self.config))
    serve([str(finished_run)], host="0.0.0.0", port=8123)
    err = capsys.readouterr().err
    assert "warning: serving on 0.0.0.0" in err and "no login" in err
    assert seen["config"].host == "0.0.0.0" and seen["config"].port == 8123
    serve([str(finished_run)])
    assert "warning" not in capsys.readouterr().err and seen["config"].host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_command_line_for_the_demo_quotes_the_runs():
    assert command_line(["demo-out/run"]) == "raymtl dashboard demo-out/run"
    assert command_line(["a b", "c"], port=8001) == "raymtl dashboard 'a b' c --port 8001"


def test_a_taken_port_is_a_clear_error(port, finished_run):
    from raymtl.errors import UserError

    with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve([str(finished_run)], port=port)
