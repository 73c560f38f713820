"""Kata 20, given code: tasks whose answers a program can check, built from names.txt.

Two kinds of prompt, each with exactly one right answer:

    "reverse olivia"        -> "aivilo"
    "count a in isabella"   -> "2"   (the count in decimal digits; "0" when the letter is absent)

Post-training needs such tasks: SFT shows the model correct answers, and RL (kata 22) rewards
the model for its own answers, which only works when a program can grade them. Accuracy is
reported on held-out names only: names the model never saw in training.
Given code, the same in katas/ and solutions/: the kata's work is in sft.py. No torch here.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "  # every character a prompt or answer uses
KINDS = ("reverse", "count")  # the task kinds
LETTERS = string.ascii_lowercase
ABSENT = 0.25  # how often a "count" task asks for a letter that is not in the name


@dataclass(frozen=True)
class Task:
    kind: str  # "reverse" | "count"
    prompt: str  # "reverse olivia" | "count a in isabella"
    answer: str  # "aivilo" | "2"


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name or any(c not in LETTERS for c in name):
        raise ValueError(f"a name is one or more lowercase letters a-z, got name={name!r}")


def split_names(names: Sequence[str], held_out: float = 0.1,
                seed: int = 0) -> tuple[list[str], list[str]]:
    """Split the unique names into (train, held_out), both sorted, never sharing a name.

    The same names, fraction and seed always give the same split: the unique names are sorted,
    shuffled by random.Random(seed), and the first round(held_out * count) are held out.
    """
    if not (isinstance(held_out, (int, float)) and 0 <= held_out < 1):
        raise ValueError(f"held_out is a fraction in [0, 1), got held_out={held_out!r}")
    unique = sorted(set(names))
    for name in unique:
        check_name(name)
    random.Random(seed).shuffle(unique)
    n_held = round(held_out * len(unique))
    return sorted(unique[n_held:]), sorted(unique[:n_held])


def make_task(kind: str, name: str, rng: random.Random) -> Task:
    """One task about `name`. For "count" the letter is one of the name's own letters, or
    (with probability ABSENT) a letter the name does not have, so that "0" is an answer too."""
    check_name(name)
    if kind == "reverse":
        return Task(kind, f"reverse {name}", name[::-1])
    if kind == "count":
        absent = [c for c in LETTERS if c not in name]
        pool = absent if absent and rng.random() < ABSENT else sorted(set(name))
        letter = rng.choice(pool)
        return Task(kind, f"count {letter} in {name}", str(name.count(letter)))
    raise ValueError(f"kind must be one of {KINDS}, got kind={kind!r}")


def make_tasks(names: Sequence[str], n: int, seed: int = 0,
               kinds: Sequence[str] = KINDS) -> list[Task]:
    """n tasks: the kinds take turns, each name is drawn by random.Random(seed) from `names`.
    The same arguments always give the same tasks."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got n={n!r}")
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got kinds={kinds!r}")
    names = list(names)
    if n and not names:
        raise ValueError("names is empty: there is nothing to make tasks from")
    rng = random.Random(seed)
    return [make_task(kinds[i % len(kinds)], rng.choice(names), rng) for i in range(n)]


def is_correct(task: Task, reply: str) -> bool:
    """Exact match, ignoring surrounding whitespace: "aivilo " is right, "Aivilo" is not."""
    return isinstance(reply, str) and reply.strip() == task.answer


def accuracy(tasks: Sequence[Task], replies: Sequence[str]) -> dict[str, float]:
    """Fraction of correct replies per kind (only the kinds present) and over "all"."""
    if len(tasks) != len(replies):
        raise ValueError(f"one reply per task: got {len(tasks)} tasks and "
                         f"{len(replies)} replies")
    if not tasks:
        raise ValueError("accuracy of no tasks is undefined: tasks is empty")
    right: dict[str, list[bool]] = {}
    for task, reply in zip(tasks, replies):
        right.setdefault(task.kind, []).append(is_correct(task, reply))
    scores = {kind: sum(marks) / len(marks) for kind, marks in right.items()}
    every = [mark for marks in right.values() for mark in marks]
    scores["all"] = sum(every) / len(every)
    return scores
