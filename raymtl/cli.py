"""`raymtl` command line. Each verb parses its arguments and calls one library function.

Exit codes: 0 success; 2 bad arguments or unusable input (the message names the file and why,
no traceback); 1 a failure inside the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from raymtl.errors import UserError

log = logging.getLogger("raymtl")

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        _COMMANDS[name] = fn
        return fn

    return register


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raymtl", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("synth", help="write synthetic ESC-50 and TUT 2017 datasets in their published layouts")
    s.add_argument("--out", required=True, help="folder to create esc50/, tut2017-dev/, tut2017-eval/ in")
    s.add_argument("--size", default="tiny", help="tiny (tests) | demo (laptop demo) | full (the real counts)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace datasets already in --out")

    f = sub.add_parser("featurize", help="log-mel patches of both datasets to Parquet, on Ray Data")
    f.add_argument("--esc", required=True, help="ESC-50 folder (meta/esc50.csv, audio/)")
    f.add_argument("--tut-dev", required=True, help="TUT Acoustic Scenes 2017 development folder")
    f.add_argument("--tut-eval", required=True, help="TUT Acoustic Scenes 2017 evaluation folder")
    f.add_argument("--out", required=True, help="FEATURES folder to create (local path or s3://...)")
    f.add_argument("--esc-subset", default="all", choices=["all", "esc10"], help="esc10: the 10-class subset")
    f.add_argument("--strict", action="store_true", help="stop at the first bad file (exit 2)")
    f.add_argument("--overwrite", action="store_true", help="replace a finished FEATURES folder")
    f.add_argument("--workers", type=int, default=None, help="featurizer processes (default: all CPUs)")
    d = sub.add_parser("demo", help="the whole pipeline on synthetic data on local Ray")
    d.add_argument("--out", default="demo-out", help="folder for the demo's data, features and run")
    d.add_argument("--seed", type=int, default=0)
    return p


@command("synth")
def _synth(args: argparse.Namespace) -> int:
    from raymtl.data.synth import generate

    summary = generate(args.out, size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(summary.describe() if hasattr(summary, "describe") else summary)
    return 0


@command("featurize")
def _featurize(args: argparse.Namespace) -> int:
    from raymtl.data.featurize import featurize

    report = featurize(
        args.esc,
        args.tut_dev,
        args.tut_eval,
        args.out,
        esc_subset=args.esc_subset,
        strict=args.strict,
        overwrite=args.overwrite,
        concurrency=args.workers,
    )
    print(report.summary())
    if report.rejects:
        print(f"{report.rejects} file(s) rejected: see {args.out}/rejects.csv")
    return 0


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from raymtl.demo import run_demo

    result = run_demo(args.out, seed=args.seed)
    print(result.summary)
    print(f"data: {result.data}\nfeatures: {result.features}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return _COMMANDS[args.command](args)
    except UserError as e:
        print(f"raymtl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"raymtl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
