"""Grade a learner's katas: each kata's canonical specs, in a sandbox, scored.

    python -m harness.grade                    # katas/ -> grade/results.json, junit.xml, summary.md
    python -m harness.grade --kata 03          # one kata
    python -m harness.grade --impl solutions   # the reference (full marks, or something is wrong)
    python -m harness.grade --hidden-specs DIR # add an instructor's specs: DIR/NN_name/test_*.py
    python -m harness.grade --learner DIR      # this tree's grader and specs, DIR's kata modules
    python -m harness.grade --trusted-ref REF  # the grader and specs of git REF, not the work tree
    python -m harness.grade --class DIR|FILE   # every learner's checkout (or clone URL)
    python -m harness.grade --strict           # exit 1 unless every spec passes
    python -m harness.grade --update-manifest  # maintainers: rewrite harness/manifest.json and
                                               # .github/classroom/autograding.json

The parts are in harness/grader/ (its __init__ lists them); docs/grading.md has the trust model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.grader.classes import CLONES, grade_class, learners_from
from harness.grader.learner import Grade, grade
from harness.grader.manifest import update_manifest
from harness.grader.reports import write_reports
from harness.grader.run import Setup, data_files
from harness.grader.sandbox import UID_RANGE, Limits, find_sandbox
from harness.grader.trusted import (
    CLASSROOM,
    MANIFEST,
    UPDATE_COMMAND,
    GradeError,
    Trusted,
    load_trusted,
    trusted_tree,
)
from harness.katas import ROOT, Kata


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.grade", description=__doc__.split("\n")[0])
    p.add_argument(
        "--kata",
        "-k",
        action="append",
        default=[],
        help="grade only this kata (number or name); repeat for more",
    )
    p.add_argument(
        "--impl",
        choices=("katas", "solutions"),
        default="katas",
        help="grade the learner's code (katas, the default) or the reference",
    )
    p.add_argument(
        "--hidden-specs", type=Path, help="an extra spec directory: DIR/NN_name/test_*.py"
    )
    p.add_argument("--learner", type=Path, help="grade the kata modules of this checkout")
    p.add_argument("--trusted-ref", help="take the grader and the specs from this git ref")
    p.add_argument(
        "--class",
        dest="klass",
        type=Path,
        metavar="DIR|FILE",
        help="grade a class: a directory of learners' checkouts, or a file of clone URLs",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="where the reports go (default grade/, or grade-class/ with --class)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 unless every spec passes")
    p.add_argument(
        "--sandbox",
        choices=("auto", "bwrap", "none"),
        default="auto",
        help="auto: bubblewrap where it works, else run plainly and say so (default); "
        "bwrap: refuse to grade without it",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        help="katas graded at once (default 2), or with "
        "--class, learners graded at once (default: one per core)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=Limits.test_timeout,
        help="seconds one spec may run (default %(default)g)",
    )
    p.add_argument(
        "--kata-timeout",
        type=float,
        default=Limits.kata_timeout,
        help="seconds one kata may take in all (default %(default)g)",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=Limits.memory >> 20,
        help="address space of a kata's process, MiB (default %(default)d)",
    )
    p.add_argument("--mode", help=argparse.SUPPRESS)  # set by --trusted-ref for its child
    p.add_argument(
        "--update-manifest",
        action="store_true",
        help=f"maintainers: rewrite {MANIFEST} and {CLASSROOM} (with --hidden-specs: "
        "DIR/manifest.json)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.update_manifest:
            for path in update_manifest(ROOT, args.hidden_specs):
                print(f"wrote {path}")
            return 0
        if args.trusted_ref:
            return _run_trusted_grader(args)
        return _grade(args)
    except GradeError as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2


def _run_trusted_grader(args) -> int:
    """Extract git `--trusted-ref` and run *its* grader, on this tree's kata modules: nothing
    of this tree but the modules is used, not even this file."""
    learner = (args.learner or ROOT).resolve()
    forwarded = [
        "--learner",
        str(learner),
        "--out",
        str((args.out or ROOT / "grade").resolve()),
        "--impl",
        args.impl,
        "--sandbox",
        args.sandbox,
        *(["--jobs", str(args.jobs)] if args.jobs else []),
        "--timeout",
        f"{args.timeout:g}",
        "--kata-timeout",
        f"{args.kata_timeout:g}",
        "--memory-mb",
        str(args.memory_mb),
        "--mode",
        f"trusted ref {args.trusted_ref}",
        *(a for k in args.kata for a in ("--kata", k)),
        *(["--strict"] if args.strict else []),
        *(["--hidden-specs", str(args.hidden_specs.resolve())] if args.hidden_specs else []),
    ]
    with tempfile.TemporaryDirectory(prefix="gpt-katas-trusted-") as tmp:
        tree = trusted_tree(ROOT, args.trusted_ref, Path(tmp))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return subprocess.run(
            [sys.executable, "-E", "-s", "-m", "harness.grade", *forwarded], cwd=tree, env=env
        ).returncode


def _grade(args) -> int:
    trusted = load_trusted(ROOT, args.hidden_specs.resolve() if args.hidden_specs else None)
    sandbox = find_sandbox(args.sandbox)
    if sandbox.kind == "missing":
        raise GradeError(f"--sandbox bwrap: {sandbox.why}")
    limits = Limits(args.timeout, args.kata_timeout, args.memory_mb << 20)
    cores = os.cpu_count() or 1
    jobs = min(UID_RANGE, max(1, args.jobs or (cores if args.klass is not None else min(2, cores))))
    katas = choose_katas(trusted, args.kata)
    if args.klass is not None:
        out = (args.out or ROOT / "grade-class").resolve()
        learners = learners_from(args.klass.resolve(), out / CLONES)
        print(
            f"grading {len(learners)} learner(s), {len(katas)} kata(s) each, "
            f"{sandbox.describe()} ...",
            file=sys.stderr,
        )
        book = grade_class(trusted, learners, out, katas, limits, sandbox, jobs, args.impl)
        print(f"gradebook: {book}")
        return 0
    learner = (args.learner or ROOT).resolve()
    if not (learner / args.impl).is_dir():
        raise GradeError(f"{learner / args.impl} does not exist: nothing to grade")
    setup = Setup(
        trusted,
        learner,
        args.impl,
        limits,
        sandbox,
        threads=max(1, cores // jobs),
        data=data_files(ROOT, learner),
    )
    print(
        f"grading {len(katas)} kata(s) from {learner / args.impl}, {sandbox.describe()} ...",
        file=sys.stderr,
    )
    mode = args.mode or (f"learner {learner}" if args.learner else "working tree")
    result: Grade = grade(setup, katas, jobs, mode)
    write_reports(result, (args.out or ROOT / "grade").resolve())
    print(result.line())
    return 1 if args.strict and result.status != "pass" else 0


def choose_katas(trusted: Trusted, keys: list[str]) -> list[Kata]:
    every = trusted.katas()
    if not keys:
        return every
    wanted = set()
    for key in keys:
        for text in str(key).replace(",", " ").split():
            match = [
                k for k in every if text in (str(k.number), f"{k.number:02d}", k.name, k.dirname)
            ]
            if not match:
                raise GradeError(
                    f"no kata called {text!r}; the katas are: "
                    + ", ".join(k.dirname for k in every)
                )
            wanted.update(match)
    return [k for k in every if k in wanted]


__all__ = ["main", "UPDATE_COMMAND"]

if __name__ == "__main__":
    sys.exit(main())
