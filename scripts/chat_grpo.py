"""Reinforcement learning of the SFT model with GRPO (kata 22): `make posttrain-grpo`, or
`python scripts/chat_grpo.py --help`.

Each step asks the policy a few tasks about the train names, samples a group of replies to
each, scores every reply with the task's checker (1 right, 0 wrong), and pushes up the
replies that beat their group's mean (kata 22's clipped objective, an optional k3 KL penalty
to the frozen SFT model, and the aggregation asked for: grpo, dr_grpo or dapo).

    python scripts/chat_grpo.py                    # from runs/posttrain/sft/model.pt
    python scripts/chat_grpo.py --group 16 --kl 0.02 --aggregation dr_grpo --overwrite

Writes <out>/grpo/: model.pt, metrics.csv, reward.png (the reward curve), eval.json.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import posttrain as pt  # scripts/posttrain.py (imports scripts/train.py: harness.use() first)
from grpo import AGGREGATIONS, grpo_step
from tasks import make_tasks

import harness


def parse_args(argv=None):
    p = pt.stage_parser(__doc__)
    p.add_argument("--prompts", type=int, help="tasks per step (a group of replies to each)")
    p.add_argument("--group", dest="group_size", type=int, help="replies sampled per task")
    p.add_argument("--temperature", type=float, help="sampling temperature of the replies")
    p.add_argument(
        "--kl",
        dest="kl_beta",
        type=float,
        help="weight of the k3 KL penalty to the SFT model (0: none)",
    )
    p.add_argument("--clip", dest="clip_eps", type=float, help="PPO's clip range epsilon")
    p.add_argument("--aggregation", choices=AGGREGATIONS, help="how token terms are averaged")
    p.add_argument("--inner-steps", type=int, help="optimizer steps on each sampled batch")
    return p.parse_args(argv)


def plot_rewards(metrics: Path, png: Path) -> None:
    """The mean reward of each step's replies, and its running mean over 10 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    reward = [float(r["reward"]) for r in rows]
    smooth = [
        sum(reward[max(0, i - 9) : i + 1]) / len(reward[max(0, i - 9) : i + 1])
        for i in range(len(reward))
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, reward, color="tab:blue", alpha=0.3, label="one step's replies")
    ax.plot(steps, smooth, color="tab:blue", label="running mean (10 steps)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward (fraction of replies right)")
    ax.set_title(f"GRPO reward on the train tasks: {png.parent}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings, runtime, out_dir, model, tok, started_from, clock = pt.start(args, "grpo")
    reference = pt.frozen_copy(model)
    prompts = settings["prompts"]
    tasks = make_tasks(pt.names()[0], settings["steps"] * prompts, seed=settings["seed"] + 2000)
    optimizer = pt.optimizer_for(model, settings["lr"])
    generator = pt.sampler(settings, runtime.device)
    model.train()

    def step(i: int) -> dict:
        return grpo_step(
            model,
            reference,
            optimizer,
            tok,
            tasks[i * prompts : (i + 1) * prompts],
            settings["group_size"],
            max_new_tokens=settings["max_new_tokens"],
            temperature=settings["temperature"],
            clip_eps=settings["clip_eps"],
            kl_beta=settings["kl_beta"],
            aggregation=settings["aggregation"],
            inner_steps=settings["inner_steps"],
            generator=generator,
        )

    done = pt.run_steps("grpo", out_dir, settings, optimizer, step)
    pt.save_stage(out_dir, "grpo", model, tok, settings, started_from)
    if done:
        plot_rewards(out_dir / "metrics.csv", out_dir / "reward.png")
    pt.finish_stage("grpo", out_dir, model, tok, settings, clock, done)
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
