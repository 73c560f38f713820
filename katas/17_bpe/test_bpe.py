"""Specs for kata 17. Oracles: merges worked by hand (in the lesson), `naive_merges` below (the
plain trainer that recounts every pair of every piece occurrence after each merge), tiktoken's
own statement of GPT-2's pattern, tiktoken's encoder built from the learner's ranks, and
Python's own UTF-8 decoder."""

import json
from collections import Counter

import pytest
import regex
import tiktoken
from bpe import BPETokenizer, merge, split_pieces, split_specials
from hypothesis import given
from hypothesis import strategies as st
from tiktoken_ext.openai_public import r50k_pat_str

from harness.checks import expect

EOT = "<|endoftext|>"
# Small alphabets make repeated pairs and ties likely; é and 🙂 are several bytes each.
alphabet = st.sampled_from(list("aab  b\n'sll1é🙂!"))
small_texts = st.lists(alphabet, max_size=60).map("".join)
any_text = st.text(max_size=80)  # any Unicode: accents, CJK, emoji, controls


def naive_merges(text: str, n_merges: int, specials=(), history=None
                 ) -> list[tuple[bytes, bytes]]:
    """The oracle: every piece occurrence kept as a list of byte strings; after each merge
    every pair is counted again from scratch. Slow and obviously right. `history`, a list,
    receives the pair counts each merge chose from."""
    chunks = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
    words = [[bytes([b]) for b in piece.encode("utf-8")]
             for chunk in chunks for piece in regex.findall(r50k_pat_str, chunk)]
    merges = []
    for _ in range(n_merges):
        counts = Counter(pair for w in words for pair in zip(w, w[1:]))
        if not counts:
            break
        if history is not None:
            history.append(counts)
        best = max(counts, key=lambda pair: (counts[pair], pair))  # ties: greater pair
        merges.append(best)
        new_words = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words.append(out)
        words = new_words
    return merges


def learned(tok: BPETokenizer) -> list[tuple[bytes, bytes]]:
    """The learner's merges as pairs of byte strings (the oracle's form)."""
    try:
        return [(tok.vocab[a], tok.vocab[b]) for a, b in tok.merges]
    except (KeyError, TypeError, ValueError) as err:
        pytest.fail(f"tok.merges should be (a, b) id pairs whose ids are in tok.vocab "
                    f"(id -> bytes); reading them failed with {err!r}", pytrace=False)


def oracle_encoding(tok: BPETokenizer) -> tiktoken.Encoding:
    """tiktoken's fast encoder, built from the learner's own vocabulary (bytes -> rank)."""
    n_merged = 256 + len(tok.merges)
    ranks = {tok.vocab[i]: i for i in range(n_merged)}
    expect(len(ranks) == n_merged,
           f"{n_merged - len(ranks)} ids of the vocabulary stand for the same bytes as another",
           hint="vocab[256 + r] must be vocab[a] + vocab[b] for merge r = (a, b)")
    return tiktoken.Encoding("learner", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens=dict(tok.special_tokens))


def trained(text: str, vocab_size: int, specials=()) -> BPETokenizer:
    tok = BPETokenizer.train(text, vocab_size, specials)
    expect(isinstance(tok, BPETokenizer),
           f"BPETokenizer.train returned {type(tok).__name__}, expected a BPETokenizer",
           hint="train is a classmethod: learn the merges, then return cls(merges, specials)")
    return tok


@pytest.fixture(scope="module")
def shakespeare_tok(shakespeare) -> BPETokenizer:
    """256 merges learned from the first 100,000 characters of tiny Shakespeare."""
    return trained(shakespeare[:100_000], 256 + 256)


# --- the pieces ---


def test_pieces_worked_example():
    got = split_pieces("Hello world's 42  apples!!\n")
    want = ["Hello", " world", "'s", " 42", " ", " apples", "!!", "\n"]
    expect(got == want, f"split_pieces('Hello world\\'s 42  apples!!\\n'):\n  expected {want}\n"
           f"  got      {got}",
           hint="regex.findall(GPT2_PATTERN, text); a space joins the word after it, and of a "
                "run of spaces the last one goes with the next word")


