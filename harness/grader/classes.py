"""A whole class: every learner's repository graded from the instructor's checkout.

    python -m harness.grade --class DIR     # DIR/<learner>/ is each learner's checkout
    python -m harness.grade --class FILE    # one clone URL a line (# comments), cloned first

Every learner is graded with the same trusted files (read once from this checkout), each kata
in its own sandbox, several learners at once. Writes OUT/gradebook.csv (one row per learner:
points per kata, total, flags, and why a repository could not be graded) and
OUT/learners/<folder>/ (the learner's own results.json, junit.xml, summary.md). A broken
repository gets a row with the reason; it never stops the class.

A learner's name (a directory's or a clone URL's) is never trusted: the folder is a name the
grader makes from it (letters, digits, `.`, `_` and `-`, unique in the class, under
OUT/learners/ or OUT/repositories/ only), and every text cell of the gradebook that a
spreadsheet would read as a formula (starting with = + - @, a tab or a carriage return) is
prefixed with a quote, as OWASP's CSV-injection advice says.
"""

from __future__ import annotations

import csv
import os
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
REPORTS = "learners"  # OUT/learners/<folder>/: each learner's reports
CLONES = "repositories"  # OUT/repositories/<folder>/: the clones
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet reads as a formula
NAME_CAP = 64  # characters of a folder name


@dataclass
class Learner:
    name: str  # as given (a directory's or a URL's name): shown, never used as a path
    path: Path | None
    problem: str = ""  # why the repository cannot be graded
    grade: Grade | None = None
    flags: list[str] = field(default_factory=list)
    folder: str = ""  # the grader's name for this learner's files (unique in the class)


def folder_name(name: str, taken: set[str]) -> str:
    """A name for a learner's folder made from `name`: letters, digits, `.`, `_`, `-` only,
    not starting with `.` or `-`, at most NAME_CAP characters, not in `taken` (added to it)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:NAME_CAP].lstrip(".-") or "learner"
    folder, n = base, 1
    while folder.lower() in taken:
        n += 1
        folder = f"{base[: NAME_CAP - 4]}-{n}"
    taken.add(folder.lower())
    return folder


def cell(value) -> str:
    """A gradebook cell: text a spreadsheet would run as a formula is prefixed with a quote."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def learners_from(source: Path, work: Path) -> list[Learner]:
    """The learners of a directory of checkouts, or of a file of clone URLs (cloned into
    `work`, each in the folder the grader names)."""
    taken: set[str] = set()
    if source.is_dir():
        return [
            Learner(d.name, d, folder=folder_name(d.name, taken))
            for d in sorted(source.iterdir())
            if d.is_dir() and not d.name.startswith(".")
        ]
    if not source.is_file():
        raise GradeError(
            f"LEARNERS={source}: neither a directory of checkouts nor a file of clone URLs"
        )
    urls = [
        line.strip()
        for line in source.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    out = []
    for url in urls:
        name = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1] or url
        folder = folder_name(name, taken)
        learner = _clone(url, work / folder, name)
        learner.folder = folder
        out.append(learner)
    return out


def _clone(url: str, dest: Path, name: str) -> Learner:
    if dest.is_dir() and not dest.is_symlink():
        return Learner(name, dest)  # cloned by an earlier run: grade what is there
    try:
        done = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--", url, str(dest)],
            capture_output=True,
            text=True,
            timeout=CLONE_TIMEOUT,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
        )
    except subprocess.TimeoutExpired:
        return Learner(name, None, f"git clone {url} took over {CLONE_TIMEOUT} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return Learner(name, None, f"git clone {url}: {last}")
    return Learner(name, dest)


def grade_class(
    trusted: Trusted,
    learners: list[Learner],
    out: Path,
    katas: list[Kata],
    limits: Limits,
    sandbox: Sandbox,
    jobs: int,
    impl: str = "katas",
) -> Path:
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
            write_reports(learner.grade, out / REPORTS / learner.folder)
        except Exception as err:  # one learner's trouble must not stop the class
            learner.problem = f"grading failed: {type(err).__name__}: {err}"
        return learner

    taken: set[str] = set()
    for learner in learners:  # every learner has a folder of the grader's naming
        learner.folder = folder_name(learner.folder or learner.name, taken)
    (out / REPORTS).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, learner) for learner in learners]
        for _ in tqdm(
            as_completed(futures), total=len(futures), desc="grading the class", unit="learner"
        ):
            pass
    return write_gradebook(out / "gradebook.csv", learners, katas, trusted)


def write_gradebook(
    path: Path, learners: list[Learner], katas: list[Kata], trusted: Trusted
) -> Path:
    points = trusted.points
    maximum = sum(points.of(k) for k in katas)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["learner", *(k.dirname for k in katas), "total", "max", "flags", "problem", "reports"]
        )
        for learner in sorted(learners, key=lambda x: (x.name, x.folder)):
            g = learner.grade
            reports = f"{REPORTS}/{learner.folder}" if g is not None else ""
            if g is None:
                row = [
                    learner.name,
                    *("" for _ in katas),
                    0,
                    f"{maximum:g}",
                    "not graded",
                    learner.problem,
                    reports,
                ]
            else:
                scores = {k.kata.dirname: k.score for k in g.katas}
                row = [
                    learner.name,
                    *(f"{scores.get(k.dirname, 0):g}" for k in katas),
                    f"{g.score:g}",
                    f"{g.max_score:g}",
                    "; ".join(g.flags()),
                    learner.problem,
                    reports,
                ]
            out.writerow([cell(c) for c in row])
    os.replace(tmp, path)
    return path
