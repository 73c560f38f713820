"""Tokens per second of kata 16's modern model against kata 09's GPT-2 at the same parameter
count, training and generation, side by side in one process.

    python bench/throughput.py                       # the CPU preset (make train's model)
    python bench/throughput.py --preset medium --rounds 5
    python bench/throughput.py --device cuda --preset medium --compile   # bf16 autocast

Both models come from the same preset (configs/<preset>.json, as `make train` builds them:
scripts/models.py, ARCH=gpt2 and ARCH=modern), on the reference solutions unless
GPT_KATAS_IMPL says otherwise. The rounds are interleaved (GPT-2, modern, GPT-2, modern, ...)
so that whatever else the machine is doing slows both alike; the figure is the median over
the rounds, and the ratio modern / GPT-2 is printed for each:
  - train: --steps steps of forward, backward, clipping and fused AdamW on random batches of
    the preset's batch size and block size (tokens / s);
  - generate: --new-tokens tokens for one prompt of one token, each model's own generate with
    its KV cache (kata 11's for GPT-2, kata 16's static cache for the modern model).
Results go to runs/bench/throughput.json (bench/results/ with RECORD=1), with the machine's
core count and load average. Nothing here asserts: it measures.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import harness  # noqa: E402

IMPL = harness.program_impl()
harness.use(IMPL)  # must come before the kata imports below

import models  # noqa: E402  (scripts/models.py: the gpt2 and modern models of a preset)
import torch  # noqa: E402
from run_settings import load_preset  # noqa: E402  (scripts/run_settings.py: configs/<preset>.json)

RESULTS = harness.results_dir() / "throughput.json"  # bench/results/ only with RECORD=1


def build(arch: str, preset: str, vocab_size: int, device: str, compile_: bool):
    model_fields, train_fields = load_preset(preset)
    model_fields["vocab_size"] = vocab_size
    torch.manual_seed(0)
    model = models.build_model(models.model_fields(arch, model_fields)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step_model = torch.compile(model) if compile_ else model
    return model, step_model, optimizer, train_fields["batch_size"]


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.device(device).type == "cuda")


def train_steps(entry: dict, steps: int, device: str, gen: torch.Generator) -> float:
    """Tokens per second of `steps` optimizer steps."""
    model, step_model, optimizer, batch = (
        entry["model"],
        entry["step_model"],
        entry["optimizer"],
        entry["batch"],
    )
    block, vocab = model.config.block_size, model.config.vocab_size
    xs = torch.randint(vocab, (steps, batch, block + 1), generator=gen).to(device)
    pairs = [(x[:, :-1].contiguous(), x[:, 1:].contiguous()) for x in xs]
    model.train()
    sync(device)
    start = time.perf_counter()
    for x, y in pairs:
        with autocast(device):
            _, loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return steps * batch * block / (time.perf_counter() - start)


def generate_tokens(entry: dict, new_tokens: int, device: str) -> float:
    """Tokens per second of generating new_tokens for one one-token prompt, with a KV cache."""
    model = entry["model"]
    prompt = torch.zeros((1, 1), dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    cache = {} if entry["arch"] == "modern" else {"use_cache": True}
    sync(device)
    start = time.perf_counter()
    with autocast(device):
        models.generate(model, prompt, new_tokens, top_k=40, generator=gen, **cache)
    sync(device)
    return new_tokens / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--preset", default="cpu", help="a file in configs/ (default cpu: make train's CPU model)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--steps", type=int, default=20, help="training steps per round")
    p.add_argument("--new-tokens", type=int, default=200, help="generated tokens per round")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile both models' training step"
    )
    p.add_argument("--vocab-size", type=int, default=65, help="65: tiny Shakespeare's chars")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda":
        torch.set_float32_matmul_precision("high")

    entries = {}
    for arch in models.ARCHS:
        model, step_model, optimizer, batch = build(
            arch, args.preset, args.vocab_size, args.device, args.compile
        )
        entries[arch] = {
            "arch": arch,
            "model": model,
            "step_model": step_model,
            "optimizer": optimizer,
            "batch": batch,
        }
        print(
            f"{arch}: {model.num_params():,} parameters ({models.describe(model)}"
            f"batch {batch}, block {model.config.block_size})",
            flush=True,
        )

    gen = torch.Generator().manual_seed(0)
    for entry in entries.values():  # warm-up (and compilation): not timed
        train_steps(entry, 3, args.device, gen)
        generate_tokens(entry, 10, args.device)

    load_before = os.getloadavg()
    rounds = {arch: {"train": [], "generate": []} for arch in entries}
    for r in range(args.rounds):
        for arch, entry in entries.items():  # interleaved: gpt2, modern, gpt2, modern, ...
            rounds[arch]["train"].append(train_steps(entry, args.steps, args.device, gen))
            rounds[arch]["generate"].append(generate_tokens(entry, args.new_tokens, args.device))
        print(
            f"round {r + 1}: train "
            + ", ".join(f"{a} {rounds[a]['train'][-1]:,.0f}" for a in entries)
            + " tok/s; generate "
            + ", ".join(f"{a} {rounds[a]['generate'][-1]:,.0f}" for a in entries)
            + " tok/s",
            flush=True,
        )
    load_after = os.getloadavg()

    result = {
        "preset": args.preset,
        "device": args.device,
        "compile": args.compile,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "new_tokens_per_round": args.new_tokens,
    }
    for arch, entry in entries.items():
        result[arch] = {
            "params": entry["model"].num_params(),
            **{
                f"{what}_tokens_per_s": round(statistics.median(values))
                for what, values in rounds[arch].items()
            },
            "rounds": {what: [round(v) for v in values] for what, values in rounds[arch].items()},
        }
    for what in ("train", "generate"):
        pairs = [m / g for m, g in zip(rounds["modern"][what], rounds["gpt2"][what])]
        result[f"{what}_ratio_modern_over_gpt2"] = round(statistics.median(pairs), 3)
        print(
            f"{what}: modern {result['modern'][f'{what}_tokens_per_s']:,} tok/s, gpt2 "
            f"{result['gpt2'][f'{what}_tokens_per_s']:,} tok/s; modern / gpt2 = "
            f"{result[f'{what}_ratio_modern_over_gpt2']:.3f} (median of the rounds' ratios)"
        )
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "impl": IMPL,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    result["date"] = time.strftime("%Y-%m-%d", time.gmtime())

    key = f"{args.preset} {args.device}{' compile' if args.compile else ''}"
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"written to {RESULTS.relative_to(ROOT)} [{key}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
