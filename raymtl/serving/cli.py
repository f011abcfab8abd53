"""The `predict`, `serve` and `export` verbs of the `raymtl` command (raymtl/cli.py calls
`add_parsers`). Each parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys

from raymtl.errors import UserError
from raymtl.verbs import command

MODEL_HELP = (
    "mtl: one stage-1 multitask network, both heads in one pass (default); "
    "ensemble: the fine-tuned members of each task fused as `raymtl reduce` does"
)


def add_parsers(sub) -> None:
    p = sub.add_parser("predict", help="the scene and the events of audio files, with a trained RUN")
    p.add_argument("run", help="RUN folder (a finished `raymtl ensemble`, or at least one mtl-ic trial)")
    p.add_argument(
        "audio", nargs="+", help="audio files (WAV, FLAC, Ogg; any rate, mono or stereo, any length)"
    )
    p.add_argument("--model", default="mtl", choices=["mtl", "ensemble"], help=MODEL_HELP)
    p.add_argument("--format", default="table", choices=["table", "json", "csv"], dest="fmt")
    p.add_argument("--top-k", type=int, default=3, help="events to list per file and segment")
    p.add_argument(
        "--mtl-target", default="asc", choices=["asc", "aec"], help="which stage-1 network (--model mtl)"
    )
    p.add_argument(
        "--trial", default=None, help="the mtl-ic trial to use (--model mtl; default: best validating)"
    )

    s = sub.add_parser("serve", help="an HTTP endpoint on Ray Serve that answers like `raymtl predict`")
    s.add_argument("run", help="RUN folder")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model", default="mtl", choices=["mtl", "ensemble"], help=MODEL_HELP)
    s.add_argument("--top-k", type=int, default=3, help="default events per answer (?top_k= overrides)")
    s.add_argument("--mtl-target", default="asc", choices=["asc", "aec"])
    s.add_argument("--trial", default=None)
    s.add_argument("--max-upload-mb", type=float, default=32.0, help="larger uploads get 413")
    s.add_argument("--max-duration-s", type=float, default=120.0, help="longer audio gets 422")
    s.add_argument("--max-batch-size", type=int, default=8, help="requests per batched model call")
    s.add_argument("--batch-wait-s", type=float, default=0.01, help="how long a batch waits to fill")
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument("--num-cpus", type=float, default=1.0, help="CPUs (and torch threads) per replica")

    e = sub.add_parser(
        "export", help="one trained network as TorchScript or ONNX, feature settings beside it"
    )
    e.add_argument("run", help="RUN folder")
    e.add_argument("--format", required=True, choices=["torchscript", "onnx"], dest="fmt")
    e.add_argument(
        "--task",
        required=True,
        choices=["asc", "aec", "both"],
        help="both: the multitask network of `predict --model mtl`; asc/aec: the best fine-tuned member",
    )
    e.add_argument("--out", required=True, help="FILE to write; the settings go to FILE.json")
    e.add_argument("--trial", default=None, help="the trial to export instead of the best validating one")
    e.add_argument(
        "--mtl-target", default="asc", choices=["asc", "aec"], help="which stage-1 network (--task both)"
    )
    e.add_argument("--overwrite", action="store_true", help="replace FILE and FILE.json")


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from raymtl.serving.format import render
    from raymtl.serving.predict import n_failed, predict_files

    doc = predict_files(
        args.run, args.audio, model=args.model, top_k=args.top_k, mtl_target=args.mtl_target, trial=args.trial
    )
    text = render(doc, args.fmt)
    print(text, end="" if text.endswith("\n") else "\n")
    failed = n_failed(doc)
    if failed:
        # Unusable input: exit 2, as everywhere in raymtl; every other file was answered.
        print(f"raymtl predict: {failed} of {len(doc['files'])} file(s) could not be used", file=sys.stderr)
        return 2
    return 0


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from raymtl.serving.serve import ServeOptions, serve_forever

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    options = ServeOptions(
        model=args.model,
        mtl_target=args.mtl_target,
        trial=args.trial,
        top_k=args.top_k,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_duration_s=args.max_duration_s,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_s,
        replicas=args.replicas,
        num_cpus=args.num_cpus,
    )
    return serve_forever(args.run, args.host, args.port, options)


@command("export")
def _export(args: argparse.Namespace) -> int:
    from raymtl.serving.export import export_model, sidecar_path

    settings = export_model(
        args.run,
        args.fmt,
        args.task,
        args.out,
        trial=args.trial,
        mtl_target=args.mtl_target,
        overwrite=args.overwrite,
    )
    outputs = ", ".join(f"{o['name']} {o['shape'][1]} classes" for o in settings["outputs"])
    print(
        f"exported {settings['what']} of {settings['source']['trial']} to {args.out} "
        f"({args.fmt}; outputs {outputs}); feature settings in {sidecar_path(args.out)}"
    )
    return 0
