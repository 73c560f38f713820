"""Specs for kata 02. Oracles: closed forms (an id is the character's position in
sorted(set(corpus))), ids worked by hand, and the known sizes of the two data sets."""

import json
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizer import CharTokenizer

from harness.checks import expect

corpora = st.text(min_size=1, max_size=40)


@st.composite
def corpus_and_text(draw):
    """A corpus, and a string made only of the corpus's characters (maybe empty)."""
    corpus = draw(corpora)
    text = "".join(draw(st.lists(st.sampled_from(sorted(set(corpus))), max_size=30)))
    return corpus, text


def sorted_ids(corpus: str) -> dict[str, int]:
    """The oracle: each character's id is its position in the sorted vocabulary."""
    return {ch: i for i, ch in enumerate(sorted(set(corpus)))}


# --- the worked example from the lesson ---


def test_worked_example_vocabulary():
    tok = CharTokenizer("hello world")
    expect(tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"],
           f"CharTokenizer('hello world').chars: expected [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'],"
           f" got {tok.chars!r}",
           hint="chars = sorted(set(text)): each distinct character once, in sorted order "
                "(the space sorts first)")
    want_stoi = {" ": 0, "d": 1, "e": 2, "h": 3, "l": 4, "o": 5, "r": 6, "w": 7}
    expect(tok.stoi == want_stoi, f"stoi: expected {want_stoi}, got {tok.stoi!r}",
           hint="stoi maps each character to its position in chars")
    want_itos = {i: ch for ch, i in want_stoi.items()}
    expect(tok.itos == want_itos, f"itos: expected {want_itos}, got {tok.itos!r}",
           hint="itos is stoi turned around: id -> character")
    expect(tok.vocab_size == 8 and tok.bos_id is None,
           f"without bos: expected vocab_size 8 and bos_id None, got {tok.vocab_size} and "
           f"{tok.bos_id!r}", hint="bos defaults to False: no extra id")


def test_worked_example_encode_and_decode():
    tok = CharTokenizer("hello world")
    ids = tok.encode("hello")
    expect(ids == [3, 2, 4, 4, 5], f"encode('hello'): expected [3, 2, 4, 4, 5], got {ids!r}",
           hint="one id per character, read from stoi (h=3, e=2, l=4, o=5)")
    expect(all(type(i) is int for i in ids), f"encode should return plain ints, got {ids!r}")
    text = tok.decode([7, 5, 6, 4, 1])
    expect(text == "world", f"decode([7, 5, 6, 4, 1]): expected 'world', got {text!r}",
           hint="one character per id, read from itos, joined into one string")


def test_decode_takes_any_iterable_of_ids():
    tok = CharTokenizer("hello world")
    for ids, want in (((3, 2, 4, 4, 5), "hello"), (iter([3, 2, 4, 4, 5]), "hello"),
                      (range(3, 4), "h")):
        got = tok.decode(ids)
        expect(got == want, f"decode({ids!r}): expected {want!r}, got {got!r}",
               hint="walk the ids once with a for loop; a generator cannot be read twice")


# --- ids are a property of the vocabulary, not of the corpus's order ---


def test_ids_do_not_depend_on_first_seen_order():
    want = {"a": 0, "b": 1, "c": 2}
    for corpus in ("abc", "cab", "bca", "ccbbaa"):
        got = CharTokenizer(corpus).stoi
        expect(got == want, f"CharTokenizer({corpus!r}).stoi: expected {want}, got {got}",
               hint="number the characters in sorted order, not in the order they first "
                    "appear: then every corpus with the same characters gives the same ids")


@given(st.data())
def test_any_reordering_of_the_corpus_gives_the_same_ids(data):
    corpus = data.draw(corpora)
    shuffled = "".join(data.draw(st.permutations(list(corpus))))
    a, b = CharTokenizer(corpus).stoi, CharTokenizer(shuffled).stoi
    expect(a == b == sorted_ids(corpus),
           f"stoi for {corpus!r} and its reordering {shuffled!r}:\n  expected {sorted_ids(corpus)}"
           f"\n  got      {a} and {b}",
           hint="ids must come from sorted(set(text)), whatever order the characters come in")


@given(corpora)
def test_ids_are_positions_in_the_sorted_vocabulary(corpus):
    tok = CharTokenizer(corpus)
    oracle = sorted_ids(corpus)
    want = [oracle[ch] for ch in corpus]
    got = tok.encode(corpus)
    expect(got == want, f"encode({corpus!r}): expected {want}, got {got}",
           hint="an id is the character's index in sorted(set(corpus))")
    expect(tok.itos == {i: ch for ch, i in oracle.items()},
           f"itos for {corpus!r}: expected {({i: ch for ch, i in oracle.items()})}, got {tok.itos}",
           hint="itos[i] is the character whose id is i")


