"""Specs for kata 03. Oracles: numpy (np.bincount over pair indices, in float64) on ids
computed here from the letters, collections.Counter, pure-Python sums written here, closed
forms (ln 27), and tables worked by hand in the lesson."""

import copy
import math
import random
import string
from collections import Counter

import numpy as np
import pytest
from bigram import bigram_probs, bigrams, count_bigrams, nll, sample
from hypothesis import given
from hypothesis import strategies as st
from tokenizer import CharTokenizer

from harness.checks import expect, expect_close

BOS = 26  # names: a..z are 0..25, BOS is the last id
LETTERS = string.ascii_lowercase

# Small corpora of made-up names: 1..8 names of 1..6 letters from a-e.
corpora = st.lists(st.text(alphabet="abcde", min_size=1, max_size=6), min_size=1, max_size=8)


def names_tokenizer() -> CharTokenizer:
    """The 27-id tokenizer of the names data (it has every letter a-z)."""
    return CharTokenizer(LETTERS, bos=True)


def reference_pairs(corpus: list[str]) -> list[tuple[int, int]]:
    """Every (prev, next) pair of [BOS] + name + [BOS], with ids computed here, not by the kata."""
    index = {ch: i for i, ch in enumerate(sorted(set("".join(corpus))))}
    bos = len(index)
    pairs = []
    for name in corpus:
        ids = [bos, *(index[ch] for ch in name), bos]
        pairs.extend(zip(ids, ids[1:]))
    return pairs


def reference_nll(probs, corpus: list[str]) -> float:
    """Average -ln p over the corpus's bigrams: inf if one of them has p = 0."""
    logs = []
    for prev, nxt in reference_pairs(corpus):
        p = probs[prev][nxt]
        if p <= 0:
            return math.inf
        logs.append(-math.log(p))
    return sum(logs) / len(logs)


def label(i: int) -> str:
    return "BOS" if i == BOS else LETTERS[i]


@pytest.fixture(scope="module")
def names_oracle(names):
    """The names data as numpy arrays of (prev, next) ids, and its 27 x 27 count table."""
    prev, nxt = np.array(reference_pairs(names)).T
    counts = np.bincount(prev * 27 + nxt, minlength=27 * 27).reshape(27, 27)
    return prev, nxt, counts


def numpy_probs(counts, k: float):
    """The add-k table: row-normalised counts + k."""
    return (counts + k) / (counts + k).sum(axis=1, keepdims=True)


def numpy_nll(names_oracle, k: float) -> float:
    prev, nxt, counts = names_oracle
    probs = numpy_probs(counts, k)
    return float(-np.log(probs[prev, nxt]).mean())


# --- the worked example from the lesson: names "ann" and "na"; a = 0, n = 1, BOS = 2 ---

TOY = ["ann", "na"]


def test_worked_example_bigrams():
    tok = CharTokenizer("an", bos=True)
    got = bigrams("ann", tok)
    want = [(2, 0), (0, 1), (1, 1), (1, 2)]
    expect([tuple(p) for p in got] == want,
           f"bigrams('ann') with a=0, n=1, BOS=2: expected {want}, got {got}",
           hint="wrap the name first, [BOS] + ids + [BOS], then pair each id with the next: "
                "a name of 3 letters gives 4 bigrams")


def test_bigrams_of_emma_close_with_bos():
    got = [tuple(p) for p in bigrams("emma", names_tokenizer())]
    want = [(26, 4), (4, 12), (12, 12), (12, 0), (0, 26)]
    expect(got == want, f"bigrams('emma') (a=0 .. z=25, BOS=26): expected {want}, got {got}",
           hint="the last pair (a, BOS) is how the model learns where names end; the first, "
                "(BOS, e), how they start")


