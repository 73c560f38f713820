"""Kata 17 (reference): a byte-level BPE tokenizer, trained and used the way GPT-2's is."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import regex

# GPT-2's pre-tokenization: contractions, runs of letters, of digits, of other symbols (each
# with at most one leading space), and runs of whitespace. \p{L} and \p{N} need `regex`.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PIECES = regex.compile(GPT2_PATTERN)


def split_pieces(text: str) -> list[str]:
    """Cut text into GPT-2's pre-tokens. Merges never cross from one piece to the next."""
    return _PIECES.findall(text)


def split_specials(text: str, special_tokens: Iterable[str]) -> list[str]:
    """[text, special, text, special, ..., text]: the special tokens are at the odd positions."""
    if not special_tokens:
        return [text]
    # Longest first, so that a special token that contains another one wins.
    names = sorted(special_tokens, key=len, reverse=True)
    return regex.split("(" + "|".join(regex.escape(name) for name in names) + ")", text)


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """ids with every occurrence of pair, read left to right without overlap, as new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pairs(ids: list[int]) -> Iterable[tuple[int, int]]:
    return zip(ids, ids[1:])


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
        self.merges: list[tuple[int, int]] = []
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for a, b in merges:
            new_id = 256 + len(self.merges)
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge {len(self.merges)} joins ({a}, {b}), but only ids "
                                 f"0..{new_id - 1} exist before it")
            self.merges.append((a, b))
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.special_tokens: dict[str, int] = {}
        for token in special_tokens:
            if token in self.special_tokens or not token:
                raise ValueError(f"special token {token!r} is empty or given twice")
            self.special_tokens[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
        self.vocab_size = len(self.vocab)
        self._cache: dict[str, list[int]] = {}

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    # --- training ---

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> BPETokenizer:
        """Learn merges from text until the vocabulary has vocab_size ids (specials included).

        Stops early if no adjacent pair is left to merge (every piece is one token).
        """
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.train takes the corpus as one string, got "
                            f"{type(text).__name__}")
        special_tokens = list(special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is smaller than the 256 bytes plus "
                             f"{len(special_tokens)} special tokens")
        # Special tokens cut the text into chunks, and are not learned from.
        chunks = split_specials(text, special_tokens)[::2]
        # Each distinct piece once, with how often it occurs: words[w] is its list of ids.
        counts = Counter(piece for chunk in chunks for piece in split_pieces(chunk))
        words = [list(piece.encode("utf-8")) for piece in counts]
        freqs = list(counts.values())

        pair_counts: Counter[tuple[int, int]] = Counter()
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words with it
        for w, ids in enumerate(words):
            for pair in _pairs(ids):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)

        vocab = {i: bytes([i]) for i in range(256)}
        merges = []
        for _ in range(n_merges):
            if not pair_counts:
                break
            # The most frequent pair; on a tie, the greater pair of byte strings.
            best = max(pair_counts, key=lambda p: (pair_counts[p], vocab[p[0]], vocab[p[1]]))
            new_id = 256 + len(merges)
            merges.append(best)
            vocab[new_id] = vocab[best[0]] + vocab[best[1]]
            # Only the words that contain the pair change: take their old pairs out of the
            # counts, merge, and put their new pairs in.
            for w in where.pop(best):
                old = words[w]
                new = merge(old, best, new_id)
                if len(new) == len(old):  # this word lost the pair to an earlier merge
                    continue
                for pair in _pairs(old):
                    pair_counts[pair] -= freqs[w]
                    if pair_counts[pair] == 0:
                        del pair_counts[pair]
                for pair in _pairs(new):
                    pair_counts[pair] += freqs[w]
                    where[pair].add(w)
                words[w] = new
        return cls(merges, special_tokens)

    # --- encoding and decoding ---

    def encode_piece(self, piece: str) -> list[int]:
        """One pre-token: its UTF-8 bytes, then, again and again, the adjacent pair of lowest
        rank is merged (every occurrence), until no adjacent pair is a merge."""
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            pair = min(_pairs(ids), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            ids = merge(ids, pair, 256 + self.ranks[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids for text. Special tokens in text become their own id, never split."""
        ids = []
        for i, chunk in enumerate(split_specials(text, self.special_tokens)):
            if i % 2 == 1:
                ids.append(self.special_tokens[chunk])
                continue
            for piece in split_pieces(chunk):
                if piece not in self._cache:  # text repeats its words: encode each once
                    self._cache[piece] = self.encode_piece(piece)
                ids.extend(self._cache[piece])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text for ids: join all their bytes first, then decode UTF-8 once, so a character
        split across tokens comes back whole; invalid bytes become U+FFFD."""
        parts = []
        for position, i in enumerate(ids):
            if i not in self.vocab:
                raise ValueError(f"id {i} at position {position} is not in the vocabulary "
                                 f"(ids run from 0 to {self.vocab_size - 1})")
            parts.append(self.vocab[i])
        return b"".join(parts).decode("utf-8", errors="replace")

    # --- saving, so that a checkpoint can carry it ---

    def to_dict(self) -> dict:
        """JSON-able; "kind": "bpe" tells it apart from CharTokenizer's dict."""
        return {"kind": "bpe", "merges": [list(pair) for pair in self.merges],
                "special_tokens": list(self.special_tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        if (not isinstance(d, dict) or d.get("kind") != "bpe" or "merges" not in d
                or "special_tokens" not in d):
            raise ValueError("expected a dict from BPETokenizer.to_dict(): kind 'bpe', merges "
                             "and special_tokens")
        return cls([tuple(pair) for pair in d["merges"]], d["special_tokens"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))