@given(corpus_and_text(), st.booleans())
def test_decode_undoes_encode(case, bos):
    corpus, text = case
    tok = CharTokenizer(corpus, bos=bos)
    ids = tok.encode(text)
    back = tok.decode(ids)
    expect(back == text, f"decode(encode({text!r})) with corpus {corpus!r}: got back {back!r}",
           hint="encode and decode must be exact inverses for any string over the vocabulary")


# --- BOS: one extra id, the last one ---


@given(corpus_and_text())
def test_bos_is_one_extra_id_after_the_characters(case):
    corpus, text = case
    tok = CharTokenizer(corpus, bos=True)
    n = len(set(corpus))
    expect(tok.bos_id == n and tok.vocab_size == n + 1,
           f"CharTokenizer({corpus!r}, bos=True): {n} characters, so expected bos_id {n} and "
           f"vocab_size {n + 1}; got bos_id {tok.bos_id!r}, vocab_size {tok.vocab_size!r}",
           hint="the characters keep ids 0..n-1 and BOS takes the next one, n")
    expect(tok.stoi == sorted_ids(corpus),
           f"stoi with bos=True: expected {sorted_ids(corpus)}, got {tok.stoi}",
           hint="BOS does not change the characters' ids, and it is not a character in stoi")
    wrapped = [tok.bos_id, *tok.encode(text), tok.bos_id]
    got = tok.decode(wrapped)
    expect(got == text, f"decode({wrapped}) (BOS + {text!r} + BOS): expected {text!r}, got {got!r}",
           hint="decode leaves the BOS id out: it marks a boundary, it is not text")


def test_without_bos_there_is_no_bos_id():
    tok = CharTokenizer("abc")
    expect(tok.bos_id is None and tok.vocab_size == 3,
           f"CharTokenizer('abc'): expected bos_id None and vocab_size 3, got {tok.bos_id!r} "
           f"and {tok.vocab_size!r}", hint="only bos=True adds the extra id")


# --- the two data sets of the ladder ---


def test_tiny_shakespeare_has_65_characters(shakespeare):
    tok = CharTokenizer(shakespeare)
    expect(tok.vocab_size == 65 and tok.bos_id is None,
           f"tiny Shakespeare: expected 65 ids and no BOS, got vocab_size {tok.vocab_size}, "
           f"bos_id {tok.bos_id!r}", hint="newline and space count as characters too")
    # Frozen: ids of sorted(set(tiny Shakespeare)), where '\n' = 0, ' ' = 1, 'a' = 39.
    ids = tok.encode("hii there")
    want = [46, 47, 47, 1, 58, 46, 43, 56, 43]
    expect(ids == want, f"encode('hii there') on tiny Shakespeare: expected {want}, got {ids}",
           hint="sorted order puts '\\n' and ' ' first, then punctuation, 'A'..'Z', 'a'..'z'")
    expect(tok.decode(tok.encode(shakespeare)) == shakespeare,
           "decode(encode(tiny Shakespeare)) is not the original text",
           hint="every character must survive the round trip, newlines included")


def test_names_have_26_letters_and_bos(names):
    tok = CharTokenizer("".join(names), bos=True)
    letters = {ch: i for i, ch in enumerate(string.ascii_lowercase)}
    expect(tok.vocab_size == 27 and tok.bos_id == 26,
           f"names with bos=True: expected vocab_size 27 and bos_id 26, got {tok.vocab_size} "
           f"and {tok.bos_id!r}", hint="26 letters get ids 0..25 and BOS is the last id, 26")
    expect(tok.stoi == letters, f"names: expected a..z = 0..25, got {tok.stoi}")
    ids = tok.encode("emma")
    expect(ids == [4, 12, 12, 0], f"encode('emma'): expected [4, 12, 12, 0], got {ids}")


# --- bad input is a clear error ---


def test_an_unknown_character_is_an_error_naming_it_and_its_position():
    tok = CharTokenizer(string.ascii_lowercase, bos=True)
    with pytest.raises(ValueError) as info:
        ids = tok.encode("françoise")
        pytest.fail(f"encode('françoise') over a..z returned {ids} instead of raising "
                    "ValueError: 'ç' is not in the vocabulary and must not be dropped silently")
    message = str(info.value)
    expect("ç" in message and re.search(r"\b4\b", message) is not None,
           f"encode('françoise') raised ValueError({message!r}); the message should name the "
           f"character 'ç' and its position 4",
           hint="e.g. \"character 'ç' at position 4 is not in the vocabulary\"")


def test_an_unknown_character_is_a_value_error_not_a_key_error():
    tok = CharTokenizer("ab")
    try:
        tok.encode("abc")
    except ValueError:
        return
    except KeyError as err:
        pytest.fail(f"encode('abc') over vocabulary 'ab' raised KeyError({err}). Catch the "
                    "missing character and raise ValueError with a message that names it.")
    pytest.fail("encode('abc') over vocabulary 'ab' did not raise: 'c' was dropped or invented")


