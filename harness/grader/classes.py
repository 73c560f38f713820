"""A whole class: every learner's repository graded from the instructor's checkout.

    python -m harness.grade --class DIR     # DIR/<learner>/ is each learner's checkout
    python -m harness.grade --class FILE    # one clone URL a line (# comments), cloned first

Every learner is graded with the same trusted files (read once from this checkout), each kata
in its own sandbox, several learners at once. Writes OUT/gradebook.csv (one row per learner:
points per kata, total, flags, and why a repository could not be graded) and OUT/<learner>/
(the learner's own results.json, junit.xml, summary.md). A broken repository gets a row with
the reason; it never stops the class.
"""

from __future__ import annotations

import csv
import queue
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from harness.grader.learner import Grade, grade
from harness.grader.reports import write_reports
from harness.grader.run import Setup, data_files
from harness.grader.sandbox import Limits, Sandbox
from harness.grader.trusted import GradeError, Trusted
from harness.katas import Kata

CLONE_TIMEOUT = 300  # seconds for one `git clone`


@dataclass
class Learner:
    name: str
    path: Path | None
    problem: str = ""  # why the repository cannot be graded
    grade: Grade | None = None
    flags: list[str] = field(default_factory=list)


def learners_from(source: Path, work: Path) -> list[Learner]:
    """The learners of a directory of checkouts, or of a file of clone URLs (cloned into
    `work`)."""
    if source.is_dir():
        return [Learner(d.name, d) for d in sorted(source.iterdir())
                if d.is_dir() and not d.name.startswith(".")]
    if not source.is_file():
        raise GradeError(f"LEARNERS={source}: neither a directory of checkouts nor a file of "
                         "clone URLs")
    urls = [line.strip() for line in source.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    out, seen = [], set()
    for url in urls:
        name = re.sub(r"[^\w.-]", "_", url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1])
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(_clone(url, work / name, name))
    return out


def _clone(url: str, dest: Path, name: str) -> Learner:
    if dest.is_dir():
        return Learner(name, dest)  # cloned by an earlier run: grade what is there
    try:
        done = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--", url, str(dest)],
                              capture_output=True, text=True, timeout=CLONE_TIMEOUT,
                              env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        return Learner(name, None, f"git clone {url} took over {CLONE_TIMEOUT} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return Learner(name, None, f"git clone {url}: {last}")
    return Learner(name, dest)


def grade_class(trusted: Trusted, learners: list[Learner], out: Path, katas: list[Kata],
                limits: Limits, sandbox: Sandbox, jobs: int, impl: str = "katas") -> Path:
    """Grade every learner (`jobs` at a time); write the gradebook and each learner's reports."""
    slots: queue.Queue = queue.Queue()
    for n in range(max(1, jobs)):
        slots.put(n)
    data = data_files(trusted.root)

    def one(learner: Learner) -> Learner:
        if learner.path is None:
            return learner
        if not (learner.path / impl).is_dir() or (learner.path / impl).is_symlink():
            learner.problem = f"no {impl}/ directory: not a gpt-katas repository"
            return learner
        setup = Setup(trusted, learner.path, impl, limits, sandbox, 1, slots, data)
        try:
            learner.grade = grade(setup, katas, 1, f"class, learner {learner.name}")
            write_reports(learner.grade, out / learner.name)
        except Exception as err:  # one learner's trouble must not stop the class
            learner.problem = f"grading failed: {type(err).__name__}: {err}"
        return learner

    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, learner) for learner in learners]
        for _ in tqdm(as_completed(futures), total=len(futures), desc="grading the class",
                      unit="learner"):
            pass
    return write_gradebook(out / "gradebook.csv", learners, katas, trusted)


def write_gradebook(path: Path, learners: list[Learner], katas: list[Kata],
                    trusted: Trusted) -> Path:
    points = trusted.points
    maximum = sum(points.of(k) for k in katas)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["learner", *(k.dirname for k in katas), "total", "max", "flags",
                      "problem"])
        for learner in sorted(learners, key=lambda x: x.name):
            g = learner.grade
            if g is None:
                out.writerow([learner.name, *("" for _ in katas), 0, f"{maximum:g}",
                              "not graded", learner.problem])
                continue
            scores = {k.kata.dirname: k.score for k in g.katas}
            out.writerow([learner.name, *(f"{scores.get(k.dirname, 0):g}" for k in katas),
                          f"{g.score:g}", f"{g.max_score:g}", "; ".join(g.flags()),
                          learner.problem])
    return path