@given(any_text)
def test_pieces_are_gpt2s(text):
    want = regex.findall(r50k_pat_str, text)
    got = split_pieces(text)
    expect(got == want, f"split_pieces({text!r}):\n  expected {want}\n  got      {got}",
           hint="use the `regex` package (the built-in `re` knows no \\p{L}) and GPT2_PATTERN")


def test_special_tokens_cut_the_text():
    cases = [("a<|endoftext|>b", [EOT], ["a", EOT, "b"]),
             ("<|endoftext|><|endoftext|>", [EOT], ["", EOT, "", EOT, ""]),
             ("x<|a|><|ab|>y", ["<|a|>", "<|ab|>"], ["x", "<|a|>", "", "<|ab|>", "y"]),
             ("no specials", [], ["no specials"]),
             ("a.b", ["."], ["a", ".", "b"]),  # a special is literal text, not a regex
             # "<s>" starts "<s>!": at one position the longer one wins, in either order
             ("x<s>!y<s>z", ["<s>", "<s>!"], ["x", "<s>!", "y", "<s>", "z"]),
             ("x<s>!y<s>z", ["<s>!", "<s>"], ["x", "<s>!", "y", "<s>", "z"])]
    for text, specials, want in cases:
        got = split_specials(text, specials)
        expect(got == want, f"split_specials({text!r}, {specials}):\n  expected {want}\n  got"
               f"      {got}",
               hint="regex.split with the escaped names in a group (so they stay in the "
                    "list), longest name first")


# --- merging one pair ---


def test_merge_replaces_each_occurrence_left_to_right():
    cases = [([1, 2, 3, 1, 2], (1, 2), 9, [9, 3, 9]),
             ([5, 5, 5], (5, 5), 9, [9, 5]),
             ([5, 5, 5, 5], (5, 5), 9, [9, 9]),
             ([1, 2], (2, 1), 9, [1, 2]),
             ([], (1, 2), 9, [])]
    for ids, pair, new_id, want in cases:
        got = merge(list(ids), pair, new_id)
        expect(got == want, f"merge({ids}, {pair}, {new_id}): expected {want}, got {got}",
               hint="after a match jump two places: in 5 5 5 the pair (5, 5) is merged once, "
                    "the last 5 stays")


# --- training ---


# Texts that break a trainer's incremental update where it is easy to get wrong: a pair
# that occurs twice in one piece (aaaa), pieces that lose a pair to an earlier merge but
# stay listed under it (the a+b of "abc" after b+c), pairs that vanish and come back.
TRAINER_TRAPS = ["aaaa", "aaaa aaaa aa", "abc abc bc bc ab", "abab abab ab",
                 "aaabdaaabac", "the cat the hat that cat\n" * 3]


def test_the_trainer_runs_through_the_cases_that_break_incremental_updates():
    for text in TRAINER_TRAPS:
        n = len(naive_merges(text, 40))
        try:
            tok = BPETokenizer.train(text, 256 + 40)
        except NotImplementedError:
            raise
        except Exception as err:
            hint = ("in the incremental update, after choosing best: for each piece listed "
                    "under it that still contains it (skip the others: an earlier merge took "
                    "their pair), take ALL its old pairs out of the counts (x its frequency), "
                    "merge, put all its new pairs in; delete a pair only when its count "
                    "reaches 0")
            if isinstance(err, KeyError):
                hint = (f"KeyError {err}: a pair was removed twice, or read after it was "
                        "deleted. Taking the changed pieces' old pairs out already brings "
                        "best's count to 0 (and deletes it): do not delete it again; " + hint)
            raise AssertionError(f"BPETokenizer.train({text!r}, 256 + 40) raised "
                                 f"{type(err).__name__}: {err}\n  hint: {hint}") from None
        expect(len(tok.merges) == n, f"train({text!r}, 256 + 40) learned {len(tok.merges)} "
               f"merges; the text has pairs for {n}",
               hint="stop only when no pair is left, and never merge a pair whose count is 0")


