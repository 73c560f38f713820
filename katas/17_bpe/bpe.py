"""Kata 17: a byte-level BPE tokenizer, trained and used the way GPT-2's is.

Read katas/17_bpe/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=17` to check your work.
"""

from __future__ import annotations

import json  # noqa: F401  (you will need it)
from collections import Counter, defaultdict  # noqa: F401  (useful for training)
from collections.abc import Iterable
from pathlib import Path

import regex

LESSON = "see katas/17_bpe/README.md"

# GPT-2's pre-tokenization: contractions, runs of letters, of digits, of other symbols (each
# with at most one leading space), and runs of whitespace. \p{L} and \p{N} need `regex`.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PIECES = regex.compile(GPT2_PATTERN)


def split_pieces(text: str) -> list[str]:
    """Cut text into GPT-2's pre-tokens (every match of GPT2_PATTERN, in order).

    "Hello world's" -> ["Hello", " world", "'s"]. Merges never cross from one piece to the next.
    """
    raise NotImplementedError(f"split_pieces: findall with the compiled pattern; {LESSON}")


def split_specials(text: str, special_tokens: Iterable[str]) -> list[str]:
    """[text, special, text, special, ..., text]: text cut at every special token, which stay
    in the list at the odd positions. No special tokens: [text].

    "a<|endoftext|>b" with ["<|endoftext|>"] -> ["a", "<|endoftext|>", "b"]. When one special
    token contains another, the longer one wins.
    """
    raise NotImplementedError(f"split_specials: regex.split with a group; {LESSON}")


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """ids with every occurrence of pair, read left to right without overlap, as new_id.

    merge([5, 5, 5], (5, 5), 9) -> [9, 5];  merge([1, 2, 3, 1, 2], (1, 2), 9) -> [9, 3, 9].
    """
    raise NotImplementedError(f"merge: walk ids with an index, two steps on a match; {LESSON}")


class BPETokenizer:
    """Byte-level BPE: ids 0..255 are the bytes, then one id per merge, then special tokens.

    merges:         [(a, b), ...] in the order they were learned; merge r makes id 256 + r,
                    and r is its rank (lower ranks are applied first when encoding).
    vocab:          id -> the bytes it stands for (special tokens: their UTF-8 bytes).
    special_tokens: {"<|endoftext|>": id, ...}, ids after the merges, in the order given.
    vocab_size:     256 + len(merges) + len(special_tokens).
    """

    def __init__(self, merges: Iterable[tuple[int, int]] = (),
                 special_tokens: Iterable[str] = ()):
        """A tokenizer from merges already learned (see train to learn them).

        Set self.merges, self.vocab, self.special_tokens and self.vocab_size. A merge that uses
        an id not made yet is a ValueError naming that id; an empty special token or one given
        twice is a ValueError naming it.
        """
        raise NotImplementedError(f"BPETokenizer.__init__: vocab from the 256 bytes and the "
                                  f"merges; {LESSON}")

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={getattr(self, 'vocab_size', '?')}, "
                f"merges={len(getattr(self, 'merges', []))})")

    # --- training ---

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> BPETokenizer:
        """Learn merges from text until the vocabulary has vocab_size ids (specials included).

        Each merge joins the most frequent adjacent pair; a tie goes to the greater pair of
        byte strings, (vocab[a], vocab[b]). Pairs are counted inside pieces (split_pieces),
        never across them, and special tokens are cut out of the text first. Stops early if
        no pair is left. A vocab_size below 256 + len(special_tokens) is a ValueError naming
        it; a corpus that is not a string is a TypeError naming its type.
        """
        raise NotImplementedError(f"BPETokenizer.train: count pairs per distinct piece, merge "
                                  f"the best, update the counts; {LESSON}")

    # --- encoding and decoding ---

    def encode_piece(self, piece: str) -> list[int]:
        """One pre-token: its UTF-8 bytes, then, again and again, the adjacent pair of lowest
        rank is merged (every occurrence), until no adjacent pair is a merge."""
        raise NotImplementedError(f"BPETokenizer.encode_piece: merge by rank; {LESSON}")

    def encode(self, text: str) -> list[int]:
        """Token ids for text. Special tokens in text become their own id, never split; the
        rest is cut into pieces, each encoded by encode_piece, once per distinct piece over
        the tokenizer's life (cache them in a dict: words repeat)."""
        raise NotImplementedError(f"BPETokenizer.encode: specials, pieces, encode_piece; {LESSON}")

    def decode(self, ids: Iterable[int]) -> str:
        """The text for ids: join all their bytes first, then decode UTF-8 once with
        errors="replace". An id outside the vocabulary is a ValueError naming it."""
        raise NotImplementedError(f"BPETokenizer.decode: join the bytes, then decode; {LESSON}")

    # --- saving, so that a checkpoint can carry it ---

    def to_dict(self) -> dict:
        """JSON-able: exactly {"kind": "bpe", "merges": [[a, b], ...] (rank order),
        "special_tokens": [names, in the order given]}. The "kind" tells it apart from
        CharTokenizer's dict in a checkpoint."""
        raise NotImplementedError(f"BPETokenizer.to_dict: kind, merges, special tokens; {LESSON}")

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        """The tokenizer that to_dict described; anything else (another kind, a missing key)
        is a ValueError that says a BPE tokenizer's dict was expected."""
        raise NotImplementedError(f"BPETokenizer.from_dict: check the kind, then cls; {LESSON}")

    def save(self, path: str | Path) -> None:
        """Write to_dict() to path as JSON."""
        raise NotImplementedError(f"BPETokenizer.save: json.dumps(self.to_dict()); {LESSON}")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a file written by save."""
        raise NotImplementedError(f"BPETokenizer.load: json.loads, then from_dict; {LESSON}")
