"""`raymtl` command line. Each verb parses its arguments and calls one library function.

Exit codes: 0 success; 2 bad arguments or unusable input (the message names the file and why,
no traceback); 1 a failure inside the run.
"""

from __future__ import annotations

import argparse
import logging
import sys

from raymtl.errors import UserError
from raymtl.results.cli import (
    add_parsers as add_results_parsers,  # `results`, `dashboard`
)
from raymtl.serving.cli import (
    add_parsers as add_serving_parsers,  # `predict`, `serve`, `export`
)
from raymtl.verbs import COMMANDS, Parser, command

log = logging.getLogger("raymtl")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"


def _grid_arguments(p: argparse.ArgumentParser) -> None:
    """How a grid (`ensemble`, `study`) places its Train runs."""
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="accelerators per member (default: 1 if the cluster has, or can autoscale to, nodes with "
        "the --accelerator resource, else 0)",
    )
    p.add_argument(
        "--accelerator",
        default="GPU",
        help="the resource name members request as their accelerator (default GPU; a custom resource "
        "of the accelerator nodes places members there and trains on CPU, e.g. a local dry run)",
    )
    p.add_argument(
        "--cpus-per-trial",
        type=float,
        default=None,
        help="per Train worker (default: 1; 0.5 on a CPU-only machine with fewer than 3 CPUs, "
        "so that two members train at once)",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="members at once (default: all on a cluster that can add nodes, else what fits now)",
    )
    p.add_argument("--max-failures", type=int, default=2, help="worker restarts per stage")
    _tracking_argument(p)


def _tracking_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help="an MLflow tracking server to log to as well, one run per trial (needs raymtl[tracking]; "
        "TensorBoard's RUN/tb is always written)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="raymtl", description=__doc__.splitlines()[0])
    p.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and Ray's own logs on the terminal"
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser(
        "synth", help="write synthetic ESC-50 and TUT 2017 datasets in their published layouts"
    )
    s.add_argument("--out", required=True, help="folder to create esc50/, tut2017-dev/, tut2017-eval/ in")
    s.add_argument(
        "--size", default="tiny", help="tiny (tests) | demo (laptop demo) | full (the real counts)"
    )
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
    t = sub.add_parser("train", help="one experiment on one division/repeat/variant, on Ray Train")
    t.add_argument(
        "--experiment",
        required=True,
        help="baseline-asc|baseline-aec|mtl|mtl-ic|finetune-asc|...; several, comma-separated, train back "
        "to back in one Train run (e.g. mtl-ic,finetune-asc,finetune-aec)",
    )
    t.add_argument("--division", type=int, required=True, help="1..4")
    t.add_argument("--repeat", type=int, default=1)
    t.add_argument("--variant", default="triple", help="triple (left, right, sum) | quadruple (+ diff)")
    t.add_argument("--features", required=True, help="FEATURES folder from `raymtl featurize`")
    t.add_argument("--out", required=True, help="RUN folder (trial folders go under RUN/trials/)")
    t.add_argument("--preset", default="paper", help="tiny | demo | paper")
    t.add_argument("--from", dest="stage1_from", default=None, help="model file to fine-tune from")
    t.add_argument("--gpu", choices=["auto", "yes", "no"], default="auto", help="train on a GPU")
    t.add_argument("--max-failures", type=int, default=2, help="worker restarts from the last checkpoint")
    _tracking_argument(t)

    e = sub.add_parser("ensemble", help="every member (division x repeat x variant, per task) under Ray Tune")
    e.add_argument("--features", required=True)
    e.add_argument("--out", required=True, help="RUN folder")
    e.add_argument("--preset", default="paper", help="tiny | demo | paper")
    e.add_argument("--divisions", default="1,2,3,4", help="comma-separated, e.g. 1,2")
    e.add_argument("--repeats", type=int, default=3, help="repeats 1..N")
    e.add_argument("--variants", default="triple,quadruple")
    e.add_argument("--tasks", default="asc,aec")
    _grid_arguments(e)

    st = sub.add_parser(
        "study",
        help="every experiment of Table I and §III-E (baselines, MTL, fine-tunes, direct, transfer) as "
        "one Tune grid, sharing the RUN with `raymtl ensemble`",
    )
    st.add_argument("--features", required=True)
    st.add_argument("--out", required=True, help="RUN folder")
    st.add_argument("--preset", default="paper", help="tiny | demo | paper")
    st.add_argument("--divisions", default="1,2,3,4", help="comma-separated, e.g. 1,2")
    st.add_argument("--repeats", type=int, default=3, help="repeats 1..N")
    st.add_argument("--variants", default="triple", help="triple (Table I's, default); add quadruple")
    st.add_argument(
        "--experiments",
        default=None,
        help="comma-separated subset (default: all ten); what they start from is added",
    )
    st.add_argument(
        "--estimate",
        choices=("h100", "a10g"),
        default=None,
        help="print the study's GPU-hours on this accelerator by arithmetic, and train nothing",
    )
    _grid_arguments(st)

    c = sub.add_parser(
        "cluster-config", help="publish an autoscaling config's worker node types to the cluster"
    )
    c.add_argument(
        "config",
        nargs="?",
        default="~/ray_bootstrap_config.yaml",
        help="cluster launcher config (default: the head's, as `ray up` writes it)",
    )

    r = sub.add_parser("reduce", help="fuse the members' stored scores into the ensemble result")
    r.add_argument("run", help="RUN folder")
    r.add_argument(
        "--allow-partial", action="store_true", help="fuse the members present when some are missing"
    )
    _tracking_argument(r)

    d = sub.add_parser("demo", help="the whole pipeline on synthetic data on local Ray")
    d.add_argument("--out", default="demo-out", help="folder for the demo's data, features and run")
    d.add_argument("--seed", type=int, default=0)
    add_results_parsers(sub)
    add_serving_parsers(sub)
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