def test_worked_example_merges():
    # The lesson's example: aaabdaaabac, 4 merges, by hand.
    tok = trained("aaabdaaabac", 256 + 4)
    want = [(97, 97), (256, 97), (257, 98), (100, 258)]
    expect(tok.merges == want,
           f"merges learned from 'aaabdaaabac': expected {want} (aa, aaa, aaab, daaab), got "
           f"{tok.merges} ({[b''.join(p) for p in learned(tok)]})",
           hint="merges are numbered from 0, as in the lesson's table. Merge 1 is a tie, "
                "aa+a and a+b both occur twice: the greater pair of byte strings wins, "
                "(b'aa', b'a') > (b'a', b'b'). Merge 3 is a four-way tie of pairs seen once: "
                "(b'd', b'aaab') is the greatest")
    want_vocab = {256: b"aa", 257: b"aaa", 258: b"aaab", 259: b"daaab"}
    got_vocab = {i: tok.vocab.get(i) for i in want_vocab}
    expect(got_vocab == want_vocab and tok.vocab_size == 260,
           f"vocab of the merged ids: expected {want_vocab} and vocab_size 260, got "
           f"{got_vocab} and {tok.vocab_size}",
           hint="vocab[256 + r] = vocab[a] + vocab[b] for merge r = (a, b)")
    ids = tok.encode("aaabdaaabac")
    expect(ids == [258, 259, 97, 99],
           f"encode('aaabdaaabac'): expected [258, 259, 97, 99] (aaab, daaab, a, c), got {ids}")


def test_ties_go_to_the_greater_pair_of_byte_strings():
    cases = [
        # pieces "ab", " cd": three pairs seen once. The greatest is (c, d); the first seen
        # is (a, b); the smallest ( , c).
        ("ab cd", 1, [(b"c", b"d")]),
        # "aaaa" -> aa aa. Then (aa, aa), ( , b) and (b, c) tie at 1: by bytes (b, c) is the
        # greatest; by ids (256, 256) would be.
        ("aaaa bc", 2, [(b"a", b"a"), (b"b", b"c")]),
        # "aaab" -> aa a b. Then (aa, a) and (a, b) tie at 1: compare the pairs, (b'aa', b'a')
        # > (b'a', b'b'), not the joined bytes (b'ab' > b'aaa').
        ("aaab", 2, [(b"a", b"a"), (b"aa", b"a")]),
    ]
    for text, n, want in cases:
        got = learned(trained(text, 256 + n))
        expect(got == want, f"merges learned from {text!r}:\n  expected {want}\n  got      {got}",
               hint="among the most frequent pairs take max by (vocab[a], vocab[b]): a tuple "
                    "of byte strings, compared first by a's bytes, then by b's. Not the first "
                    "pair seen, not the ids, not a + b")


def first_difference_hint(got, want, history) -> str:
    """Which mistake the first differing merge points to: a tie broken the wrong way (the
    learner's pair was as frequent as the right one), or counts gone wrong."""
    counting = ("count every adjacent pair inside each piece (in 'aaa' the pair (a, a) "
                "counts twice), weighted by how often the piece occurs; after a merge, take "
                "the changed words' old pairs out of the counts and put their new pairs in")
    r = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    if r is None or r >= len(history):
        return counting + "; stop only when no pair is left"
    counts = history[r]
    if counts.get(got[r]) == counts[want[r]]:
        return (f"merge {r} (numbered from 0) is a tie: {got[r]} and {want[r]} are both seen "
                f"{counts[want[r]]} times. A tie goes to the greater pair of byte strings, "
                "max by (vocab[a], vocab[b]): not the first pair seen, not the ids, not a + b")
    return (f"merge {r} (numbered from 0): {want[r]} is seen {counts[want[r]]} times, your "
            f"{got[r]} {counts.get(got[r], 0)}; " + counting)


@given(small_texts, st.integers(0, 12))
def test_training_agrees_with_the_naive_trainer(text, n):
    history = []
    want = naive_merges(text, n, history=history)
    got = learned(trained(text, 256 + n))
    expect(got == want,
           f"merges learned from {text!r} with {n} merges asked:\n  expected {want}\n  got"
           f"      {got}", hint=first_difference_hint(got, want, history))


