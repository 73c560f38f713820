"""Kata 22: GRPO, group relative policy optimization (DeepSeekMath, the RL of DeepSeek-R1).

Read katas/22_grpo/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=22` to check your work. Start with the math (group_advantages, k3_kl,
grpo_loss), which needs no model; then sample_group, rewards, grpo_batch and grpo_step.
"""

from __future__ import annotations

import torch
from dpo import token_logprobs  # noqa: F401  (kata 21: log pi of every label token)
from modern import new_cache  # noqa: F401  (kata 16: a KV cache of batch_size rows)
from sampling import check_sampling_args, sample_next  # noqa: F401  (kata 11)
from sft import IGNORE_INDEX, collate, prompt_for_reply, render_chat  # noqa: F401  (kata 20)
from tasks import is_correct  # noqa: F401  (kata 20's given task code: the verifier)
from torch import Tensor

LESSON = "see katas/22_grpo/README.md"

AGGREGATIONS = ("grpo", "dr_grpo", "dapo")


# ---------------------------------------------------------------- sampling and rewards


@torch.no_grad()
def sample_group(model, tok, messages, group_size: int, max_new_tokens: int = 16,
                 temperature: float = 1.0, generator: torch.Generator | None = None) -> list[str]:
    """group_size replies to one conversation, sampled together as one batch.

    Every row starts from prompt_for_reply(tok, messages); one KV cache of group_size rows
    (new_cache) holds the keys and values, so each step feeds one new token per row. A reply
    is ordinary characters, then <|end|>: the other special tokens get logit -inf and are
    never drawn. A row is done at its own first <|end|> (not part of its reply), after
    max_new_tokens tokens, or when the context is full (block_size, unless the model rolls);
    what a done row draws is dropped, and the batch stops when every row is done.
    Draws come from `generator`; temperature 0 is greedy. The model is in eval mode
    meanwhile and back in its mode after. ValueError for group_size < 1.
    """
    raise NotImplementedError(f"sample_group: G rows, one cache, stop each row at its own "
                              f"<|end|>; {LESSON}")


def rewards(task, replies: list[str]) -> Tensor:
    """The verifier's score of each reply: a float tensor (G,), 1.0 where is_correct, else 0.0."""
    raise NotImplementedError(f"rewards: 1.0 where is_correct(task, reply), else 0.0; {LESSON}")


# ---------------------------------------------------------------- the math of GRPO


def group_advantages(rewards: Tensor, eps: float = 1e-6, scale: bool = True) -> Tensor:
    """Group-relative advantages: A = (r - mean(r)) / (std(r) + eps) within each group.

    rewards: (G,) for one group or (n_groups, G), one group per row. std is the population
    standard deviation (divide by G, unbiased=False). A group whose rewards are all equal gets
    zero advantage (the eps keeps 0 / 0 away). scale=False keeps only r - mean (Dr. GRPO).
    ValueError, naming rewards and its shape, for a tensor that is not 1-D or 2-D.
    """
    raise NotImplementedError(f"group_advantages: (r - mean) / (std + eps) per group; {LESSON}")


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """The k3 estimate of KL(pi || pi_ref) per sampled token: r - log r - 1 with
    r = pi_ref / pi = exp(ref_logp - logp). Never negative; zero where the two agree."""
    raise NotImplementedError(f"k3_kl: exp(ref_logp - logp) - (ref_logp - logp) - 1; {LESSON}")


def grpo_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor | None, advantages: Tensor,
              mask: Tensor, clip_eps: float = 0.2, kl_beta: float = 0.0,
              aggregation: str = "grpo") -> Tensor:
    """The clipped GRPO objective, negated so that an optimizer minimizes it.

    logp, old_logp, ref_logp, mask: (B, T), one row per response; advantages: (B,).
    Per token: min(rho * A, clip(rho, 1 - clip_eps, 1 + clip_eps) * A) - kl_beta * k3, with
    rho = exp(logp - old_logp). old_logp, ref_logp and advantages are constants (detached
    here); ref_logp may be None when kl_beta is 0. Only tokens where mask is true count:
      "grpo"    mean over each response's tokens, then mean over responses
      "dr_grpo" sum over all tokens / (B * T), T the mask's width (no per-response length)
      "dapo"    sum over all tokens / the number of tokens in the batch
    ValueError, naming aggregation and its value, for another aggregation.
    """
    raise NotImplementedError(f"grpo_loss: -aggregate(min(rho*A, clip(rho)*A) - beta*k3); "
                              f"{LESSON}")


# ---------------------------------------------------------------- one step of GRPO


def grpo_batch(tok, messages_list, replies: list[str]) -> tuple[Tensor, Tensor]:
    """(x, y) for the replies, through kata 20: each conversation with its reply appended as
    the assistant's message, rendered and collated. y is IGNORE_INDEX except on the reply's
    tokens and its <|end|>: the only tokens the loss sees. ValueError unless there is one
    conversation per reply."""
    raise NotImplementedError(f"grpo_batch: render_chat each conversation + reply, then "
                              f"collate; {LESSON}")


def grpo_step(policy, reference, optimizer, tok, tasks, group_size: int,
              max_new_tokens: int = 16, temperature: float = 1.0, clip_eps: float = 0.2,
              kl_beta: float = 0.0, aggregation: str = "grpo", scale: bool = True,
              eps: float = 1e-6, inner_steps: int = 1, grad_clip: float | None = 1.0,
              generator: torch.Generator | None = None) -> dict:
    """One round of GRPO on `tasks`: a group of replies per task, rewards, advantages, then
    `inner_steps` optimizer steps of grpo_loss on that batch. The prompt of a task is the
    conversation [("user", task.prompt)]. The reference (only used when kl_beta > 0) runs
    without gradients and is never updated.

    Returns floats: "loss" (the last step's), "reward" (mean over every reply), "solved"
    (fraction of groups with at least one correct reply), "no_signal" (fraction of groups
    whose rewards were all equal), "kl" (mean k3 over the reply tokens before the update;
    0.0 without kl_beta).
    """
    raise NotImplementedError(f"grpo_step: sample, reward, advantages, old log-probs, then "
                              f"optimizer steps on grpo_loss; {LESSON}")
