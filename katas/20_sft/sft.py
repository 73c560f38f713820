"""Kata 20: supervised fine-tuning with a chat template.

Read katas/20_sft/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=20` to check your work. tasks.py next to this file is given code: read it, keep it.
"""

from __future__ import annotations

import torch
from tasks import ALPHABET
from torch import Tensor

LESSON = "see katas/20_sft/README.md"

SPECIALS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index: these labels get no loss
ROLES = ("system", "user", "assistant")

Messages = list[tuple[str, str]]  # (role, text), role in ROLES


class ChatTokenizer:
    """Characters of `chars` get ids 0..len(chars)-1 in the order given; the SPECIALS get the
    next ids, in SPECIALS' order. Ordinary text never produces a special id.

    Attributes: chars, vocab_size (len(chars) + len(SPECIALS)), special (a dict from each
    special's name to its id), pad_id, end_id, assistant_id.
    ValueError, naming chars, when chars is empty, not a str, or repeats a character.
    """

    def __init__(self, chars: str = ALPHABET):
        raise NotImplementedError(f"ChatTokenizer.__init__: char ids, then the specials; "
                                  f"{LESSON}")

    def encode(self, text: str) -> list[int]:
        """Ordinary text -> ids, one per character. ValueError naming the first character
        outside chars and its position. The text "<|end|>" is seven characters (when they are
        all in chars), never the special token."""
        raise NotImplementedError(f"ChatTokenizer.encode: one id per character; {LESSON}")

    def decode(self, ids) -> str:
        """Ids (a list or a tensor) -> text; a special id decodes to its name.
        ValueError for an id outside the vocabulary."""
        raise NotImplementedError(f"ChatTokenizer.decode: ids back to text; {LESSON}")

    def to_dict(self) -> dict:
        """What from_dict needs to rebuild this tokenizer (plain str/list values, for JSON)."""
        raise NotImplementedError(f"ChatTokenizer.to_dict: the chars and the specials; {LESSON}")

    @classmethod
    def from_dict(cls, d: dict) -> ChatTokenizer:
        raise NotImplementedError(f"ChatTokenizer.from_dict: the inverse of to_dict; {LESSON}")


def render_chat(tok: ChatTokenizer, messages: Messages) -> tuple[list[int], list[bool]]:
    """Each message -> <|role|> text <|end|>. Returns the ids and a mask of the same length,
    True exactly on the assistant's text and its closing <|end|>; False on its <|assistant|>
    marker and on every system and user token. ValueError for an unknown role."""
    raise NotImplementedError(f"render_chat: the template and its loss mask; {LESSON}")


def prompt_for_reply(tok: ChatTokenizer, messages: Messages) -> list[int]:
    """render_chat's ids, then <|assistant|>: what generation continues from."""
    raise NotImplementedError(f"prompt_for_reply: the conversation and the assistant "
                              f"marker; {LESSON}")


def collate(tok: ChatTokenizer, examples: list[tuple[list[int], list[bool]]],
            block_size: int | None = None) -> tuple[Tensor, Tensor]:
    """(ids, mask) examples -> inputs x and labels y, both (B, T) torch.long, T = longest - 1.

    x[b] = ids[:-1], right-padded with pad_id; y[b] = ids[1:] where mask[1:] is True, else
    IGNORE_INDEX, and IGNORE_INDEX on the padding. ValueError for an empty batch, an example
    whose ids and mask differ in length or that has fewer than 2 ids, and (when block_size
    is given) an example that needs more than block_size positions.
    """
    raise NotImplementedError(f"collate: shift, mask, pad; {LESSON}")


def sft_loss(model, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy over every label that is not IGNORE_INDEX in the whole batch
    (per-token normalization). ValueError when every label is IGNORE_INDEX."""
    raise NotImplementedError(f"sft_loss: cross-entropy over the assistant labels; {LESSON}")


def sft_step(model, optimizer, x: Tensor, y: Tensor, grad_clip: float | None = 1.0) -> float:
    """One optimizer step on sft_loss, the gradient norm clipped to grad_clip (None: no
    clipping); returns the loss before the step as a float."""
    raise NotImplementedError(f"sft_step: zero_grad, loss, backward, clip, step; {LESSON}")


@torch.no_grad()
def generate_reply(model, tok: ChatTokenizer, messages: Messages, max_new_tokens: int = 32,
                   temperature: float = 0.0, top_k: int | None = None,
                   generator: torch.Generator | None = None) -> str:
    """The assistant's next reply to `messages`: prompt_for_reply, then one token at a time
    with a KV cache (kata 16's new_cache(model, 1)) and kata 11's sample_next.

    Stops at <|end|> (not part of the reply), at any other special token, after
    max_new_tokens, or when the context reaches block_size (unless the model rolls).
    temperature 0 is greedy (argmax). The model is in eval mode meanwhile and back in its
    mode after. ValueError for a bad sampling setting, max_new_tokens or a conversation
    longer than block_size.
    """
    raise NotImplementedError(f"generate_reply: sample until <|end|>; {LESSON}")
