"""Direct preference optimization of the SFT model (kata 21): `make posttrain-dpo`, or
`python scripts/chat_dpo.py --help`.

The pairs come from the SFT model itself: for tasks about the train names it samples a few
replies, and where one is wrong, (prompt, the right answer, that wrong reply) is a pair.
Then DPO pushes the policy to prefer each right answer over its wrong one, measured against
a frozen copy of the SFT model (the reference).

    python scripts/chat_dpo.py                     # from runs/posttrain/sft/model.pt
    python scripts/chat_dpo.py --beta 0.2 --pairs 512 --overwrite

Writes <out>/dpo/: model.pt, metrics.csv, eval.json (held-out accuracy per task kind).
"""

from __future__ import annotations

import sys

import posttrain as pt  # scripts/posttrain.py (imports scripts/train.py: harness.use() first)
from dpo import dpo_batch, dpo_step, preference_pairs
from guards import refuse
from tasks import make_tasks

import harness


def parse_args(argv=None):
    p = pt.stage_parser(__doc__)
    p.add_argument(
        "--beta",
        type=float,
        help="DPO's beta: how far from the reference the "
        "implicit reward lets the policy go (0.1 typical)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        help="train tasks the SFT model is asked (a pair for each one it gets wrong)",
    )
    p.add_argument("--samples", type=int, help="replies sampled per task to find a wrong one")
    p.add_argument("--temperature", type=float, help="sampling temperature of those replies")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings, runtime, out_dir, model, tok, started_from, clock = pt.start(args, "dpo")
    reference = pt.frozen_copy(model)
    tasks = make_tasks(pt.names()[0], settings["pairs"], seed=settings["seed"] + 1000)
    pairs = preference_pairs(
        model,
        tok,
        tasks,
        settings["samples"],
        settings["temperature"],
        pt.sampler(settings, runtime.device),
        settings["max_new_tokens"],
    )
    if not pairs:
        refuse(
            f"the SFT model got all {len(tasks)} tasks right in {settings['samples']} tries: "
            "there are no wrong replies to prefer against (give more PAIRS, or skip DPO)"
        )
    sampling_s = clock.seconds()["train_s"]
    print(
        f"{len(pairs)} preference pairs from {len(tasks)} tasks ({sampling_s:.0f}s of sampling)",
        flush=True,
    )
    optimizer = pt.optimizer_for(model, settings["lr"])
    batch, block_size = settings["batch"], model.config.block_size
    model.train()

    def step(i: int) -> dict:
        start = i * batch % len(pairs)
        chosen = (pairs + pairs)[start : start + min(batch, len(pairs))]
        tensors = [t.to(runtime.device) for t in dpo_batch(tok, chosen, block_size)]
        return dpo_step(model, reference, optimizer, tensors, settings["beta"])

    done = pt.run_steps("dpo", out_dir, settings, optimizer, step)
    pt.save_stage(out_dir, "dpo", model, tok, settings, started_from)
    pt.finish_stage(
        "dpo",
        out_dir,
        model,
        tok,
        settings,
        clock,
        done,
        {"pairs": len(pairs), "sampling_s": round(sampling_s, 2)},
    )
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
