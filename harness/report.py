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
    --report-key-fd N  read a per-run secret from file descriptor N (then closed, before any
                       learner code is imported): every event carries "seq" (0, 1, 2, ...) and
                       "mac", an HMAC-SHA256 of the event under that secret, so a line that
                       learner code writes on the channel itself is told apart.
    --test-timeout S   raise TimeoutError in a spec's body after S seconds (SIGALRM).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--report-to", default=None, help="write per-spec outcomes to this JSON file")
    parser.addoption(
        "--report-fd",
        type=int,
        default=None,
        help="stream per-spec events as JSON lines to this file descriptor",
    )
    parser.addoption(
        "--report-key-fd",
        type=int,
        default=None,
        help="read the secret that signs each event from this file descriptor",
    )
    parser.addoption(
        "--test-timeout",
        type=float,
        default=0,
        help="fail a spec whose body runs longer than this many seconds",
    )


class Recorder:
    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.passed:
            return  # setup/teardown that went fine says nothing new
        record = self.records.setdefault(
            report.nodeid,
            {
                "nodeid": report.nodeid,
                "kata": _kata_of(report.nodeid),
                "name": report.nodeid.split("::", 1)[-1],
                "outcome": "passed",
                "message": "",
                "longrepr": "",
                "duration": 0.0,
            },
        )
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
                "nodeid": report.nodeid,
                "kata": _kata_of(report.nodeid),
                "name": "(import)",
                "outcome": "error",
                "message": _short_message(report),
                "longrepr": report.longreprtext,
                "duration": 0.0,
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


def sign(key: bytes, seq: int, event: dict) -> str:
    """The MAC of one event (without its "mac" field) as the grader checks it."""
    body = json.dumps({**event, "seq": seq}, sort_keys=True, ensure_ascii=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


class Streamer:
    """Writes events to a file descriptor as they happen (see --report-fd), each signed when
    there is a key (--report-key-fd)."""

    def __init__(self, fd: int, key: bytes = b""):
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.recorder = Recorder(Path(os.devnull))
        self.seq = 0
        self._sign = (lambda seq, event: sign(key, seq, event)) if key else None

    def send(self, event: str, **fields) -> None:
        message = {"event": event, **fields}
        if self._sign is not None:
            message = {**message, "seq": self.seq, "mac": self._sign(self.seq, message)}
        self.seq += 1
        self.out.write(json.dumps(message) + "\n")
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
        raise TimeoutError(
            f"this spec ran longer than {self.seconds:g} s: is there an endless "
            f"loop, or an algorithm much slower than the lesson's?"
        )

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
        key_fd = config.getoption("--report-key-fd")
        key = b""
        if key_fd is not None:
            with os.fdopen(key_fd, "rb") as f:
                key = bytes.fromhex(f.read().decode().strip())
        config.pluginmanager.register(Streamer(fd, key), "harness-streamer")
        _guard_learner_code(Path(str(config.rootpath)))
    seconds = config.getoption("--test-timeout")
    if seconds and hasattr(signal, "setitimer"):
        config.pluginmanager.register(_SpecTimeout(seconds), "harness-spec-timeout")


def _guard_learner_code(root: Path) -> None:
    """In the grader's runs: watch the classes the learner's modules make (harness.checks)."""
    from harness.checks import guard_learner_classes
    from harness.katas import is_module

    guard_learner_classes(p for p in root.glob("katas/*/*.py") if is_module(p))
