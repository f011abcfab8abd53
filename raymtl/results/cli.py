"""`raymtl results` and `raymtl dashboard`: thin verbs over the results store and the web app.

raymtl/cli.py calls `add_parsers(sub)` from `build_parser`; the commands register themselves
with `raymtl.cli.command`.
"""

from __future__ import annotations

import argparse

from raymtl.errors import UserError
from raymtl.verbs import command

FORMATS = ("table", "json", "csv")


def add_parsers(sub) -> None:
    r = sub.add_parser(
        "results", help="Tables I and II of one or more runs beside the paper's, or SQL over them"
    )
    r.add_argument("runs", nargs="*", metavar="RUN", help="RUN folders (local path or s3://...)")
    r.add_argument("--format", choices=FORMATS, default="table", help="table (default) | json | csv")
    r.add_argument(
        "--sql", default=None, metavar="QUERY", help="a DuckDB query over the tables (see --schema)"
    )
    r.add_argument(
        "--variant",
        choices=("triple", "quadruple", "all"),
        default="triple",
        help="Table I's variant: triple (the paper's, default) | quadruple | all",
    )
    r.add_argument("--schema", action="store_true", help="list the tables and their columns")

    d = sub.add_parser("dashboard", help="a local web dashboard of one or more runs (read-only)")
    d.add_argument("runs", nargs="+", metavar="RUN", help="RUN folders; the page shows them side by side")
    d.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    d.add_argument("--port", type=int, default=8000)
    d.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between rereads of the runs while one is live (default 5)",
    )


@command("results")
def _results(args: argparse.Namespace) -> int:
    from raymtl.results import format as F
    from raymtl.results import tables
    from raymtl.results.catalog import TABLES
    from raymtl.results.store import ResultsStore

    if args.schema:
        for table in TABLES.values():
            print(f"{table.name}: {table.rows}")
            for c in table.columns:
                print(f"    {c.name}" + (f": {c.doc}" if c.doc else ""))
        return 0
    if not args.runs:
        raise UserError("give at least one RUN folder (or --schema)")
    store = ResultsStore.load(args.runs)
    try:
        if args.sql is not None:
            table = store.query(args.sql)
            columns, rows = table.column_names, list(zip(*(c.to_pylist() for c in table.columns)))
            render = {"table": F.rows_text, "json": F.rows_json, "csv": F.rows_csv}[args.format]
            print(render(columns, rows))
            return 0
        doc = tables.report(store, args.variant)
        render = {"table": F.report_text, "json": F.to_json, "csv": F.report_csv}[args.format]
        print(render(doc))
        return 0
    finally:
        store.close()


@command("dashboard")
def _dashboard(args: argparse.Namespace) -> int:
    from raymtl.dashboard.server import serve

    serve(args.runs, host=args.host, port=args.port, refresh_s=args.refresh)
    return 0
