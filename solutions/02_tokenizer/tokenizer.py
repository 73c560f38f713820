"""Kata 02: a character tokenizer. Text in, integer ids out, and back again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


class CharTokenizer:
    """Maps each character of a corpus to an integer id, and ids back to characters.

    chars:      the vocabulary, sorted: sorted(set(text)).
    stoi, itos: character -> id and id -> character; ids are 0..len(chars)-1 in sorted order.
    bos_id:     with bos=True, one extra id, len(chars) (the last id), that marks where a
                sequence begins and ends; None without it. BOS is a marker, not a character:
                it is in neither stoi nor itos, and decode leaves it out.
    vocab_size: len(chars), plus 1 for BOS.
    """

    def __init__(self, text: str, bos: bool = False):
        if not isinstance(text, str):
            raise TypeError(
                f"CharTokenizer takes the corpus as one string, got {type(text).__name__}; "
                "for a list of names pass ''.join(names)"
            )
        if not text:
            raise ValueError("CharTokenizer needs a non-empty corpus to build a vocabulary from")
        # Sorting makes the ids a property of the set of characters, not of the order in
        # which they first appear: the same vocabulary always gets the same ids.
        self.chars: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}
        self.itos: dict[int, str] = {i: ch for i, ch in enumerate(self.chars)}
        self.bos_id: int | None = len(self.chars) if bos else None
        self.vocab_size: int = len(self.chars) + (1 if bos else 0)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, bos_id={self.bos_id})"

    def encode(self, text: str) -> list[int]:
        """The id of each character of text. An unknown character is an error, never dropped."""
        ids = []
        for position, ch in enumerate(text):
            if ch not in self.stoi:
                raise ValueError(
                    f"character {ch!r} at position {position} is not in the vocabulary "
                    f"({len(self.chars)} characters, built from the corpus)"
                )
            ids.append(self.stoi[ch])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text for a sequence of ids. BOS ids are left out; an unknown id is an error."""
        out = []
        for position, i in enumerate(ids):
            if i == self.bos_id:
                continue
            if i not in self.itos:
                raise ValueError(
                    f"id {i} at position {position} is not in the vocabulary "
                    f"(ids run from 0 to {self.vocab_size - 1})"
                )
            out.append(self.itos[i])
        return "".join(out)

    # --- saving the vocabulary, so that a checkpoint can carry it ---

    def to_dict(self) -> dict:
        """A JSON-able description from which from_dict rebuilds the same tokenizer."""
        return {"chars": list(self.chars), "bos": self.bos_id is not None}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        try:
            chars, bos = d["chars"], d["bos"]
        except (KeyError, TypeError):
            raise ValueError(
                f"expected a dict from CharTokenizer.to_dict(), with keys 'chars' and 'bos'; "
                f"got {d!r}"
            ) from None
        return cls("".join(chars), bos=bos)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))