def test_worked_example_counts():
    counts = count_bigrams(TOY, CharTokenizer("".join(TOY), bos=True))
    want = [[0, 1, 1],   # after a: n once, BOS once
            [1, 1, 1],   # after n: a, n, BOS once each
            [1, 1, 0]]   # after BOS: a once (ann), n once (na)
    expect([list(row) for row in counts] == want,
           f"count_bigrams(['ann', 'na']): expected rows (a, n, BOS)\n  {want}\n  got {counts}",
           hint="counts[prev][next] += 1 for every bigram of [BOS] + name + [BOS]")


def test_worked_example_probabilities():
    counts = [[0, 1, 1], [1, 1, 1], [1, 1, 0]]
    expect_close(bigram_probs(counts), [[0, 1 / 2, 1 / 2], [1 / 3] * 3, [1 / 2, 1 / 2, 0]],
                 "bigram_probs(counts) for ['ann', 'na'], k=0",
                 hint="divide each row by its own total")
    expect_close(bigram_probs(counts, k=1), [[1 / 5, 2 / 5, 2 / 5], [1 / 3] * 3,
                                             [2 / 5, 2 / 5, 1 / 5]],
                 "bigram_probs(counts, k=1) for ['ann', 'na']",
                 hint="(count + 1) / (row total + 1 * 3): add k to every cell, then normalise; "
                      "the row total grows by k times the number of columns")


def test_worked_example_nll():
    tok = CharTokenizer("".join(TOY), bos=True)
    probs = [[0, 1 / 2, 1 / 2], [1 / 3] * 3, [1 / 2, 1 / 2, 0]]
    expect_close(nll(probs, TOY, tok), (4 * math.log(2) + 3 * math.log(3)) / 7,
                 "nll of ['ann', 'na'] under its own k=0 table", rel=1e-9,
                 hint="7 bigrams: four have p = 1/2 and three p = 1/3; add up -ln p over all "
                      "of them, the closing (x, BOS) pairs included, and divide by 7")


# --- counting ---


@given(corpora)
def test_counts_match_a_counter_over_every_bigram(corpus):
    tok = CharTokenizer("".join(corpus), bos=True)
    counts = count_bigrams(corpus, tok)
    tally = Counter(reference_pairs(corpus))
    size = tok.vocab_size
    want = [[tally[(i, j)] for j in range(size)] for i in range(size)]
    expect([list(row) for row in counts] == want,
           f"count_bigrams({corpus}):\n  expected {want}\n  got      {counts}",
           hint="a vocab_size x vocab_size table; counts[prev][next] for [BOS] + name + [BOS]")


def test_counts_on_names_match_numpy(names, names_oracle):
    counts = count_bigrams(names, names_tokenizer())
    total = sum(map(sum, counts))
    hint = ("each name of L letters gives L + 1 bigrams, [BOS] + name + [BOS]: "
            "196,113 letters + 32,033 names = 228,146")
    if total == 196_113:
        hint = ("one bigram per letter: a BOS is missing. Did you forget the closing BOS? "
                "The pair (last letter, BOS) is how the model learns to end a name")
    expect(total == 228_146,
           f"total of the count table on names: expected 228,146 bigrams, got {total:,}",
           hint=hint)
    want = names_oracle[2]
    for i in range(27):
        for j in range(27):
            if counts[i][j] != want[i][j]:
                pytest.fail(f"count of ({label(i)} -> {label(j)}) on names: expected "
                            f"{want[i][j]}, got {counts[i][j]}\n  hint: rows are the previous "
                            "token, columns the next one")


# --- from counts to probabilities ---


@given(corpora, st.sampled_from([0, 0.5, 1, 10]))
def test_every_row_is_a_distribution(corpus, k):
    tok = CharTokenizer("".join(corpus), bos=True)
    probs = bigram_probs(count_bigrams(corpus, tok), k)
    expect(len(probs) == tok.vocab_size and all(len(row) == tok.vocab_size for row in probs),
           f"bigram_probs should return a {tok.vocab_size} x {tok.vocab_size} table")
    for i, row in enumerate(probs):
        expect(all(p >= 0 for p in row), f"row {i} has a negative probability: {row}")
        expect_close(sum(row), 1.0, f"sum of row {i} of bigram_probs(counts of {corpus}, k={k})",
                     rel=1e-9, hint="divide each cell by its row's total, after adding k")


