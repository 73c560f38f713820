"""Supervised fine-tuning of the base model into an assistant (kata 20): `make posttrain-sft`,
or `python scripts/chat_sft.py --help`.

Each step is a batch of fresh tasks about the train names ("reverse olivia" -> "aivilo",
"count a in isabella" -> "2"), rendered with kata 20's chat template; the loss is on the
assistant's tokens only. Deliberately short (configs/posttrain.json): the model learns the
format and part of the tasks, leaving room for GRPO to show what reinforcement adds.

    python scripts/chat_sft.py                    # from runs/posttrain/base/best.pt
    python scripts/chat_sft.py --steps 300 --lr 1e-3 --overwrite

Writes <out>/sft/: model.pt, metrics.csv, eval.json (held-out accuracy per task kind).
"""

from __future__ import annotations

import sys

import posttrain as pt  # scripts/posttrain.py (imports scripts/train.py: harness.use() first)
from sft import collate, render_chat, sft_step
from tasks import make_tasks

import harness


def conversation(tok, task):
    """A task and its answer as kata 20's (ids, mask): the loss sees the answer only."""
    return render_chat(tok, [("user", task.prompt), ("assistant", task.answer)])


def main(argv=None) -> int:
    args = pt.stage_parser(__doc__).parse_args(argv)
    settings, runtime, out_dir, model, tok, started_from, clock = pt.start(args, "sft")
    batch = settings["batch"]
    tasks = make_tasks(pt.names()[0], settings["steps"] * batch, seed=settings["seed"])
    optimizer = pt.optimizer_for(model, settings["lr"])
    block_size = model.config.block_size
    model.train()

    def step(i: int) -> dict:
        x, y = collate(
            tok, [conversation(tok, t) for t in tasks[i * batch : (i + 1) * batch]], block_size
        )
        return {"loss": sft_step(model, optimizer, x.to(runtime.device), y.to(runtime.device))}

    done = pt.run_steps("sft", out_dir, settings, optimizer, step)
    pt.save_stage(out_dir, "sft", model, tok, settings, started_from)
    pt.finish_stage("sft", out_dir, model, tok, settings, clock, done)
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
