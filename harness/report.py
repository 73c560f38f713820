"""A pytest plugin that writes one JSON record per spec, for the harness to read.

    pytest -p harness.report --report-to out.json katas/01_value

Each record: {"nodeid", "kata", "name", "outcome": passed|failed|error|skipped,
"message": the short failure text, "longrepr": the full failure text, "duration"}.

The grader (harness/grader/run.py) uses two more options:

    --report-fd N      stream events to file descriptor N, one JSON object a line, as they
                       happen: {"event": "collected", "nodeids": [...]},
                       {"event": "start", "nodeid"}, {"event": "record", ...a record and
                       "output"}, {"event": "done"}.
                       A process that dies mid-run still leaves everything up to that point.
    --test-timeout S   raise TimeoutError in a spec's body after S seconds (SIGALRM).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--report-to", default=None, help="write per-spec outcomes to this JSON file")
    parser.addoption("--report-fd", type=int, default=None,
                     help="stream per-spec events as JSON lines to this file descriptor")
    parser.addoption("--test-timeout", type=float, default=0,
                     help="fail a spec whose body runs longer than this many seconds")


class Recorder:
    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.passed:
            return  # setup/teardown that went fine says nothing new
        record = self.records.setdefault(report.nodeid, {
            "nodeid": report.nodeid,
            "kata": _kata_of(report.nodeid),
            "name": report.nodeid.split("::", 1)[-1],
            "outcome": "passed",
            "message": "",
            "longrepr": "",
            "duration": 0.0,
        })
        record["duration"] += report.duration
        if report.failed:
            record["outcome"] = "failed" if report.when == "call" else "error"
            record["message"] = _short_message(report)
            record["longrepr"] = report.longreprtext
        elif report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
            record["message"] = _short_message(report)

    @pytest.hookimpl
    def pytest_collectreport(self, report):
        if report.failed:  # a spec file that cannot even be imported
            self.records[report.nodeid] = {
                "nodeid": report.nodeid, "kata": _kata_of(report.nodeid), "name": "(import)",
                "outcome": "error", "message": _short_message(report),
                "longrepr": report.longreprtext, "duration": 0.0,
            }

    @pytest.hookimpl
    def pytest_sessionfinish(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(list(self.records.values()), indent=1))


def _kata_of(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "katas" else ""


def _short_message(report) -> str:
    """The teaching part of a failure: the exception line(s), not the traceback."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        return str(report.longrepr[2])
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


class Streamer:
    """Writes events to a file descriptor as they happen (see --report-fd)."""

    def __init__(self, fd: int):
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.recorder = Recorder(Path(os.devnull))

    def send(self, event: str, **fields) -> None:
        self.out.write(json.dumps({"event": event, **fields}) + "\n")
        self.out.flush()

    @pytest.hookimpl
    def pytest_collection_finish(self, session):
        self.send("collected", nodeids=[item.nodeid for item in session.items])

    @pytest.hookimpl
    def pytest_collectreport(self, report):
        self.recorder.pytest_collectreport(report)
        if report.failed:
            self.send("record", **self.recorder.records[report.nodeid], output="")

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid):
        self.send("start", nodeid=nodeid)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        self.recorder.pytest_runtest_logreport(report)
        if report.nodeid in self.recorder.records:
            record = self.recorder.records[report.nodeid]
            record["output"] = record.get("output", "") + report.capstdout + report.capstderr

    @pytest.hookimpl
    def pytest_runtest_logfinish(self, nodeid):
        record = self.recorder.records.get(nodeid)
        if record is not None:
            self.send("record", **record)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus):
        self.send("done", exitstatus=int(exitstatus))


class _SpecTimeout:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def _expired(self, signum, frame):
        raise TimeoutError(f"this spec ran longer than {self.seconds:g} s: is there an endless "
                           f"loop, or an algorithm much slower than the lesson's?")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def pytest_configure(config):
    path = config.getoption("--report-to")
    if path:
        config.pluginmanager.register(Recorder(Path(path)), "harness-recorder")
    fd = config.getoption("--report-fd")
    if fd is not None:
        config.pluginmanager.register(Streamer(fd), "harness-streamer")
    seconds = config.getoption("--test-timeout")
    if seconds and hasattr(signal, "setitimer"):
        config.pluginmanager.register(_SpecTimeout(seconds), "harness-spec-timeout")
