"""Kata 20: supervised fine-tuning with a chat template.

A conversation becomes one token sequence, <|role|> text <|end|> per message, and the model
learns only the assistant's part: every other label is IGNORE_INDEX, so the cross-entropy
averages over the assistant tokens of the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from modern import new_cache
from sampling import check_sampling_args, sample_next
from tasks import ALPHABET
from torch import Tensor

SPECIALS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index: these labels get no loss
ROLES = ("system", "user", "assistant")

Messages = list[tuple[str, str]]  # (role, text), role in ROLES


class ChatTokenizer:
    """Characters of `chars` get ids 0..len(chars)-1 in the order given; the SPECIALS get the
    next ids, in SPECIALS' order. Ordinary text never produces a special id."""

    def __init__(self, chars: str = ALPHABET):
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"chars must be a non-empty string, got chars={chars!r}")
        repeated = sorted({c for c in chars if chars.count(c) > 1})
        if repeated:
            raise ValueError(f"chars must not repeat a character, got {repeated} more than once "
                             f"in chars={chars!r}")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.special = {name: len(chars) + i for i, name in enumerate(SPECIALS)}
        self.itos = dict(enumerate(chars)) | {i: name for name, i in self.special.items()}
        self.vocab_size = len(chars) + len(SPECIALS)
        self.pad_id = self.special["<|pad|>"]
        self.end_id = self.special["<|end|>"]
        self.assistant_id = self.special["<|assistant|>"]

    def encode(self, text: str) -> list[int]:
        """Ordinary text -> ids, one per character. The text "<|end|>" is seven characters
        (when they are all in chars), never the special token."""
        for position, c in enumerate(text):
            if c not in self.stoi:
                raise ValueError(f"character {c!r} at position {position} of text={text!r} is "
                                 f"not in the tokenizer's characters {self.chars!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        """Ids (a list or a tensor) -> text; a special id decodes to its name."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        for i in ids:
            if i not in self.itos:
                raise ValueError(f"id {i!r} is not in the vocabulary 0..{self.vocab_size - 1}")
        return "".join(self.itos[i] for i in ids)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "specials": list(SPECIALS)}

    @classmethod
    def from_dict(cls, d: dict) -> ChatTokenizer:
        if list(d.get("specials", SPECIALS)) != list(SPECIALS):
            raise ValueError(f"this tokenizer was saved with specials {d['specials']}, "
                             f"expected {list(SPECIALS)}")
        return cls(d["chars"])


def render_chat(tok: ChatTokenizer, messages: Messages) -> tuple[list[int], list[bool]]:
    """Each message -> <|role|> text <|end|>. Returns the ids and a mask of the same length,
    True exactly on the assistant's text and its closing <|end|>: what the model must learn
    to produce. Its <|assistant|> marker is False: the template writes it, not the model."""
    ids: list[int] = []
    mask: list[bool] = []
    for role, text in messages:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got role={role!r}")
        body = tok.encode(text) + [tok.end_id]
        ids += [tok.special[f"<|{role}|>"]] + body
        mask += [False] + [role == "assistant"] * len(body)
    return ids, mask


def prompt_for_reply(tok: ChatTokenizer, messages: Messages) -> list[int]:
    """The conversation so far, then <|assistant|>: generation continues from here."""
    return render_chat(tok, messages)[0] + [tok.assistant_id]


def collate(tok: ChatTokenizer, examples: list[tuple[list[int], list[bool]]],
            block_size: int | None = None) -> tuple[Tensor, Tensor]:
    """(ids, mask) examples -> inputs x and labels y, both (B, T) long, T = longest - 1.

    x[b] = ids[:-1] then pad_id; y[b] = ids[1:] where mask[1:] is True (the label at position t
    is the token t + 1, so it takes that token's mask), IGNORE_INDEX elsewhere and on padding.
    """
    if not examples:
        raise ValueError("examples is empty: a batch needs at least one conversation")
    for ids, mask in examples:
        if len(ids) != len(mask) or len(ids) < 2:
            raise ValueError(f"an example needs ids and a mask of one length >= 2, got "
                             f"{len(ids)} ids and {len(mask)} mask entries")
    T = max(len(ids) for ids, _ in examples) - 1
    if block_size is not None and T > block_size:
        raise ValueError(f"an example needs {T} positions (its length - 1) but "
                         f"block_size={block_size}")
    x = torch.full((len(examples), T), tok.pad_id, dtype=torch.long)
    y = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    for b, (ids, mask) in enumerate(examples):
        n = len(ids) - 1
        x[b, :n] = torch.tensor(ids[:-1])
        y[b, :n] = torch.where(torch.tensor(mask[1:]), torch.tensor(ids[1:]), IGNORE_INDEX)
    return x, y


def sft_loss(model, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy over every label that is not IGNORE_INDEX in the whole batch: each
    assistant token counts once, so a long reply weighs more than a short one (per-token
    normalization, not a mean per conversation)."""
    if not (y != IGNORE_INDEX).any():
        raise ValueError("every label in y is IGNORE_INDEX: the batch has nothing to learn")
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def sft_step(model, optimizer, x: Tensor, y: Tensor, grad_clip: float | None = 1.0) -> float:
    """One optimizer step on sft_loss; returns the loss (before the step) as a float."""
    optimizer.zero_grad(set_to_none=True)
    loss = sft_loss(model, x, y)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def generate_reply(model, tok: ChatTokenizer, messages: Messages, max_new_tokens: int = 32,
                   temperature: float = 0.0, top_k: int | None = None,
                   generator: torch.Generator | None = None) -> str:
    """The assistant's next reply to `messages`, sampled token by token with a KV cache.

    Stops at <|end|> (not part of the reply), at any other special token, after
    max_new_tokens, or when the context reaches block_size (unless the model rolls).
    temperature 0 is greedy. The model is in eval mode meanwhile and back in its mode after.
    """
    check_sampling_args(temperature, top_k, None)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    ids = prompt_for_reply(tok, messages)
    block_size, rolling = model.config.block_size, model.config.rolling
    if len(ids) > block_size and not rolling:
        raise ValueError(f"the conversation is {len(ids)} tokens with the assistant marker, "
                         f"more than block_size={block_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        cache = new_cache(model, 1)
        feed = torch.tensor([ids], device=device)
        reply: list[int] = []
        for _ in range(max_new_tokens):
            if not rolling and len(cache) + feed.size(1) > block_size:
                break  # the context is full
            logits, _ = model(feed, kv_cache=cache)
            feed = sample_next(logits[:, -1, :], temperature, top_k, None, generator)
            token = feed.item()
            if token >= len(tok.chars):  # <|end|>, or a special the reply cannot contain
                break
            reply.append(token)
        return tok.decode(reply)
    finally:
        model.train(was_training)