def square_tables(n: int):
    row = st.lists(st.integers(0, 5), min_size=n, max_size=n)
    return st.lists(row, min_size=n, max_size=n)


@given(st.integers(2, 6).flatmap(square_tables), st.floats(0.01, 10))
def test_add_k_smoothing_matches_numpy(counts, k):
    before = copy.deepcopy(counts)
    got = bigram_probs(counts, k)
    table = np.array(counts, dtype=np.float64) + k
    want = table / table.sum(axis=1, keepdims=True)
    expect_close(got, want, f"bigram_probs({counts}, k={k})", rel=1e-9,
                 hint="(count + k) / (row total + k * number of columns): k goes into every "
                      "cell, the zeros too, before you normalise")
    expect(counts == before, "bigram_probs changed the counts table it was given",
           hint="build a new table; the caller may still need the raw counts")


def test_no_counts_and_k_1_is_uniform():
    got = bigram_probs([[0] * 27 for _ in range(27)], k=1)
    expect_close(got, [[1 / 27] * 27] * 27, "bigram_probs of an all-zero table with k=1",
                 hint="k alone in every cell: each row becomes 1/27 everywhere")


def test_a_row_without_counts_and_k_0_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        bigram_probs([[1, 1, 1], [1, 1, 1], [0, 0, 0]], k=0)  # row 2 would be 0/0
    message = str(info.value)
    expect("2" in message and "k" in message,
           f"an all-zero row 2 with k=0 raised ValueError({message!r}), which does not name "
           "row 2 and suggest a k > 0",
           hint="say which row has no counts and what to do, e.g. 'row 2 of the count table "
                "is all zeros, so with k=0 it has no distribution: use k > 0'")


def test_a_negative_k_is_an_error():
    with pytest.raises(ValueError) as info:
        bigram_probs([[2, 2], [2, 2]], k=-0.5)  # would quietly give rows (2-0.5)/(4-1) = 0.5
    expect("-0.5" in str(info.value),
           f"k=-0.5 raised ValueError({str(info.value)!r}), which does not give the value",
           hint="say what is wrong: 'the smoothing constant k must be >= 0, got -0.5'")


def test_a_tokenizer_without_bos_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        count_bigrams(["ab"], CharTokenizer("ab"))
    expect("bos" in str(info.value).lower(),
           f"count_bigrams with a tokenizer without BOS raised ValueError({str(info.value)!r})",
           hint="say what to do: build the tokenizer with bos=True")


@pytest.mark.parametrize("function", ["bigrams", "sample"])
def test_bigrams_and_sample_need_bos_too(function):
    tokenizer = CharTokenizer("ab")
    with pytest.raises(ValueError) as info:
        if function == "bigrams":
            bigrams("ab", tokenizer)
        else:
            sample([[0.5, 0.5], [0.5, 0.5]], tokenizer, random.Random(0), max_len=3)
    expect("bos" in str(info.value).lower(),
           f"{function} with a tokenizer without BOS raised ValueError({str(info.value)!r})",
           hint="say what to do: build the tokenizer with bos=True")


def test_nll_of_no_names_is_a_clear_error():
    tokenizer = CharTokenizer("ab", bos=True)
    with pytest.raises(ValueError) as info:
        nll([[1 / 3] * 3] * 3, [], tokenizer)  # an average over nothing is 0/0
    expect("name" in str(info.value),
           f"nll of no names raised ValueError({str(info.value)!r}), which does not say why",
           hint="e.g. 'nll needs at least one name to score'")


# --- the average negative log-likelihood ---


