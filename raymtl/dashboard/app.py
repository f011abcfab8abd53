"""The dashboard's web app: one static page, its bundled assets, and a read-only JSON API.

Security (docs/method.md §9, docs/serving.md):
- read-only: GET (and HEAD) only; nothing a request says is written anywhere;
- no file paths from requests: the runs are the ones given on the command line, chosen in a
  URL by index (`0`) or name (`RUN`); assets are served from a fixed table loaded at start-up,
  so `/static/../x` or `/../../etc/passwd` can only miss (404);
- everything shown is escaped: the API answers JSON only, and the page inserts text with
  `textContent` (never `innerHTML`), so run and class names stay text;
- response headers: a strict Content-Security-Policy (own scripts and styles only, no inline
  code, no other origin), nosniff, no framing, no referrer, no caching of API answers; bound to
  a loopback address, it also checks the Host header (a DNS-rebinding page cannot read it).

Routes: `/`, `/static/<asset>`, and under `/api/`: `overview`, `tables?variant=`,
`ensemble-size`, `runs/<run>/members`, `runs/<run>/curves`, `runs/<run>/confusion/<task>[?trial=]`,
`schema`. Anything else is 404.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from importlib import resources
from typing import Any, Literal, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from raymtl.config import TASKS
from raymtl.results import claims, tables
from raymtl.results.catalog import TABLES
from raymtl.results.confusion import NotFound, confusion
from raymtl.results.format import plain
from raymtl.results.runs import FinishedTrialCache, run_refs
from raymtl.results.status import STALE_AFTER_S
from raymtl.results.store import ResultsStore

log = logging.getLogger(__name__)

# The page and its assets: the only files the app ever serves (name -> content type).
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


class RunsData:
    """The results store of the runs given, reread at most every `refresh_s` when asked for.

    Finished trials are read once (FinishedTrialCache); a reread that fails (a run folder gone
    for a moment on NFS) keeps the last good store and says so in the log."""

    def __init__(self, runs: Sequence[str], refresh_s: float = 5.0, stale_after_s: float = STALE_AFTER_S):
        self.refs = run_refs(list(runs))
        self.refresh_s = refresh_s
        self.stale_after_s = stale_after_s
        self._cache = FinishedTrialCache()
        self._lock = threading.Lock()
        self._store = self._load()  # a RUN that is not a run fails here, at start-up
        self._loaded = time.monotonic()

    def _load(self) -> ResultsStore:
        return ResultsStore.load(self.refs, self._cache, self.stale_after_s)

    def store(self) -> ResultsStore:
        with self._lock:
            if time.monotonic() - self._loaded >= self.refresh_s:
                try:
                    self._store = self._load()  # requests holding the old one finish with it
                except Exception as e:  # noqa: BLE001 - keep serving the last good snapshot
                    log.warning("rereading the runs failed (%s); showing the last good read", e)
                self._loaded = time.monotonic()
            return self._store


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(plain(data), allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _run_name(store: ResultsStore, run: str) -> str:
    """A run by index or by name, among those given on the command line; else 404."""
    names = store.run_names()
    if run.isdigit() and int(run) < len(names):
        return names[int(run)]
    if run in names:
        return run
    raise NotFound(f"no run {run!r}; runs: {', '.join(names)} (or 0..{len(names) - 1})")


def _load_assets() -> dict[str, bytes]:
    folder = resources.files("raymtl.dashboard") / "static"
    return {name: (folder / name).read_bytes() for name in ASSETS}


def create_app(
    runs: Sequence[str],
    *,
    refresh_s: float = 5.0,
    loopback: bool = True,
    stale_after_s: float = STALE_AFTER_S,
) -> FastAPI:
    data = RunsData(runs, refresh_s, stale_after_s)
    assets = _load_assets()
    app = FastAPI(title="raymtl dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.data = data
    if loopback:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return _json({"detail": str(exc)}, 404)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _json({"detail": exc.detail}, exc.status_code)

    def asset(name: str) -> Response:
        if name not in assets:
            raise NotFound("no such asset")
        return Response(assets[name], media_type=ASSETS[name])

    @app.get("/")
    def index() -> Response:
        return asset("index.html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        return asset(name)

    @app.get("/api/overview")
    def overview() -> Response:
        store = data.store()
        progress = tables.progress(store)
        runs = []
        for snap in store.snapshots:
            plan = snap.files.plan
            runs.append(
                {
                    "index": snap.ref.index,
                    "name": snap.ref.name,
                    "uri": snap.ref.uri,
                    "preset": snap.files.manifest.preset_name if snap.files.manifest else None,
                    "plan": {**plan.to_dict(), "source": snap.files.plan_source},
                    **{k: progress[snap.ref.name][k] for k in ("reduced", "live", "members")},
                    "ensemble": store.rows(
                        "select task, ensemble_accuracy, n_members from ensemble where run = ?",
                        [snap.ref.name],
                    ),
                }
            )
        return _json(
            {
                "runs": runs,
                "live": any(r["live"] for r in runs),
                "refresh_s": data.refresh_s,
                "read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(store.snapshots[0].loaded)),
            }
        )

    @app.get("/api/tables")
    def tables_(variant: Literal["triple", "quadruple", "all"] = "triple") -> Response:
        store = data.store()
        return _json(
            {
                "runs": store.run_names(),
                "table1": tables.table1(store, variant),
                "table2": tables.table2(store),
                "claims": claims.claims(store, variant),
            }
        )

    @app.get("/api/ensemble-size")
    def ensemble_size() -> Response:
        store = data.store()
        rows = store.rows("select * from ensemble_size order by run, task, groups")
        out = {
            t: {r: [x for x in rows if x["run"] == r and x["task"] == t] for r in store.run_names()}
            for t in TASKS
        }
        paper = tables.table2(store)["tasks"]
        points = {
            t: [{"members": p["paper"]["members"], "accuracy": p["paper"]["ensemble"]}]
            + (
                [{"members": 8, "accuracy": p["paper"]["eight_member_mean"]}]
                if p["paper"]["eight_member_mean"] is not None
                else []
            )
            for t, p in paper.items()
        }
        return _json({"tasks": out, "paper": points})

    @app.get("/api/runs/{run}/members")
    def members(run: str) -> Response:
        store = data.store()
        name = _run_name(store, run)
        rows = store.rows("select * exclude (run) from members where run = ?", [name])
        trials = store.rows("select * exclude (run) from trials where run = ?", [name])
        return _json({"run": name, "members": rows, "trials": trials})

    @app.get("/api/runs/{run}/curves")
    def curves(run: str) -> Response:
        store = data.store()
        name = _run_name(store, run)
        rows = store.rows(
            "select trial, experiment, division, repeat, variant, task, epoch, loss, train_acc, val_acc, "
            "live from metrics where run = ? order by task, trial, epoch",
            [name],
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            series = out.setdefault(r["task"], {}).setdefault(
                r["trial"],
                {
                    "trial": r["trial"],
                    "experiment": r["experiment"],
                    "division": r["division"],
                    "repeat": r["repeat"],
                    "variant": r["variant"],
                    "live": r["live"],
                    "epochs": [],
                },
            )
            series["epochs"].append({k: r[k] for k in ("epoch", "loss", "train_acc", "val_acc")})
        return _json({"run": name, "tasks": {t: list(s.values()) for t, s in out.items()}})

    @app.get("/api/runs/{run}/confusion/{task}")
    def confusion_(run: str, task: str, trial: str | None = None) -> Response:
        store = data.store()
        name = _run_name(store, run)
        if task not in TASKS:
            raise NotFound(f"no task {task!r}; tasks: {', '.join(TASKS)}")
        if trial is not None:
            known = {
                r["trial"]
                for r in store.rows("select trial from results where run = ? and task = ?", [name, task])
            }
            if trial not in known:
                raise NotFound(f"no finished {task} trial {trial!r} in run {name!r}")
        return _json(confusion(store, name, task, trial))

    @app.get("/api/schema")
    def schema() -> Response:
        return _json({name: {"rows": t.rows, "columns": t.docs} for name, t in TABLES.items()})

    return app