def test_the_number_of_merges():
    text = "to be, or not to be: that is the question\n" * 3
    for n in (0, 1, 10, 20):
        tok = trained(text, 256 + n)
        expect(len(tok.merges) == n and tok.vocab_size == 256 + n
               and sorted(tok.vocab) == list(range(256 + n)),
               f"train(text, vocab_size={256 + n}): expected {n} merges and ids 0..{255 + n}; "
               f"got {len(tok.merges)} merges, vocab_size {tok.vocab_size}",
               hint="vocab_size counts the 256 bytes: it asks for vocab_size - 256 merges")
    tok = trained("ab", 300)
    expect(tok.merges == [(97, 98)] and tok.vocab_size == 257,
           f"train('ab', 300): only one pair exists, so expected 1 merge and vocab_size 257; "
           f"got merges {tok.merges}, vocab_size {tok.vocab_size}",
           hint="stop when no adjacent pair is left; vocab_size is what was made")


def test_merges_never_cross_pieces():
    tok = trained("to be or not to be\n" * 20, 256 + 40)
    crossing = [t for t in learned(tok) if b" " in (t[0] + t[1])[1:] and (t[0] + t[1]).strip()]
    expect(not crossing,
           f"merges that join two pieces: {crossing[:5]}",
           hint="split the text with split_pieces first and count pairs only inside a piece: "
                "a space begins a piece, it never ends a word")


def test_the_first_merges_on_shakespeare(shakespeare_tok):
    # Frozen: the first 12 merges on the first 100,000 characters of tiny Shakespeare,
    # computed by naive_merges above.
    want = [b" t", b"he", b"ou", b" a", b" the", b" s", b" w", b"re", b"ha", b"in", b" m", b" b"]
    got = [a + b for a, b in learned(shakespeare_tok)[:12]]
    expect(got == want, f"first merges on Shakespeare:\n  expected {want}\n  got      {got}",
           hint="the most frequent pair inside pieces first: a space and 't' start many words; "
                "merge 5 joins ' t' and 'he'")


def test_special_tokens_are_never_learned_from():
    text = ("hi there" + EOT) * 30
    tok = trained(text, 256 + 5 + 1, [EOT])
    eot = 256 + len(tok.merges)
    expect(tok.special_tokens == {EOT: eot} and tok.vocab_size == 256 + 5 + 1,
           f"special_tokens: expected {{{EOT!r}: {eot}}} after {len(tok.merges)} merges and "
           f"vocab_size 262; got {tok.special_tokens} and {tok.vocab_size}",
           hint="special tokens take the ids after the merges, and count in vocab_size")
    leaked = [a + b for a, b in learned(tok) if b"|" in a + b or b"<" in a + b]
    expect(not leaked, f"merges learned from inside the special token: {leaked}",
           hint="cut the special tokens out of the text (split_specials) before counting pairs")
    expect(all(eot not in pair for pair in tok.merges), "a merge uses the special token's id")


# --- encoding and decoding ---


def test_encode_applies_merges_by_rank():
    tok = BPETokenizer([(98, 99), (97, 98)])  # rank 0: b+c -> 256, rank 1: a+b -> 257
    for text, want in (("abc", [97, 256]), ("ab", [257]), ("abab", [257, 257]),
                       ("bcab", [256, 257])):
        got = tok.encode(text)
        expect(got == want, f"merges [(b, c), (a, b)]: encode({text!r}) expected {want}, got {got}",
               hint="in 'abc' both a+b and b+c are merges; b+c has the lower rank (learned "
                    "first), so it is applied first: not the leftmost pair, not the longest "
                    "token")


def test_encode_worked_example_in_steps():
    tok = trained("aaabdaaabac", 256 + 4)
    for piece, want in (("aaaa", [256, 256]), ("daaab", [259]), ("aaa", [257]),
                        ("caab", [99, 256, 98])):
        got = tok.encode_piece(piece)
        expect(got == want, f"encode_piece({piece!r}) with the worked example's merges: "
               f"expected {want}, got {got}",
               hint="repeat: find the adjacent pair with the lowest rank, merge it everywhere; "
                    "stop when no adjacent pair is a merge")