@command("train")
def _train(args: argparse.Namespace) -> int:
    from raymtl.train.runner import TrialOptions, run_trials
    from raymtl.train.trial import TrialSpec, chain_run_name

    experiments = [e.strip() for e in args.experiment.split(",") if e.strip()]
    if not experiments or len(set(experiments)) != len(experiments):
        raise UserError(f"--experiment must name each experiment once, got {args.experiment!r}")
    specs = [TrialSpec(e, args.division, args.repeat, args.variant) for e in experiments]
    options = TrialOptions(
        use_gpu={"auto": None, "yes": True, "no": False}[args.gpu],
        max_failures=args.max_failures,
        stage1_from=args.stage1_from,
        mlflow_uri=args.mlflow_uri,
    )
    results = run_trials(specs, args.features, args.out, args.preset, options, name=chain_run_name(specs))
    for spec, outcome in zip(specs, results):
        accuracy = ", ".join(f"{t}: {a:.3f}" for t, a in outcome.result.test_accuracy.items())
        state = "already done" if outcome.already_done else f"done in {outcome.result.seconds:.0f} s"
        print(f"{spec.name}: {state}; test recording accuracy {accuracy}")
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{what} must be comma-separated integers, got {text!r}") from None


@command("ensemble")
def _ensemble(args: argparse.Namespace) -> int:
    from raymtl.ensemble.grid import run_ensemble
    from raymtl.ensemble.plan import EnsemblePlan

    plan = EnsemblePlan(
        divisions=_int_list(args.divisions, "divisions"),
        repeats=list(range(1, args.repeats + 1)),
        variants=[v for v in args.variants.split(",") if v],
        tasks=[t for t in args.tasks.split(",") if t],
    )
    report = run_ensemble(args.features, args.out, args.preset, plan, _grid_options(args))
    print(report.summary())
    if report.failed:
        return 1
    print(f"next: raymtl reduce {args.out}")
    return 0


def _grid_options(args: argparse.Namespace):
    from raymtl.ensemble.grid import GridOptions

    return GridOptions(
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        accelerator=args.accelerator,
        mlflow_uri=args.mlflow_uri,
    )


@command("study")
def _study(args: argparse.Namespace) -> int:
    from raymtl.ensemble.study import StudyPlan, parse_experiments, run_study

    plan = StudyPlan(
        divisions=_int_list(args.divisions, "divisions"),
        repeats=list(range(1, args.repeats + 1)),
        variants=[v for v in args.variants.split(",") if v],
        experiments=parse_experiments(args.experiments),
    )
    if args.estimate:
        print(_study_estimate(plan, args))
        return 0
    report = run_study(args.features, args.out, args.preset, plan, _grid_options(args))
    print(report.summary())
    if report.failed:
        return 1
    print(f"next: raymtl results {args.out}")
    return 0


