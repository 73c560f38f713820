"""Running a kata's specs: one fresh pytest process with the `harness.report` plugin, whose
records (one per spec) everything else reads; and the few terminal helpers that print them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.katas import ROOT, Kata

COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def green(text: str) -> str:
    return paint(text, "32")


def red(text: str) -> str:
    return paint(text, "31")


def dim(text: str) -> str:
    return paint(text, "2")


def indent(text: str, prefix: str = "    ", max_lines: int = 25) -> str:
    lines = text.strip().splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + ["..."]
    return "\n".join(prefix + line for line in lines)


@dataclass
class Run:
    """The outcome of one pytest process: one record per spec (see harness/report.py)."""

    records: list[dict]
    output: str  # what pytest printed, for when something went wrong outside any spec
    returncode: int
    seconds: float

    @property
    def total(self) -> int:
        return len(self.records)

    @property
    def passed(self) -> int:
        return sum(r["outcome"] == "passed" for r in self.records)

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.records if r["outcome"] != "passed"]

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total


def run_specs(paths: list[Path], impl: str, ref: str = "") -> Run:
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *map(str, paths),
            "-p",
            "harness.report",
            f"--report-to={report}",
            f"--impl={impl}",
            f"--ref={ref}",
            "-q",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        records = json.loads(report.read_text()) if report.exists() else []
    output = proc.stdout + proc.stderr
    if not records and proc.returncode not in (0, 5):
        # pytest itself died (the code under test called os._exit, say): one error record.
        tail = "\n".join(output.strip().splitlines()[-15:])
        records = [
            {
                "nodeid": " ".join(map(str, paths)),
                "name": "(run)",
                "outcome": "error",
                "message": f"pytest exited with status {proc.returncode}",
                "longrepr": tail,
            }
        ]
    return Run(records, output, proc.returncode, time.monotonic() - start)


def run_kata(kata: Kata, impl: str, ref: str = "") -> Run:
    return run_specs(kata.specs(), impl, ref)