@given(small_texts, st.integers(0, 12), small_texts)
def test_encode_agrees_with_tiktoken_on_random_text(corpus, n, text):
    tok = trained(corpus, 256 + n)
    want = oracle_encoding(tok).encode_ordinary(text)
    got = tok.encode(text)
    expect(got == want, f"trained on {corpus!r} ({n} merges), encode({text!r}):\n  expected "
           f"{want} (tiktoken with your ranks)\n  got      {got}",
           hint="cut into pieces with GPT-2's pattern, then merge each piece's bytes by rank")


@given(st.lists(st.sampled_from(["hi", " there", EOT, "<|", "|>", "\n"]), max_size=12))
def test_encode_with_special_tokens_agrees_with_tiktoken(parts):
    tok = trained(("hi there" + EOT) * 10 + "<|x|>", 256 + 12, [EOT])
    text = "".join(parts)
    want = oracle_encoding(tok).encode(text, allowed_special="all")
    got = tok.encode(text)
    expect(got == want, f"encode({text!r}) with special token {EOT}:\n  expected {want}\n  got"
           f"      {got}",
           hint="a special token in the text is its own id, never split; the text between "
                "specials is encoded as usual")


def test_encode_agrees_with_tiktoken_on_shakespeare(shakespeare, shakespeare_tok):
    excerpt = shakespeare[-20_000:]  # text the tokenizer did not learn from
    want = oracle_encoding(shakespeare_tok).encode_ordinary(excerpt)
    got = shakespeare_tok.encode(excerpt)
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    expect(got == want,
           f"encode(the last 20,000 characters of Shakespeare): {len(got)} ids, tiktoken "
           f"{len(want)}; first difference at id {first}: expected {want[first:first + 6]}, got "
           f"{got[first:first + 6]}",
           hint="merge by rank within each piece; cache each distinct piece's ids")


@given(any_text)
def test_decode_undoes_encode_for_any_text(shakespeare_tok, text):
    ids = shakespeare_tok.encode(text)
    back = shakespeare_tok.decode(ids)
    expect(back == text, f"decode(encode({text!r})) gave {back!r}",
           hint="every string is bytes, and every byte is a token: nothing can be unknown")


@given(small_texts, small_texts)
def test_round_trip_with_a_tokenizer_trained_on_small_text(corpus, text):
    tok = trained(corpus, 256 + 10, [EOT])
    text = text + EOT + text
    back = tok.decode(tok.encode(text))
    expect(back == text, f"trained on {corpus!r}: decode(encode({text!r})) gave {back!r}")


def test_decode_joins_the_bytes_before_decoding():
    tok = BPETokenizer()
    ids = list("🙂é".encode())  # 4 + 2 byte tokens, each alone no valid UTF-8
    got = tok.decode(ids)
    expect(got == "🙂é", f"decode({ids}): expected '🙂é', got {got!r}",
           hint="b''.join(vocab[i] for i in ids).decode('utf-8', errors='replace'): a "
                "character's bytes may lie in several tokens")
    for ids in ([0xFF], [0xF0, 0x9F, 104]):  # not UTF-8; a character cut short
        want = bytes(ids).decode("utf-8", errors="replace")
        try:
            got = tok.decode(ids)
        except UnicodeDecodeError as err:
            pytest.fail(f"decode({ids}) raised {err!r}; a model can emit any ids: use "
                        "errors='replace'", pytrace=False)
        expect(got == want, f"decode({ids}): expected {want!r}, got {got!r}",
               hint="decode with errors='replace': invalid bytes become U+FFFD")


def test_an_unknown_id_is_a_clear_error():
    tok = BPETokenizer([(97, 98)])
    for ids, bad in (([97, 300], 300), ([-1], -1), ([257], 257)):
        try:
            text = tok.decode(ids)
        except ValueError as err:
            expect(str(bad) in str(err), f"decode({ids}) raised ValueError({str(err)!r}), "
                   f"which does not name {bad}")
            continue
        except (KeyError, IndexError) as err:
            pytest.fail(f"decode({ids}) raised {type(err).__name__}({err}); raise ValueError "
                        f"naming {bad}", pytrace=False)
        pytest.fail(f"decode({ids}) with ids 0..256 returned {text!r} instead of raising "
                    f"ValueError for {bad}", pytrace=False)


