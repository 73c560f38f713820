"""Kata 21: direct preference optimization (DPO, Rafailov et al. 2023). Teach the SFT model to
prefer a correct reply over a wrong one it really produced, against a frozen copy of itself.

Read katas/21_dpo/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=21` to check your work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401  (you will need it)
from sft import (  # noqa: F401  (kata 20)
    IGNORE_INDEX,
    ChatTokenizer,
    Messages,
    collate,
    generate_reply,
    render_chat,
)
from tasks import Task, is_correct  # noqa: F401  (kata 20's given task code)
from torch import Tensor

LESSON = "see katas/21_dpo/README.md"

# ---------------------------------------------------------------- log-probabilities


def token_logprobs(model, x: Tensor, y: Tensor) -> Tensor:
    """(B, T): log pi(y[b, t] | x[b, :t+1]) at every label position, 0.0 where y is
    IGNORE_INDEX (the prompt, the markers, the padding).

    ValueError unless x and y are (batch, time) tensors of one shape.
    """
    raise NotImplementedError(f"token_logprobs: log_softmax of the logits, gathered at the "
                              f"labels, 0 where y == IGNORE_INDEX; {LESSON}")


def sequence_logprobs(model, x: Tensor, y: Tensor) -> Tensor:
    """(B,): log pi(reply | prompt), the SUM of the reply's token log-probabilities (the
    assistant positions only)."""
    raise NotImplementedError(f"sequence_logprobs: token_logprobs summed over time; {LESSON}")


# ---------------------------------------------------------------- the loss


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """Each argument (B,): sequence log-probs. Returns (mean loss, chosen_rewards,
    rejected_rewards), the rewards beta * (logp - ref_logp), detached.

    loss = -log sigmoid(beta * ((pc - rc) - (pr - rr))), averaged over the batch, computed
    stably. ValueError unless beta > 0 and the four tensors are (B,) of one shape.
    """
    raise NotImplementedError(f"dpo_loss: -logsigmoid of the reward difference; {LESSON}")


def reward_accuracy(chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
    """Fraction of pairs whose chosen reward is strictly greater (a tie is not a win)."""
    raise NotImplementedError(f"reward_accuracy: mean of chosen > rejected; {LESSON}")


def reward_margin(chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
    """Mean of chosen - rejected rewards."""
    raise NotImplementedError(f"reward_margin: mean of chosen - rejected; {LESSON}")


# ---------------------------------------------------------------- data


def preference_pairs(model, tok: ChatTokenizer, tasks: list[Task], samples: int = 4,
                     temperature: float = 1.0, generator: torch.Generator | None = None,
                     max_new_tokens: int = 32) -> list[tuple[Messages, str, str]]:
    """(prompt messages, chosen, rejected) for each task the model gets wrong: the prompt is
    [("user", task.prompt)], chosen the task's answer, rejected the first wrong reply among
    up to `samples` replies the model samples itself (kata 20's generate_reply with
    temperature, generator and max_new_tokens). Tasks it answers right every time give no
    pair. ValueError unless samples is a positive int.
    """
    raise NotImplementedError(f"preference_pairs: sample replies until one is wrong; {LESSON}")


def dpo_batch(tok: ChatTokenizer, pairs: list[tuple[Messages, str, str]],
              block_size: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_chosen, y_chosen, x_rejected, y_rejected): each prompt with its chosen (rejected)
    reply as the assistant message, through kata 20's render_chat and collate. ValueError
    for no pairs."""
    raise NotImplementedError(f"dpo_batch: render_chat + collate, chosen and rejected; {LESSON}")


# ---------------------------------------------------------------- training


def dpo_step(policy, reference, optimizer, batch: tuple[Tensor, Tensor, Tensor, Tensor],
             beta: float = 0.1, grad_clip: float | None = 1.0) -> dict[str, float]:
    """One optimizer step of the policy on a dpo_batch: sequence log-probs of both replies
    under the policy (with gradients) and the reference (without: it is frozen), dpo_loss,
    backward, clip the policy's gradient norm to grad_clip (None: no clipping), step.

    Returns {"loss", "reward_accuracy", "reward_margin"} as plain floats.
    """
    raise NotImplementedError(f"dpo_step: one step of dpo_loss, reference frozen; {LESSON}")
