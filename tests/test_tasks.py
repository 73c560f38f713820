"""Kata 20's given tasks module (katas/20_sft/tasks.py = solutions/20_sft/tasks.py): the
verifiable tasks of the post-training track. Answers are checked against an independent
reading of each prompt (a regular expression, then reversed() and a character count)."""

from __future__ import annotations

import random
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tasks import ALPHABET, KINDS, Task, accuracy, is_correct, make_task, make_tasks, split_names

from harness import katas

names_strategy = st.lists(
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=12), min_size=1, max_size=40
)


def independent_answer(prompt: str) -> str:
    """Read the prompt as a person would and answer it without the module's code."""
    if m := re.fullmatch(r"reverse ([a-z]+)", prompt):
        return "".join(reversed(m.group(1)))
    if m := re.fullmatch(r"count ([a-z]) in ([a-z]+)", prompt):
        letter, name = m.groups()
        return str(sum(1 for c in name if c == letter))
    raise AssertionError(f"a prompt of neither form: {prompt!r}")


def test_stub_and_solution_copies_are_the_same_given_code():
    kata = katas.find_kata("20")
    stub = (kata.path("katas") / "tasks.py").read_text()
    solution = (kata.path("solutions") / "tasks.py").read_text()
    assert stub == solution, "tasks.py is given code: katas/ and solutions/ must hold one text"


@given(names=names_strategy, n=st.integers(0, 30), seed=st.integers(0, 10**6))
def test_every_answer_is_right_and_every_character_is_in_the_alphabet(names, n, seed):
    tasks = make_tasks(names, n, seed=seed)
    assert len(tasks) == n and all(type(t) is Task for t in tasks)
    for task in tasks:
        assert task.answer == independent_answer(task.prompt), task
        assert task.prompt.split()[-1] in names, task
        assert set(task.prompt + task.answer) <= set(ALPHABET), task


@given(names=names_strategy, seed=st.integers(0, 10**6))
def test_kinds_take_turns(names, seed):
    tasks = make_tasks(names, 7, seed=seed)
    assert [t.kind for t in tasks] == [KINDS[i % len(KINDS)] for i in range(7)]
    assert all(t.prompt.startswith(t.kind + " ") for t in tasks)
    assert {t.kind for t in make_tasks(names, 5, seed=seed, kinds=("count",))} == {"count"}


def test_the_same_arguments_give_the_same_tasks():
    names = ["isabella", "olivia", "ada", "noah", "emma", "liam"]
    assert make_tasks(names, 50, seed=3) == make_tasks(names, 50, seed=3)
    assert make_tasks(names, 50, seed=3) != make_tasks(names, 50, seed=4)
    rng_a, rng_b = random.Random(9), random.Random(9)
    assert [make_task("count", "isabella", rng_a) for _ in range(20)] == [
        make_task("count", "isabella", rng_b) for _ in range(20)
    ]


def test_the_worked_examples():
    assert make_task("reverse", "olivia", random.Random(0)) == Task(
        "reverse", "reverse olivia", "aivilo"
    )
    counts = {make_task("count", "isabella", random.Random(s)) for s in range(200)}
    assert Task("count", "count a in isabella", "2") in counts
    assert Task("count", "count l in isabella", "2") in counts
    assert Task("count", "count i in isabella", "1") in counts


def test_count_asks_for_absent_letters_sometimes():
    rng = random.Random(0)
    tasks = [make_task("count", "isabella", rng) for _ in range(2000)]
    absent = sum(t.answer == "0" for t in tasks) / len(tasks)
    assert 0.15 < absent < 0.35, f"{absent:.3f} of the count tasks ask for a letter not there"
    assert {t.prompt.split()[1] for t in tasks} > set("isabel"), "every letter of the name"


@given(
    names=st.lists(st.text(alphabet="abc", min_size=1, max_size=5), max_size=60),
    held_out=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]),
    seed=st.integers(0, 100),
)
def test_split_is_deterministic_disjoint_and_complete(names, held_out, seed):
    train, held = split_names(names, held_out=held_out, seed=seed)
    assert (train, held) == split_names(list(reversed(names)), held_out=held_out, seed=seed)
    assert not set(train) & set(held), "a name in both halves"
    assert sorted(train + held) == sorted(set(names)), "every unique name exactly once"
    assert train == sorted(train) and held == sorted(held)
    assert len(held) == round(held_out * len(set(names)))


def test_split_of_names_txt(names):
    train, held = split_names(names)
    # 32,033 lines, 29,494 unique names: round(0.1 * 29,494) = 2,949 held out.
    assert (len(train), len(held)) == (26_545, 2_949)
    assert split_names(names, seed=1) != (train, held), "the seed changes the split"
    seen = {t.prompt.split()[-1] for t in make_tasks(train, 500, seed=0)}
    assert not seen & set(held), "training tasks use held-out names"


def test_is_correct_is_an_exact_match():
    task = Task("count", "count a in isabella", "2")
    assert is_correct(task, "2") and is_correct(task, " 2\n")
    for wrong in ("02", "2.0", "two", "", "2 2", "3"):
        assert not is_correct(task, wrong), wrong
    reverse = Task("reverse", "reverse olivia", "aivilo")
    assert is_correct(reverse, "aivilo") and not is_correct(reverse, "Aivilo")
    assert not is_correct(reverse, None)


def test_accuracy_per_kind_and_over_all():
    tasks = [
        Task("reverse", "reverse ada", "ada"),
        Task("reverse", "reverse bo", "ob"),
        Task("count", "count a in ada", "2"),
        Task("count", "count z in ada", "0"),
    ]
    got = accuracy(tasks, ["ada", "bo", "2", " 0 "])
    assert got == {"reverse": 0.5, "count": 1.0, "all": 0.75}
    assert accuracy(tasks[2:], ["1", "1"]) == {"count": 0.0, "all": 0.0}
    with pytest.raises(ValueError, match="reply"):
        accuracy(tasks, ["ada"])
    with pytest.raises(ValueError):
        accuracy([], [])


@pytest.mark.parametrize(
    "call",
    [
        lambda: make_task("length", "ada", random.Random(0)),
        lambda: make_task("reverse", "Ada", random.Random(0)),
        lambda: make_task("count", "", random.Random(0)),
        lambda: make_tasks(["ada"], -1),
        lambda: make_tasks(["ada"], 2, kinds=("reverse", "spell")),
        lambda: make_tasks([], 1),
        lambda: split_names(["ada"], held_out=1.0),
    ],
    ids=[
        "unknown kind",
        "capital letter",
        "empty name",
        "negative n",
        "unknown kinds",
        "no names",
        "held_out 1",
    ],
)
def test_bad_input_is_a_value_error(call):
    with pytest.raises(ValueError):
        call()