def test_bad_settings_are_clear_errors():
    not_bpe = "a BPE tokenizer's dict holds kind 'bpe', merges and special_tokens: say so"
    cases = [  # (call, error, what its message must contain, why)
        ("BPETokenizer.train('abc', 100)", ValueError, "100",
         "a vocabulary holds at least the 256 bytes"),
        ("BPETokenizer.train('abc', 256, [EOT])", ValueError, "256",
         "256 bytes plus one special token need vocab_size 257 or more"),
        ("BPETokenizer.train(['to', 'be'], 300)", TypeError, "list", "the corpus is one string"),
        ("BPETokenizer([(97, 300)])", ValueError, "300",
         "merge 0 makes id 256: it can only join ids 0..255"),
        ("BPETokenizer([(256, 97)])", ValueError, "256", "merge 0 makes id 256 itself"),
        ("BPETokenizer([(97, 98), (97, 257)])", ValueError, "257",
         "merge 1 makes id 257: it can only join ids 0..256"),
        ("BPETokenizer(special_tokens=[EOT, EOT])", ValueError, EOT,
         "each special token gets one id: given twice is an error"),
        ("BPETokenizer(special_tokens=[''])", ValueError, "", "an empty special token"),
        ("BPETokenizer.from_dict({'chars': ['a'], 'bos': False})", ValueError, "bpe",
         "that is a CharTokenizer's dict: check d.get('kind') == 'bpe'"),
        ("BPETokenizer.from_dict(['bpe'])", ValueError, "bpe", "a list is not a dict"),
        ("BPETokenizer.from_dict({'kind': 'bpe', 'special_tokens': []})", ValueError, "bpe",
         not_bpe),
        ("BPETokenizer.from_dict({'kind': 'bpe', 'merges': []})", ValueError, "bpe", not_bpe),
        ("BPETokenizer.from_dict({'kind': 'char', 'merges': [], 'special_tokens': []})",
         ValueError, "bpe", not_bpe),
    ]
    for call, error, shown, why in cases:
        try:
            got = eval(call, {"BPETokenizer": BPETokenizer, "EOT": EOT})
        except error as err:
            expect(shown.lower() in str(err).lower(), f"{call} raised {error.__name__}({err}), "
                   f"which does not say {shown!r}", hint=why)
            continue
        except Exception as err:  # any other exception is the wrong answer
            pytest.fail(f"{call} raised {type(err).__name__}({err}); expected {error.__name__}: "
                        f"{why}", pytrace=False)
        pytest.fail(f"{call} returned {got!r}; expected {error.__name__}: {why}", pytrace=False)


def test_every_byte_is_a_token_and_can_be_merged():
    tok = BPETokenizer([(0, 0), (255, 256)])
    want = {0: b"\x00", 255: b"\xff", 256: b"\x00\x00", 257: b"\xff\x00\x00"}
    got = {i: tok.vocab.get(i) for i in want}
    expect(got == want, f"BPETokenizer([(0, 0), (255, 256)]).vocab: expected {want}, got {got}",
           hint="ids 0..255 are all bytes, 0 and 255 included: a merge may join any id made "
                "before it")
    expect(repr(tok) == "BPETokenizer(vocab_size=258, merges=2)",
           f"repr of that tokenizer: {repr(tok)!r}", hint="keep the __repr__ you were given")


# --- saving, so that a checkpoint can carry it ---