def test_nll_on_names_unsmoothed(names, names_oracle):
    tok = names_tokenizer()
    got = nll(bigram_probs(count_bigrams(names, tok)), names, tok)
    expect_close(got, numpy_nll(names_oracle, 0), "average NLL of the names under their k=0 "
                 "bigram table (numpy oracle)", rel=1e-9,
                 hint="average -ln p over all 228,146 bigrams, (last letter, BOS) included")
    # Frozen from a separate numpy computation: 2.4540144891548743.
    expect_close(got, 2.4540, "average NLL on names, k=0, to 4 decimals", abs=5e-5)


def test_nll_on_names_add_one(names, names_oracle):
    tok = names_tokenizer()
    got = nll(bigram_probs(count_bigrams(names, tok), k=1), names, tok)
    expect_close(got, numpy_nll(names_oracle, 1), "average NLL of the names under their k=1 "
                 "bigram table (numpy oracle)", rel=1e-9,
                 hint="smoothing takes a little probability from seen pairs, so the NLL on the "
                      "same data rises slightly")
    # Frozen from a separate numpy computation: 2.454576820115704.
    expect_close(got, 2.4546, "average NLL on names, k=1, to 4 decimals", abs=5e-5)


def test_nll_scores_the_table_it_is_given(names, names_oracle):
    # numpy's k=1 table, passed in as lists: this checks nll on its own, apart from counting.
    _, _, counts = names_oracle
    table = numpy_probs(counts, 1).tolist()
    expect_close(nll(table, names, names_tokenizer()), numpy_nll(names_oracle, 1),
                 "nll(numpy's k=1 table, names)", rel=1e-9,
                 hint="look up probs[prev][next] for every bigram and average -ln of them")


def test_the_uniform_model_scores_ln_27(names):
    uniform = [[1 / 27] * 27 for _ in range(27)]
    expect_close(nll(uniform, names, names_tokenizer()), math.log(27),
                 "nll of the uniform table on names", rel=1e-9,
                 hint="every bigram has p = 1/27, so every -ln p is ln 27 = 3.2958")


def test_an_impossible_bigram_gives_infinite_nll_not_a_crash():
    tok = CharTokenizer("ab", bos=True)  # a = 0, b = 1, BOS = 2
    probs = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]  # the k=0 table of ['ab']
    try:
        got = nll(probs, ["ba"], tok)
    except ValueError as err:
        pytest.fail(f"nll raised ValueError({err}) on a bigram of probability 0. Return "
                    "math.inf instead: the model calls the data impossible.")
    expect(got == math.inf, f"nll of ['ba'] under the k=0 table of ['ab']: expected inf, got {got}",
           hint="-ln 0 is infinite; check p == 0 before calling math.log")
    smoothed = [[1 / 4, 2 / 4, 1 / 4], [1 / 4, 1 / 4, 2 / 4], [2 / 4, 1 / 4, 1 / 4]]  # k=1
    expect_close(nll(smoothed, ["ba"], tok), math.log(4), "nll of ['ba'] under the k=1 table",
                 hint="every bigram of [BOS] b a [BOS] has p = 1/4 after smoothing")


@given(corpora, st.data())
def test_the_count_table_beats_any_other_table_on_its_own_corpus(corpus, data):
    tok = CharTokenizer("".join(corpus), bos=True)
    probs = bigram_probs(count_bigrams(corpus, tok))
    size = tok.vocab_size
    # Another table: mix each row with a random distribution, weight t.
    t = data.draw(st.floats(0.01, 1.0), label="t")
    others = []
    for _ in range(size):
        weights = data.draw(st.lists(st.floats(0.01, 1.0), min_size=size, max_size=size))
        others.append([w / sum(weights) for w in weights])
    mixed = [[(1 - t) * p + t * q for p, q in zip(row, other)]
             for row, other in zip(probs, others)]
    best, other_nll = reference_nll(probs, corpus), reference_nll(mixed, corpus)
    expect(best <= other_nll + 1e-12,
           f"on {corpus}, the count table scores NLL {best:.6g} but a perturbed table "
           f"scores {other_nll:.6g}",
           hint="normalised counts are the maximum-likelihood bigram model: no other table "
                "can do better on the same data. Check the counts (both BOS) and the rows.")


