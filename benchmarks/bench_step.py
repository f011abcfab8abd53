"""One training step of the networks, in the contiguous (NCHW) and the channels-last memory
format, measured in one run on this machine's CPU (or `--device cuda`).

The training loop (`raymtl/train/loop.py`) trains in channels-last everywhere; this shows why
on a CPU: oneDNN's convolution and batch-norm kernels are faster on NHWC. One thread by default,
as a Ray Train worker with one CPU gets (`--threads` to change)."""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def step_time(kind: str, preset: str, channels_last: bool, device: str, batch: int, steps: int) -> float:
    """Median seconds of one forward + backward + Adam step (after warm-up)."""
    from raymtl.config import get_preset
    from raymtl.models import build_model
    from raymtl.models.networks import trainable_parameters

    cfg = get_preset(preset).model
    net = build_model(kind, cfg, {"asc": 15, "aec": 50}, task="asc").to(device)
    x = torch.randn(batch, 1, 128, 128, device=device)
    y = {
        "asc": torch.randint(0, 15, (batch,), device=device),
        "aec": torch.randint(0, 50, (batch,), device=device),
    }
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(trainable_parameters(net), lr=1e-3)
    net.train()
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        out = net(x)
        loss = sum(F.cross_entropy(out[task], y[task]) for task in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help="its network width (tiny, demo, paper)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {}
    for kind in ("mtl-ic", "fusion"):
        nchw = step_time(kind, args.preset, False, args.device, args.batch, args.steps)
        nhwc = step_time(kind, args.preset, True, args.device, args.batch, args.steps)
        out[kind] = nchw / nhwc
        print(
            f"step {kind} ({args.preset}, batch {args.batch}, {args.threads} thread(s), {args.device}): "
            f"NCHW {args.batch / nchw:.0f} patches/s, channels-last {args.batch / nhwc:.0f} patches/s: "
            f"ratio {nchw / nhwc:.2f}"
        )
    return out


if __name__ == "__main__":
    main()