def test_an_unknown_id_is_an_error():
    tok = CharTokenizer("abc", bos=True)  # ids 0..3, BOS = 3
    for ids, bad in (([0, 1, 99], 99), ([0, -1], -1), ([4], 4)):
        try:
            text = tok.decode(ids)
        except ValueError as err:
            expect(str(bad) in str(err),
                   f"decode({ids}) raised ValueError({str(err)!r}), which does not name {bad}",
                   hint="say which id was wrong, e.g. 'id 99 at position 2 is not in the "
                        "vocabulary'")
            continue
        except (KeyError, IndexError) as err:
            pytest.fail(f"decode({ids}) raised {type(err).__name__}({err}). Check the id first "
                        f"and raise ValueError with a message that names {bad}.", pytrace=False)
        pytest.fail(f"decode({ids}) with ids 0..3 returned {text!r} instead of raising "
                    f"ValueError: {bad} is not an id (a list lookup accepts -1 as the last item)",
                    pytrace=False)


def test_the_corpus_must_be_one_string():
    with pytest.raises(TypeError) as info:
        CharTokenizer(["emma", "olivia", "ava"])
    expect("join" in str(info.value),
           f"CharTokenizer(a list) raised TypeError({str(info.value)!r}); say how to fix it",
           hint="a list of names would make each whole name one token: suggest ''.join(names)")
    with pytest.raises(TypeError) as info:
        CharTokenizer(("emma", "ava"))
    expect("tuple" in str(info.value),
           f"CharTokenizer(a tuple) raised TypeError({str(info.value)!r}), which does not say "
           "what it got", hint="name the type it was given: type(text).__name__")


def test_an_empty_corpus_is_an_error():
    with pytest.raises(ValueError) as info:
        CharTokenizer("")
    expect("empty" in str(info.value).lower(),
           f"CharTokenizer('') raised ValueError({str(info.value)!r}), which does not say the "
           "corpus is empty", hint="e.g. 'CharTokenizer needs a non-empty corpus'")


def test_from_dict_of_something_else_is_a_clear_error():
    for bad in ({"characters": ["a"], "bos": False}, ["a", "b"]):
        with pytest.raises(ValueError) as info:
            CharTokenizer.from_dict(bad)
        expect("chars" in str(info.value) and "bos" in str(info.value),
               f"from_dict({bad!r}) raised ValueError({str(info.value)!r}), which does not name "
               "the keys it needs", hint="catch the KeyError/TypeError and raise a ValueError "
               "that says a dict from to_dict() has 'chars' and 'bos'")


# --- the vocabulary saves and loads, so a checkpoint can carry it ---


@given(corpus_and_text(), st.booleans())
def test_to_dict_is_json_and_rebuilds_the_same_tokenizer(case, bos):
    corpus, text = case
    tok = CharTokenizer(corpus, bos=bos)
    d = json.loads(json.dumps(tok.to_dict()))  # must survive a trip through JSON
    again = CharTokenizer.from_dict(d)
    expect((again.chars, again.stoi, again.bos_id, again.vocab_size)
           == (tok.chars, tok.stoi, tok.bos_id, tok.vocab_size),
           f"from_dict(to_dict()) for corpus {corpus!r}, bos={bos}: expected chars {tok.chars}, "
           f"bos_id {tok.bos_id}; got chars {again.chars}, bos_id {again.bos_id}",
           hint="to_dict must hold everything needed: the characters and whether there is BOS")
    expect(again.encode(text) == tok.encode(text),
           f"the rebuilt tokenizer encodes {text!r} differently")


def test_save_and_load_give_a_tokenizer_that_encodes_identically(tmp_path, names, shakespeare):
    for corpus, bos, sample in (("".join(names), True, "olivia"),
                                (shakespeare, False, "O Romeo, Romeo!\nwherefore art thou")):
        tok = CharTokenizer(corpus, bos=bos)
        path = tmp_path / "vocab.json"
        tok.save(path)
        try:
            json.loads(path.read_text())
        except ValueError as err:
            pytest.fail(f"save() wrote a file that is not JSON ({err}); use json.dumps")
        loaded = CharTokenizer.load(path)
        expect(loaded.encode(sample) == tok.encode(sample) and loaded.bos_id == tok.bos_id
               and loaded.vocab_size == tok.vocab_size,
               f"after save/load: encode({sample!r}) gave {loaded.encode(sample)}, bos_id "
               f"{loaded.bos_id}, vocab_size {loaded.vocab_size}; expected {tok.encode(sample)}, "
               f"{tok.bos_id}, {tok.vocab_size}",
               hint="load must rebuild exactly the vocabulary that was saved")