# --- sampling ---


def test_sampling_is_reproducible_with_the_callers_rng(names_oracle):
    table = bigram_probs(names_oracle[2].tolist())
    tok = names_tokenizer()

    def draw(seed):
        rng = random.Random(seed)
        return [sample(table, tok, rng) for _ in range(20)]

    first = draw(42)
    random.seed(0)
    random.random()  # disturb the global generator: the samples must not depend on it
    again = draw(42)
    expect(first == again, f"20 names with seed 42, twice:\n  {first}\n  {again}",
           hint="draw only with the rng argument (rng.random(), rng.choices(...)), never with "
                "random.random() or random.choices()")
    expect(draw(7) != first, "seeds 42 and 7 gave the same 20 names",
           hint="the draws must come from rng")


def test_sampled_names_are_valid(names_oracle):
    counts = names_oracle[2]
    table = bigram_probs(counts.tolist())
    rng = random.Random(2024)
    tok = names_tokenizer()
    got = [sample(table, tok, rng) for _ in range(200)]
    for name in got:
        expect(isinstance(name, str) and len(name) > 0 and set(name) <= set(LETTERS),
               f"sample returned {name!r}: expected a non-empty string of letters a-z",
               hint="start from BOS, stop when BOS comes back, and decode without it")
        ids = [BOS, *(ord(ch) - ord("a") for ch in name), BOS]
        unseen = [(label(a), label(b)) for a, b in zip(ids, ids[1:]) if counts[a][b] == 0]
        expect(not unseen, f"sample returned {name!r}, which contains the bigram(s) {unseen} "
               "that never occur in the names (their probability is 0)",
               hint="draw each next id from the row of the current id")
    mean_length = sum(map(len, got)) / len(got)
    expect(3 < mean_length < 10,
           f"200 sampled names have mean length {mean_length:.1f}; the names average 6.1",
           hint="stop at the first BOS drawn: it ends the name")


def test_sampling_follows_the_table():
    tok = CharTokenizer("ab", bos=True)  # a = 0, b = 1, BOS = 2
    table = [[0.25, 0, 0.75],  # after a: another a 1/4, end 3/4
             [0, 0, 1],        # after b: end
             [0.7, 0.3, 0]]    # first letter: a 70%, b 30%
    rng = random.Random(0)
    n = 4000
    got = Counter(sample(table, tok, rng) for _ in range(n))
    # P("a") = 0.7 * 0.75 = 0.525, P("b") = 0.3; allow 5 standard deviations.
    for name, p in (("a", 0.525), ("b", 0.3)):
        freq = got[name] / n
        expect(abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n),
               f"sampled {name!r} {freq:.3f} of the time out of {n}; the table gives {p}",
               hint="draw at random with the row's probabilities as weights, not the most "
                    "likely id and not a uniform choice")


def test_sampling_stops_at_max_len():
    tok = CharTokenizer("a", bos=True)  # a = 0, BOS = 1
    never_ends = [[1.0, 0.0], [1.0, 0.0]]
    got = sample(never_ends, tok, random.Random(0), max_len=10)
    expect(got == "a" * 10, f"sample with a table that never returns to BOS and max_len=10: "
           f"expected 'aaaaaaaaaa', got {got!r}", hint="stop after max_len characters")
    got = sample(never_ends, tok, random.Random(0))
    expect(got == "a" * 50, f"the same table without max_len gave {len(got)} letters; the "
           "default max_len is 50", hint="def sample(..., max_len: int = 50)")
