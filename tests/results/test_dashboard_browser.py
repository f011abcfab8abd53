"""The dashboard in a real browser: headless Debian chromium driven by playwright.

`raymtl dashboard RUN` is started as a user starts it, on the finished tiny ensemble; the page
must show the run's numbers in its tables and draw its charts, with no script error (a CSP
violation is one). A second page, on runs named with HTML injection attempts and a run caught
mid-training, must show those names as text. Screenshots are kept in tests/artifacts/ (or
$RAYMTL_TEST_ARTIFACTS) for CI to keep.

The browser is `make test`'s to install (.ci/install-browser); without it this test fails, and
says so, rather than skipping.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from raymtl.dashboard.app import create_app
from tests.results.conftest import EVIL_EVENT, EVIL_RUN_NAME, EVIL_SCENE
from tests.results.servers import cli_server, thread_server

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("RAYMTL_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def chromium_path() -> str:
    path = os.environ.get("RAYMTL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail(
            f"Debian's chromium is not installed ({path} not found): the dashboard's browser test needs it. "
            "Install it with `.ci/install-browser` (apt-get install chromium), which `make test` runs.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("python playwright is not installed: `pip install -e '.[test]'`", pytrace=False)
    executable = chromium_path()
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, problems


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def expect(locator):
    # The page's CSP forbids eval, so waits go through locators, not wait_for_function strings.
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def test_the_dashboard_shows_the_runs_numbers_and_charts(browser, finished_run, summary):
    with cli_server([finished_run]) as (port, first_line):
        assert (
            first_line.strip()
            == f"dashboard of {finished_run.name} on http://127.0.0.1:{port}/ (Ctrl-C to stop)"
        )
        page, problems = open_page(browser, f"http://127.0.0.1:{port}/")
        try:
            s = summary["tasks"]
            for task in ("asc", "aec"):
                shown = page.text_content(f".ensemble-acc[data-task={task}]")
                assert shown == f"{100 * s[task]['ensemble_accuracy']:.2f} %"
                # Table I: the members' row, the run's figure beside the paper's
                rows = {r[0]: r for r in cells(page, f"#table1-{task}")}
                fine = rows[f"Fine-tuned model for {task.upper()}"]
                t1 = s[task]["table1"]["triple"]
                assert fine[1] == f"{100 * t1['mean']:.2f} ± {100 * t1['std']:.2f} (1/2)"
                assert fine[2] == {"asc": "79.44 ± 0.38", "aec": "70.79 ± 0.63"}[task]
                # Table II
                t2 = {r[0]: r for r in cells(page, f"#table2-{task}")}
                assert t2["ensemble of all members"][1:] == [
                    f"{100 * s[task]['ensemble_accuracy']:.2f} (4)",
                    {"asc": "84.50 (24)", "aec": "77.50 (24)"}[task],
                ]
                m = s[task]["member_accuracy"]
                assert (
                    t2["single members, mean ± std"][1] == f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f} (4)"
                )
            # the paper's claims: one row per claim, the run's verdict in words
            claims = cells(page, "#claims-table")
            assert len(claims) == 12
            assert claims[0][:3] == [
                "asc",
                "mtl > baseline-asc",
                "§III-C: MTL beats the single-task baseline",
            ]
            assert all(
                c[3].split(":")[0]
                in ("holds in this run", "contradicted by this run", "not supported by this run")
                for c in claims
            )
            # charts: one ensemble-size line per task, a learning curve per member, the 15 x 15 confusion
            assert page.locator("#size-charts svg.chart path.series").count() == 2
            assert (
                page.locator("#size-charts svg.chart rect.marker").count() == 3
            )  # paper: 24 and 8 (ASC), 24 (AEC)
            assert page.locator("#curve-charts [data-metric=loss] path.series").count() == 4
            assert page.locator("#curve-charts [data-metric=val_acc] path.series").count() == 4
            assert page.locator("#confusion rect.cell").count() == 15 * 15
            per_class = cells(page, "#per-class-table")
            assert [r[0] for r in per_class][:3] == ["beach", "bus", "cafe/restaurant"]
            assert page.text_content("#class-summary") == (
                f"ensemble: {100 * s['asc']['ensemble_accuracy']:.2f} % of {s['asc']['n_recordings']} "
                "test recordings correct"
            )
            # the overview matrix and the filterable members table
            assert page.locator(".run-card .matrix .state-done").count() == 8
            assert len(cells(page, "#member-rows")) == 8
            page.select_option("#member-task", "aec")
            page.fill("#member-filter", "quadruple")
            expect(page.locator("#member-rows tbody tr")).to_have_count(2)
            assert {r[1] for r in cells(page, "#member-rows")} == {
                "finetune-aec-d1-r1-quadruple",
                "finetune-aec-d2-r1-quadruple",
            }
            page.fill("#member-filter", "")
            page.select_option("#member-task", "")
            expect(page.locator("#member-rows tbody tr")).to_have_count(8)
            # another model's confusion: a single member, voted per recording
            page.select_option("#class-source", "finetune-asc-d2-r1-triple")
            expect(page.locator("#class-summary")).to_have_text(re.compile("^finetune-asc-d2-r1-triple: "))
            acc = s["asc"]["member_accuracy"]["per_member"]["finetune-asc-d2-r1-triple"]
            assert f"{100 * acc:.2f} %" in page.text_content("#class-summary")
            page.select_option("#class-source", "")
            expect(page.locator("#class-summary")).to_have_text(re.compile("^ensemble: "))
            path = screenshot(page, "dashboard.png")
            assert path.stat().st_size > 50_000
            assert problems == []
        finally:
            page.close()


def test_injected_names_stay_text_and_a_live_run_shows_its_progress(browser, evil_run, live_run):
    app = create_app([str(evil_run), str(live_run)], refresh_s=1)
    with thread_server(app) as port:
        page, problems = open_page(browser, f"http://127.0.0.1:{port}/")
        try:
            assert page.evaluate("window.__pwned") is None
            assert page.locator("main img, main script").count() == 0
            names = page.eval_on_selector_all(".run-card h3", "hs => hs.map(h => h.textContent)")
            assert names == [EVIL_RUN_NAME, "LIVE"]
            assert page.eval_on_selector("#class-run", "s => s.options[0].textContent") == EVIL_RUN_NAME
            assert cells(page, "#per-class-table")[0][0] == EVIL_SCENE
            page.select_option("#class-task", "aec")
            expect(page.locator("#per-class-table tbody tr").first.locator("td").first).to_have_text(
                EVIL_EVENT
            )
            assert cells(page, "#per-class-table")[0][0] == EVIL_EVENT
            heat = page.eval_on_selector_all("#confusion text.heat-label", "ts => ts.map(t => t.textContent)")
            assert EVIL_EVENT in heat
            live = page.locator(".run-card[data-run='1']")
            assert live.locator(".state-running").count() == 3
            assert live.locator(".state-failed").count() == 2 and live.locator(".state-missing").count() == 2
            assert live.locator(".state-running").first.text_content() in ("mtl-ic 4/6", "finetune-aec 0/4")
            assert page.text_content("#status").startswith("live: refreshing every 1")
            page.wait_for_timeout(2500)  # a refresh or two while live: still fine, still no script run
            assert page.evaluate("window.__pwned") is None
            screenshot(page, "dashboard-injection-and-live.png")
            assert problems == []
        finally:
            page.close()
