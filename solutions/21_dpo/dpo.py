"""Kata 21: direct preference optimization (DPO, Rafailov et al. 2023). Teach the SFT model to
prefer a correct reply over a wrong one it really produced, against a frozen copy of itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sft import IGNORE_INDEX, ChatTokenizer, Messages, collate, generate_reply, render_chat
from tasks import Task, is_correct
from torch import Tensor

# ---------------------------------------------------------------- log-probabilities


def token_logprobs(model, x: Tensor, y: Tensor) -> Tensor:
    """(B, T): log pi(y[b, t] | x[b, :t+1]) at every label position, 0.0 where y is
    IGNORE_INDEX (the prompt, the markers, the padding)."""
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (batch, time) of one shape, got x {tuple(x.shape)} "
                         f"and y {tuple(y.shape)}")
    logits, _ = model(x)
    logp = F.log_softmax(logits, dim=-1)  # (B, T, V): log-probabilities, not probabilities
    keep = y != IGNORE_INDEX
    # gather cannot look up -100: read token 0 there, then zero those positions out.
    picked = logp.gather(-1, y.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(~keep, 0.0)


def sequence_logprobs(model, x: Tensor, y: Tensor) -> Tensor:
    """(B,): log pi(reply | prompt), the SUM of the reply's token log-probabilities (the
    assistant positions only; not a mean, which would favour long replies less)."""
    return token_logprobs(model, x, y).sum(dim=-1)


# ---------------------------------------------------------------- the loss


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """Each argument (B,): sequence log-probs. Returns (mean loss, chosen_rewards,
    rejected_rewards), the rewards beta * (logp - ref_logp), detached.

    loss = -log sigmoid(beta * ((pc - rc) - (pr - rr))), averaged over the batch.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"the four log-prob tensors must be (B,) of one shape, got {shapes}")
    chosen_rewards = beta * (policy_chosen - ref_chosen)  # the implicit reward of each reply
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    # logsigmoid is computed stably: log(sigmoid(z)) is log(0) = -inf for z around -1e3.
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, chosen_rewards.detach(), rejected_rewards.detach()


def reward_accuracy(chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
    """Fraction of pairs whose chosen reward is strictly greater (a tie is not a win)."""
    return (chosen_rewards > rejected_rewards).double().mean().item()


def reward_margin(chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
    """Mean of chosen - rejected rewards."""
    return (chosen_rewards - rejected_rewards).double().mean().item()


# ---------------------------------------------------------------- data


def preference_pairs(model, tok: ChatTokenizer, tasks: list[Task], samples: int = 4,
                     temperature: float = 1.0, generator: torch.Generator | None = None,
                     max_new_tokens: int = 32) -> list[tuple[Messages, str, str]]:
    """(prompt messages, chosen, rejected) for each task the model gets wrong: chosen is the
    task's answer, rejected the first wrong reply among `samples` the model samples itself.
    Tasks it answers right every time give no pair (there is nothing to prefer)."""
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    pairs = []
    for task in tasks:
        messages = [("user", task.prompt)]
        for _ in range(samples):
            reply = generate_reply(model, tok, messages, max_new_tokens=max_new_tokens,
                                   temperature=temperature, generator=generator)
            if not is_correct(task, reply):
                pairs.append((messages, task.answer, reply))
                break
    return pairs


def dpo_batch(tok: ChatTokenizer, pairs: list[tuple[Messages, str, str]],
              block_size: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_chosen, y_chosen, x_rejected, y_rejected): each conversation with its reply rendered
    and collated by kata 20, so that only the reply's tokens carry labels."""
    if not pairs:
        raise ValueError("pairs is empty: there is nothing to batch")
    chosen = [render_chat(tok, [*messages, ("assistant", good)]) for messages, good, _ in pairs]
    rejected = [render_chat(tok, [*messages, ("assistant", bad)]) for messages, _, bad in pairs]
    return (*collate(tok, chosen, block_size), *collate(tok, rejected, block_size))


# ---------------------------------------------------------------- training


def dpo_step(policy, reference, optimizer, batch: tuple[Tensor, Tensor, Tensor, Tensor],
             beta: float = 0.1, grad_clip: float | None = 1.0) -> dict[str, float]:
    """One optimizer step of the policy on a dpo_batch. The reference is only read: its
    log-probs are computed without a graph, so it gets no gradient and never changes."""
    x_chosen, y_chosen, x_rejected, y_rejected = batch
    policy_chosen = sequence_logprobs(policy, x_chosen, y_chosen)
    policy_rejected = sequence_logprobs(policy, x_rejected, y_rejected)
    with torch.no_grad():
        ref_chosen = sequence_logprobs(reference, x_chosen, y_chosen)
        ref_rejected = sequence_logprobs(reference, x_rejected, y_rejected)
    loss, chosen_rewards, rejected_rewards = dpo_loss(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return {"loss": loss.item(),
            "reward_accuracy": reward_accuracy(chosen_rewards, rejected_rewards),
            "reward_margin": reward_margin(chosen_rewards, rejected_rewards)}