@given(small_texts, st.integers(0, 12))
def test_to_dict_is_json_and_rebuilds_the_same_tokenizer(corpus, n):
    tok = trained(corpus, 256 + n + 1, [EOT])
    d = tok.to_dict()
    expect(isinstance(d, dict) and d.get("kind") == "bpe",
           f"to_dict() should be a dict with 'kind': 'bpe', got {str(d)[:120]}",
           hint="a checkpoint tells a BPE tokenizer from a CharTokenizer by this key")
    again = BPETokenizer.from_dict(json.loads(json.dumps(d)))
    expect((again.merges, again.vocab, again.special_tokens)
           == (tok.merges, tok.vocab, tok.special_tokens),
           f"from_dict(to_dict()) after training on {corpus!r}: merges {again.merges}, "
           f"specials {again.special_tokens}; expected {tok.merges}, {tok.special_tokens}",
           hint="JSON turns tuples into lists: rebuild each merge as a tuple")
    text = corpus + EOT
    expect(again.encode(text) == tok.encode(text), f"the rebuilt tokenizer encodes {text!r} "
           "differently")


def test_special_tokens_take_their_ids_in_the_order_given():
    names = ["<|endoftext|>", "<pad>", "<a>"]  # not in alphabetical order
    tok = BPETokenizer([(97, 97), (256, 97)], names)
    want = {"<|endoftext|>": 258, "<pad>": 259, "<a>": 260}
    expect(tok.special_tokens == want and list(tok.special_tokens) == names,
           f"BPETokenizer(2 merges, {names}).special_tokens is {tok.special_tokens}; expected "
           f"{want}, in that order", hint="give each special token the next id as it comes: "
           "do not sort them (sort only a copy, for split_specials' longest-first pattern)")
    d = tok.to_dict()
    expect(d.get("special_tokens") == names if isinstance(d, dict) else False,
           f"to_dict()['special_tokens'] is {d.get('special_tokens') if isinstance(d, dict) else d}"
           f", expected {names}", hint="list the names in the order given")


def test_to_dict_is_the_lesson_s_format():
    tok = BPETokenizer([(97, 97), (256, 98)], ["<|endoftext|>"])
    d = tok.to_dict()
    want = {"kind": "bpe", "merges": [[97, 97], [256, 98]], "special_tokens": ["<|endoftext|>"]}
    merges = d.get("merges") if isinstance(d, dict) else None
    as_lists = ([list(m) for m in merges] if isinstance(merges, (list, tuple))
                and all(isinstance(m, (list, tuple)) for m in merges) else merges)
    expect(isinstance(d, dict) and {**d, "merges": as_lists} == want
           and all(type(i) is int for m in as_lists for i in m),
           f"to_dict() of a tokenizer with merges [(97, 97), (256, 98)] and <|endoftext|>:\n"
           f"  expected {want}\n  got      {d}",
           hint="exactly the three keys: kind 'bpe', merges as [a, b] lists of ints in rank "
                "order, special_tokens as a list of the names (scripts read checkpoints by it)")


def test_encode_encodes_each_distinct_piece_once():
    tok = BPETokenizer([(ord(" "), ord("t")), (256, ord("o"))])
    calls = Counter()
    real = tok.encode_piece

    def counted(piece):
        calls[piece] += 1
        return real(piece)

    tok.encode_piece = counted  # an instance attribute: self.encode_piece finds it first
    text = "to be or not to be to be\n" * 50
    first, second = tok.encode(text), tok.encode(text)
    expect(first == second, "encoding the same text twice gave different ids")
    repeated = {piece: n for piece, n in calls.items() if n > 1}
    expect(not repeated, f"encode called encode_piece more than once for the same piece "
           f"(over two encodes of a text of {len(text)} characters): {repeated}",
           hint="keep a dict piece -> ids on the tokenizer (made in __init__) and call "
                "encode_piece only for a piece not in it yet")


def test_save_and_load(tmp_path, shakespeare_tok):
    path = tmp_path / "bpe.json"
    shakespeare_tok.save(path)
    try:
        json.loads(path.read_text())
    except ValueError as err:
        pytest.fail(f"save() wrote a file that is not JSON ({err})", pytrace=False)
    loaded = BPETokenizer.load(path)
    sample = "O Romeo, Romeo! wherefore art thou Romeo?\n"
    expect(loaded.encode(sample) == shakespeare_tok.encode(sample)
           and loaded.vocab_size == shakespeare_tok.vocab_size,
           f"after save/load: encode({sample!r}) gave {loaded.encode(sample)}, expected "
           f"{shakespeare_tok.encode(sample)}")
