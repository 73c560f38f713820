"""Kata 02: a character tokenizer. Text in, integer ids out, and back again.

Read katas/02_tokenizer/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=02` to check your work.
"""

from __future__ import annotations

import json  # noqa: F401  (you will need it)
from collections.abc import Iterable
from pathlib import Path

LESSON = "see katas/02_tokenizer/README.md"


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
        """Build the vocabulary from the corpus `text` (one string).

        Set self.chars, self.stoi, self.itos, self.bos_id and self.vocab_size.
        A corpus that is not a string is a TypeError that names its type and says: pass
        ''.join(names); an empty corpus is a ValueError that says it is empty.
        """
        raise NotImplementedError(
            f"CharTokenizer.__init__: chars = sorted(set(text)), then stoi, itos, bos_id, "
            f"vocab_size; {LESSON}"
        )

    def __repr__(self) -> str:
        return (f"CharTokenizer(vocab_size={getattr(self, 'vocab_size', '?')}, "
                f"bos_id={getattr(self, 'bos_id', '?')})")

    def encode(self, text: str) -> list[int]:
        """The id of each character of text, in order.

        A character outside the vocabulary is a ValueError whose message names the
        character and its position in text. Never drop it silently.
        """
        raise NotImplementedError(f"CharTokenizer.encode: look each character up in stoi; {LESSON}")

    def decode(self, ids: Iterable[int]) -> str:
        """The text for a sequence of ids (any iterable of ints).

        BOS ids are left out. An id outside the vocabulary (negative ones included) is a
        ValueError whose message names the id and its position.
        """
        raise NotImplementedError(f"CharTokenizer.decode: look each id up in itos; {LESSON}")

    # --- saving the vocabulary, so that a checkpoint can carry it ---

    def to_dict(self) -> dict:
        """A JSON-able dict from which from_dict rebuilds the same tokenizer:
        {"chars": [...the sorted characters...], "bos": True or False}."""
        raise NotImplementedError(f"CharTokenizer.to_dict: chars, and is there a BOS; {LESSON}")

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        """The tokenizer that to_dict described. A dict without "chars" and "bos" is a
        ValueError that names those keys."""
        raise NotImplementedError(f"CharTokenizer.from_dict: use d['chars'], d['bos']; {LESSON}")

    def save(self, path: str | Path) -> None:
        """Write to_dict() to path as JSON."""
        raise NotImplementedError(f"CharTokenizer.save: json.dumps(self.to_dict()); {LESSON}")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        """Read a file written by save."""
        raise NotImplementedError(f"CharTokenizer.load: json.loads, then from_dict; {LESSON}")
