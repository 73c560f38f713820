"""Kata 22: GRPO, group relative policy optimization (DeepSeekMath, the RL of DeepSeek-R1).

Sample a group of replies per prompt, score each with a program, and push up the replies that
beat their group's average, with PPO's clipped ratio and an optional k3 KL penalty.
"""

from __future__ import annotations

import torch
from dpo import token_logprobs
from modern import new_cache
from sampling import check_sampling_args, sample_next
from sft import IGNORE_INDEX, collate, prompt_for_reply, render_chat
from tasks import is_correct
from torch import Tensor

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
    check_sampling_args(temperature, None, None)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    ids = prompt_for_reply(tok, messages)
    block_size, rolling = model.config.block_size, model.config.rolling
    if len(ids) > block_size and not rolling:
        raise ValueError(f"the conversation is {len(ids)} tokens with the assistant marker, "
                         f"more than block_size={block_size}")
    device = next(model.parameters()).device
    feed = torch.tensor([ids] * group_size, device=device)  # the same prompt in every row
    # A reply is ordinary characters, then <|end|>: the template's other specials (markers,
    # padding) cannot be part of one, so they are never drawn. Every token drawn is then a
    # token grpo_batch trains on; a special that ended a reply but is not in the batch
    # would never be pushed down, and could soak up the probability the wrong replies lose.
    banned = torch.zeros(tok.vocab_size, dtype=torch.bool, device=device)
    banned[[i for i in tok.special.values() if i != tok.end_id]] = True
    replies: list[list[int]] = [[] for _ in range(group_size)]
    done = [False] * group_size

    was_training = model.training
    model.eval()
    try:
        cache = new_cache(model, group_size)
        for _ in range(max_new_tokens):
            if not rolling and len(cache) + feed.size(1) > block_size:
                break  # the context is full
            logits, _ = model(feed, kv_cache=cache)
            logits = logits[:, -1, :].masked_fill(banned, float("-inf"))
            feed = sample_next(logits, temperature, generator=generator)  # (G, 1)
            for row, token in enumerate(feed[:, 0].tolist()):
                if done[row]:
                    continue  # this row already ended: whatever it samples now is dropped
                if token == tok.end_id:
                    done[row] = True
                else:
                    replies[row].append(token)
            if all(done):
                break
    finally:
        model.train(was_training)
    return [tok.decode(ids) for ids in replies]


def rewards(task, replies: list[str]) -> Tensor:
    """The verifier's score of each reply: a float tensor (G,), 1.0 where is_correct, else 0.0."""
    return torch.tensor([1.0 if is_correct(task, reply) else 0.0 for reply in replies])


# ---------------------------------------------------------------- the math of GRPO


def group_advantages(rewards: Tensor, eps: float = 1e-6, scale: bool = True) -> Tensor:
    """Group-relative advantages: A = (r - mean(r)) / (std(r) + eps) within each group.

    rewards: (G,) for one group or (n_groups, G), one group per row. std is the population
    standard deviation (divide by G, unbiased=False). A group whose rewards are all equal gets
    zero advantage (the eps keeps 0 / 0 away). scale=False keeps only r - mean (Dr. GRPO).
    ValueError, naming rewards and its shape, for a tensor that is not 1-D or 2-D.
    """
    if not isinstance(rewards, Tensor) or rewards.dim() not in (1, 2) or rewards.size(-1) < 1:
        shape = tuple(rewards.shape) if isinstance(rewards, Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a tensor (G,) or (n_groups, G), got {shape}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    centered = rewards - rewards.mean(dim=-1, keepdim=True)
    if not scale:
        return centered
    return centered / (rewards.std(dim=-1, unbiased=False, keepdim=True) + eps)


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """The k3 estimate of KL(pi || pi_ref) per sampled token: r - log r - 1 with
    r = pi_ref / pi = exp(ref_logp - logp). Never negative; zero where the two agree."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


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
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if not clip_eps >= 0:
        raise ValueError(f"clip_eps must be >= 0, got {clip_eps!r}")
    if logp.dim() != 2 or old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(f"logp, old_logp and mask must share one (B, T) shape, got "
                         f"{tuple(logp.shape)}, {tuple(old_logp.shape)}, {tuple(mask.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be (B,) = ({logp.size(0)},), "
                         f"got {tuple(advantages.shape)}")

    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach().unsqueeze(1)  # one advantage for every token of its response
    objective = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    if kl_beta:
        if ref_logp is None or ref_logp.shape != logp.shape:
            raise ValueError(f"kl_beta={kl_beta} needs ref_logp of shape {tuple(logp.shape)}")
        objective = objective - kl_beta * k3_kl(logp, ref_logp.detach())

    keep = mask.bool()
    objective = torch.where(keep, objective, 0.0)  # prompt and padding carry nothing
    tokens = keep.sum(dim=1).to(logp.dtype)  # response lengths
    if aggregation == "grpo":
        total = (objective.sum(dim=1) / tokens.clamp(min=1)).mean()
    elif aggregation == "dr_grpo":
        total = objective.sum() / objective.numel()
    else:  # "dapo"
        total = objective.sum() / tokens.sum().clamp(min=1)
    return -total


# ---------------------------------------------------------------- one step of GRPO


def grpo_batch(tok, messages_list, replies: list[str]) -> tuple[Tensor, Tensor]:
    """(x, y) for the replies, through kata 20: each conversation with its reply appended as
    the assistant's message, rendered and collated. y is IGNORE_INDEX except on the reply's
    tokens and its <|end|>: the only tokens the loss sees. ValueError unless there is one
    conversation per reply."""
    if len(messages_list) != len(replies) or not replies:
        raise ValueError(f"need one conversation per reply, got {len(messages_list)} "
                         f"conversations and {len(replies)} replies")
    examples = [render_chat(tok, list(messages) + [("assistant", reply)])
                for messages, reply in zip(messages_list, replies)]
    return collate(tok, examples)


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
    if not tasks:
        raise ValueError("tasks is empty: GRPO needs at least one prompt")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
        raise ValueError(f"inner_steps must be an int >= 1, got {inner_steps!r}")
    conversations, replies, scores = [], [], []
    for task in tasks:
        messages = [("user", task.prompt)]
        group = sample_group(policy, tok, messages, group_size, max_new_tokens, temperature,
                             generator)
        conversations += [messages] * group_size
        replies += group
        scores.append(rewards(task, group))
    scores = torch.stack(scores)  # (n_tasks, G)
    device = next(policy.parameters()).device
    advantages = group_advantages(scores, eps=eps, scale=scale).reshape(-1).to(device)

    x, y = grpo_batch(tok, conversations, replies)
    x, y = x.to(device), y.to(device)
    mask = y != IGNORE_INDEX
    with torch.no_grad():  # the policy that sampled: fixed for all inner steps
        old_logp = token_logprobs(policy, x, y)
        ref_logp = token_logprobs(reference, x, y) if kl_beta else None

    for _ in range(inner_steps):
        logp = token_logprobs(policy, x, y)
        loss = grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps, kl_beta,
                         aggregation)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
        optimizer.step()

    kl = 0.0
    if ref_logp is not None:
        kl = (k3_kl(old_logp, ref_logp)[mask]).mean().item()
    equal = scores.max(dim=1).values == scores.min(dim=1).values
    return {"loss": loss.item(), "reward": scores.mean().item(),
            "solved": (scores.max(dim=1).values > 0).float().mean().item(),
            "no_signal": equal.float().mean().item(), "kl": kl}