def _study_estimate(plan, args: argparse.Namespace) -> str:
    from raymtl.config import get_preset
    from raymtl.ensemble.cost import ACCELERATORS, estimate
    from raymtl.train.trial import TrialSpec

    specs = [
        TrialSpec(e, c["division"], c["repeat"], c["variant"])
        for c in plan.chains()
        for e in c["experiments"]
    ]
    cost = estimate(specs, get_preset(args.preset), args.features)
    return "\n".join([f"study: {plan.describe()}", *cost.lines(ACCELERATORS[args.estimate])])


@command("cluster-config")
def _cluster_config(args: argparse.Namespace) -> int:
    import os

    import ray

    from raymtl.ensemble.capacity import publish

    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)  # a running cluster only
    groups = publish(os.path.expanduser(args.config))
    for g in groups:
        res = ", ".join(f"{v:g} {k}" for k, v in sorted(g.resources.items()))
        print(f"{g.name}: {res}; {g.min_count} to {'any number' if g.max_count == -1 else g.max_count} nodes")
    print(f"published {len(groups)} worker node type(s) to the cluster")
    return 0


@command("reduce")
def _reduce(args: argparse.Namespace) -> int:
    from raymtl.ensemble.reduce import reduce_run
    from raymtl.run.records import EnsembleSummary

    summary = EnsembleSummary.from_dict(
        reduce_run(args.run, allow_partial=args.allow_partial, mlflow_uri=args.mlflow_uri)
    )
    print(format_ensemble_summary(summary))
    return 0


def format_ensemble_summary(summary) -> str:
    """The reduce's table (`summary`: raymtl.run.records.EnsembleSummary)."""
    lines = [f"{'task':<5} {'members':>8} {'ensemble':>9} {'single (mean ± std)':>20} {'8-member mean':>14}"]
    for task, s in summary.tasks.items():
        m = s.member_accuracy
        single = f"{_pct(m.mean)} ± {_pct(m.std)}"
        eight = s.eight_member.get("mean")
        lines.append(
            f"{task:<5} {s.n_members:>8} {_pct(s.ensemble_accuracy):>9} {single:>20} {_pct(eight):>14}"
        )
        if s.missing:
            lines.append(f"      missing: {', '.join(s.missing)}")
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from raymtl.dashboard.server import command_line
    from raymtl.demo import run_demo

    result = run_demo(args.out, seed=args.seed)
    print(result.report)
    print(f"\n{result.closing}")
    print(f"\ndemo done in {result.seconds / 60:.1f} min")
    print(f"data: {result.data}\nfeatures: {result.features}\nrun: {result.run}")
    print(f"results: raymtl results {result.run}\ndashboard: {command_line([str(result.run)])}")
    return 0


# The verbs that run Ray Data, Train or Tune: unless --verbose, Ray's own logs go to their RUN's
# logs/ray.log (raymtl.ray_logs). featurize writes FEATURES, not a RUN: its Ray logs stay on the
# terminal from WARNING up. The other verbs leave Ray's logging as Ray sets it up.
RAY_LOG_VERBS = ("featurize", "train", "ensemble", "study", "demo")


def _route_ray_logs(args: argparse.Namespace) -> None:
    if args.command not in RAY_LOG_VERBS:
        return
    from raymtl.ray_logs import route_ray_logs

    run = None if args.command == "featurize" else args.out
    if args.command == "demo":
        from raymtl.demo import demo_paths

        run = str(demo_paths(args.out)[2])
    route_ray_logs(run, args.verbose, formatter=logging.Formatter(LOG_FORMAT, LOG_DATEFMT))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATEFMT
    )
    try:
        _route_ray_logs(args)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"raymtl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"raymtl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m raymtl.cli` runs this file as __main__, a second copy of the module; verbs that
    # other modules register go to the real `raymtl.cli`, so run that one.
    from raymtl.cli import main as _main

    sys.exit(_main())
