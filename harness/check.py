"""`make check`: the repository's own verification, what CI runs. Every spec passes on
solutions/ and fails on its stub (with the earlier katas from solutions/), the repository's
tests pass, ruff's lint and format are clean, and the lesson notebooks run (nbval)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from harness.katas import KATAS, ROOT, Kata
from harness.specs import Run, dim, green, indent, red, run_kata, run_specs


@dataclass
class Step:
    name: str
    passed: int = 0
    problems: list[str] = field(default_factory=list)


def check_solutions() -> Step:
    step = Step("every spec passes on solutions/")
    run = run_specs([ROOT / "katas"], "solutions")
    step.passed = run.passed
    step.problems = [
        f"{r['nodeid']}: {r['outcome']}\n{indent(r['longrepr'] or r['message'])}"
        for r in run.failures
    ]
    if run.total == 0:
        step.problems.append("no spec ran on the solutions\n" + indent(run.output))
    return step


def check_stubs() -> Step:
    """Every spec must fail on its stub, with every earlier kata taken from solutions/."""
    step = Step("every spec fails on its stub")

    def stub_run(kata: Kata) -> Run:
        ref = f"1-{kata.number - 1}" if kata.number > 1 else ""
        return run_kata(kata, "katas", ref)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(stub_run, KATAS))
    for kata, run in zip(KATAS, runs):
        for r in run.records:
            if r["name"] == "(import)":
                step.problems.append(
                    f"{r['nodeid']}: the spec file cannot import the stub; "
                    f"a learner would see this, not the specs\n"
                    f"{indent(r['longrepr'])}"
                )
            elif r["outcome"] in ("passed", "skipped"):
                step.problems.append(
                    f"{r['nodeid']} {r['outcome'].upper()} on the stub of "
                    f"kata {kata.dirname}: it tests nothing the learner writes"
                )
            else:
                step.passed += 1
        if not run.records:
            step.problems.append(f"kata {kata.dirname}: no spec ran on the stub")
    return step


def check_pytest(name: str, *pytest_args: str) -> Step:
    """Run pytest, its progress shown as it goes; count from its JUnit XML, not its text."""
    step = Step(name)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "--tb=short",
                f"--junitxml={junit}",
                *pytest_args,
            ],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output = []
        for line in proc.stdout:  # pytest's dots, so minutes of tests are never silent
            output.append(line)
            print(dim(f"    {line.rstrip()}"), flush=True)
        proc.wait()
        suites = ElementTree.parse(junit).getroot().iter("testsuite") if junit.exists() else []
        for suite in suites:
            not_passed = ("failures", "errors", "skipped")
            counts = [int(suite.get(k, 0)) for k in not_passed]
            step.passed += int(suite.get("tests", 0)) - sum(counts)
    if proc.returncode != 0:
        step.problems.append(indent("".join(output)[-8000:], ""))
    return step


def check_ruff() -> Step:
    step = Step("ruff: lint and format are clean")
    for command in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True
        )
        if proc.returncode != 0:
            fix = "ruff check --fix ." if command[0] == "check" else "ruff format ."
            step.problems.append(f"{proc.stdout}{proc.stderr}(fix: .venv/bin/python -m {fix})")
    return step


def cmd_check(args) -> int:
    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "katas").glob("*/*.ipynb"))
    checks = [
        check_solutions,
        check_stubs,
        lambda: check_pytest("the repository's own tests pass", "tests"),
        check_ruff,
    ]
    if notebooks:
        checks.append(
            lambda: check_pytest(
                "the lesson notebooks run (nbval)",
                "--nbval-lax",
                "--impl=solutions",
                "--nbval-sanitize-with",
                "harness/nbval_sanitize.cfg",
                *notebooks,
            )
        )
    steps = []
    for check in checks:
        start = time.monotonic()
        step = check()
        mark = green("✓") if not step.problems else red("✗")
        print(
            f"{mark} {step.name:<38} {step.passed:>5} ok  "
            f"{dim(f'{time.monotonic() - start:.0f}s')}",
            flush=True,
        )
        for problem in step.problems:
            print(indent(problem, "    ! ", max_lines=300))
        steps.append(step)
    passed = sum(s.passed for s in steps)
    failed = sum(len(s.problems) for s in steps)
    print(f"check: {passed} passed, {failed} failed")
    return 1 if failed else 0
