"""Benchmark the modern track's drop-in parts against the GPT-2 parts they replace, on the CPU.

    python bench/parts.py                 # under a minute on an idle 2-core machine
    python bench/parts.py --threads 2 --repeats 30
    python bench/parts.py --device cuda --tokens 65536 --compile --out bench/results/parts_gpu.json

Forward + backward time of one layer on a (tokens, n_embd) float32 activation, median over
--repeats runs after a warm-up, with the parameters each one holds:
  - norms: nn.LayerNorm (with and without bias) against kata 13's RMSNorm (the reference
    solution unless GPT_KATAS_IMPL says otherwise) and torch.nn.RMSNorm;
  - MLPs: kata 09's GELU MLP (4 n_embd wide) against kata 14's SwiGLU (swiglu_hidden wide),
    with its gate through F.silu (the reference's fast form) and through the kata's own silu;
  - RoPE: kata 13's apply_rope (each pair turned as a complex number, the reference's fast
    form) against the same turn written as the 2-D rotation of each pair (four products),
    on the activation cut into heads of 64 at positions 0 .. tokens - 1.
--compile adds the kata's RMSNorm and SwiGLU through torch.compile (one fused kernel where
the compiler can make one).
Results go to bench/results/parts.json. Nothing here asserts: it measures, on whatever else
the machine is doing at the time (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

IMPL = harness.program_impl()
harness.use(IMPL)  # must come before the kata imports below

from rope import RMSNorm, apply_rope, rope_angles  # noqa: E402
from swiglu import SwiGLU, silu, swiglu_hidden  # noqa: E402

RESULTS = harness.results_dir() / "parts.json"  # bench/results/ only with RECORD=1


class GeluMLP(nn.Sequential):
    """Kata 09's MLP without biases: n_embd -> 4 n_embd -> GELU -> n_embd."""

    def __init__(self, n_embd: int):
        super().__init__(
            nn.Linear(n_embd, 4 * n_embd, bias=False),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd, bias=False),
        )


class SwiGLUOwnSilu(SwiGLU):
    """Kata 14's SwiGLU with the gate through silu(x) = x * sigmoid(x): three kernels, not one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(silu(self.w1(x)) * self.w3(x)))


def rotate_pairs(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """RoPE as kata 13's lesson first writes it: [[cos, -sin], [sin, cos]] on every pair."""
    work = torch.promote_types(x.dtype, torch.float32)
    angles = rope_angles(positions, x.shape[-1], dtype=work)
    cos, sin = angles.cos(), angles.sin()
    a, b = x.to(work).unflatten(-1, (x.shape[-1] // 2, 2)).unbind(-1)
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).to(x.dtype)


class Rope(nn.Module):
    """A RoPE function as a layer: (tokens, C) cut into C // 64 heads, positions 0 .. tokens-1."""

    def __init__(self, turn):
        super().__init__()
        self.turn = turn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = x.unflatten(-1, (-1, 64)).transpose(0, 1)  # (C // 64, tokens, 64)
        positions = torch.arange(x.shape[0], device=x.device)
        return self.turn(heads, positions).transpose(0, 1).flatten(-2)


def time_layer(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of one forward + backward of `layer` on x."""
    grad = torch.randn_like(x)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for i in range(repeats + 3):  # the first 3 warm up (and compile)
        x.grad = None
        layer.zero_grad(set_to_none=True)
        sync()
        start = time.perf_counter()
        layer(x).backward(grad)
        sync()
        if i >= 3:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embd", type=int, default=384, help="width (default 384, medium)")
    parser.add_argument(
        "--tokens",
        type=int,
        default=4096,
        help="rows of the activation (default 4096 = 16 sequences of 256)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="of the activation and the layers (default float32)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time the kata layers through torch.compile"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA GPU that torch can see")
    for name in ("n_embd", "tokens", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_embd % 64:
        parser.error("--n-embd must be a multiple of 64 (RoPE is timed on heads of 64)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C = args.n_embd
    dtype = getattr(torch, args.dtype)
    x = torch.randn(args.tokens, C, device=args.device, dtype=dtype, requires_grad=True)
    load_before = os.getloadavg()

    layers = {
        "norm": {
            "LayerNorm (bias)": nn.LayerNorm(C),
            "LayerNorm (no bias)": nn.LayerNorm(C, bias=False),
            "RMSNorm (kata 13)": RMSNorm(C),
            "torch.nn.RMSNorm": nn.RMSNorm(C, eps=1e-5),
        },
        "mlp": {
            "GELU MLP (kata 09)": GeluMLP(C),
            f"SwiGLU (kata 14, hidden {swiglu_hidden(C)})": SwiGLU(C),
            "SwiGLU, gate through x * sigmoid(x)": SwiGLUOwnSilu(C),
        },
        "rope": {
            "RoPE (kata 13: pairs as complex numbers)": Rope(apply_rope),
            "RoPE as 2-D rotations (four products)": Rope(rotate_pairs),
        },
    }
    if args.compile:
        layers["norm"]["RMSNorm (kata 13), compiled"] = torch.compile(RMSNorm(C))
        layers["mlp"]["SwiGLU (kata 14), compiled"] = torch.compile(SwiGLU(C))
    figures: dict = {
        "n_embd": C,
        "tokens": args.tokens,
        "threads": args.threads,
        "repeats": args.repeats,
        "device": args.device,
        "dtype": args.dtype,
    }
    for kind, group in layers.items():
        print(
            f"{kind}s: forward + backward of a ({args.tokens}, {C}) {args.dtype} activation "
            f"on {args.device}"
        )
        figures[kind] = {}
        for name, layer in group.items():
            layer.to(device=args.device, dtype=dtype)
            ms = time_layer(layer, x, args.repeats)
            params = sum(p.numel() for p in layer.parameters())
            figures[kind][name] = {"ms": round(ms, 3), "params": params}
            print(f"  {name:<42} {ms:8.2f} ms   {params:>10,} parameters")

    figures["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "impl": IMPL,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    if x.is_cuda:
        figures["machine"]["gpu"] = torch.cuda.get_device_name(x.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
