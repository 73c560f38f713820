"""One pytest run of a kata: its box of files, its process (in the sandbox), its events.

A box is a fresh directory written from the trusted bytes in memory: pytest.ini, the
harness, conftest.py, the data step and files, the kata's specs (and hidden specs), control
specs made up for this run, and from the learner only the modules each kata declares. It is
read-only; the sandbox gives the run its own /tmp. Events come back one JSON line at a time
over a pipe, so when a run hangs or dies the grader knows every spec it finished and the one
it was in, and starts a new run for the specs after it, until none is left or time is up.
"""

from __future__ import annotations

import json
import os
import queue
import random
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from data import fetch
from harness.grader.sandbox import Limits, Sandbox, kill
from harness.grader.trusted import Trusted, sha256
from harness.katas import Kata

GRACE = 10.0  # seconds past the per-spec timeout before the process is killed
IMPORT_ALLOWANCE = 30.0  # extra seconds for collection (imports torch) before it counts as a hang
MODULE_CAP = 1 << 20  # bytes: a bigger learner module is not copied

PYTEST_INI = """[pytest]
addopts = --import-mode=importlib -p no:cacheprovider
filterwarnings = ignore::pytest.PytestUnknownMarkWarning
"""

# Two specs that must FAIL, named like the kata's specs and written to a file named like its
# spec files, new for every run: code that makes every spec pass (patched checks, patched
# reporting, events forged on the pipe) makes these pass too, and the kata is not graded.
CONTROL = '''"""Specs of {kata}."""

from harness.checks import expect_close


def {check}():
    expect_close({a}, {b}, "{what}", hint="compare against the closed form")


def {plain}():
    assert {a} == {b}, "{what}"
'''


@dataclass
class Setup:
    """Where everything comes from for one learner's grading."""

    trusted: Trusted
    learner: Path  # the tree whose kata modules are graded
    impl: str  # "katas" or "solutions": which directory of `learner` holds the modules
    limits: Limits
    sandbox: Sandbox
    threads: int = 1
    slots: queue.Queue | None = None  # sandbox numbers free to use (one uid each)
    data: dict[str, bytes] = field(default_factory=dict)  # the data files, checked by sha256


def data_files(*dirs: Path) -> dict[str, bytes]:
    """The data files found in `dirs` whose sha256 is the data step's."""
    out = {}
    for name, spec in fetch.FILES.items():
        for d in dirs:
            path = d / "data" / name
            if path.is_file() and path.stat().st_size == spec.size:
                data = path.read_bytes()
                if sha256(data) == spec.sha256:
                    out[name] = data
                    break
    return out


def learner_modules(setup: Setup, kata: Kata) -> dict[str, bytes]:
    """The kata's declared modules from the learner's tree: plain files only (no links)."""
    source = setup.learner / setup.impl / kata.dirname
    out: dict[str, bytes] = {}
    if source.is_symlink() or not source.is_dir():
        return out
    for name in setup.trusted.modules(kata):
        try:
            fd = os.open(source / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                data = f.read(MODULE_CAP + 1)
                if len(data) <= MODULE_CAP:
                    out[name] = data
    return out


def control_specs(kata: Kata, spec_ids: list[str], taken: list[str],
                  nonce: str) -> tuple[str, str, list[str]]:
    """A control spec file for this run (not one of the paths `taken`): its path, its text and
    its two spec ids."""
    rng = random.Random(nonce)
    names = {i.split("::")[-1].split("[")[0] for i in spec_ids}
    words = sorted({w for n in names for w in n.split("_")[1:] if w.isalpha()}) or ["value"]
    made: list[str] = []
    while len(made) < 2:
        name = "test_" + "_".join(rng.sample(words, min(len(words), rng.randint(2, 4))))
        if name not in names and name not in made:
            made.append(name)
        words.append(f"{rng.choice(words)}{rng.randint(2, 9)}")
    files = {i.split("::")[0] for i in spec_ids} | set(taken)
    stem = kata.name
    while f"katas/{kata.dirname}/test_{stem}.py" in files:
        stem = f"{kata.name}_{rng.choice(words)}"
    path = f"katas/{kata.dirname}/test_{stem}.py"
    a = rng.randint(2, 999)
    text = CONTROL.format(kata=kata.dirname, check=made[0], plain=made[1], a=a, b=a + 1,
                          what=" ".join(made[0].split("_")[1:]))
    return path, text, [f"{path}::{made[0]}", f"{path}::{made[1]}"]


def build_box(box: Path, setup: Setup, katas: list[Kata], public: bool = True,
              control: tuple[str, str] | None = None) -> list[str]:
    """Fill `box` (read-only afterwards); return the paths for pytest to run, in order."""
    trusted = setup.trusted
    files: dict[str, bytes] = {"pytest.ini": PYTEST_INI.encode()}
    files.update({p: trusted.files[p] for p in trusted.manifest["grader"] if p in trusted.files})
    files.update({f"data/{name}": data for name, data in setup.data.items()})
    for kata in trusted.katas():
        (box / "katas" / kata.dirname).mkdir(parents=True, exist_ok=True)
        files.update({f"katas/{kata.dirname}/{name}": data
                      for name, data in learner_modules(setup, kata).items()})
    paths = []
    for kata in katas:
        if public:
            for p in trusted.manifest["katas"].get(kata.dirname, {}).get("files", {}):
                if p in trusted.files:
                    files[p] = trusted.files[p]
            paths.append(f"katas/{kata.dirname}")
        hidden = {k: v for k, v in trusted.hidden.items() if k.startswith(f"{kata.dirname}/")}
        if hidden:
            files.update({f"hidden/{k}": v for k, v in hidden.items()})
            paths.append(f"hidden/{kata.dirname}")
    if control:
        files[control[0]] = control[1].encode()
    for path, data in files.items():
        (box / path).parent.mkdir(parents=True, exist_ok=True)
        (box / path).write_bytes(data)
    for folder, _, names in os.walk(box):
        for name in names:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return paths


@dataclass
class Attempt:
    """What one pytest process told the grader before it ended."""

    collected: list[str] | None = None
    records: dict[str, dict] = field(default_factory=dict)
    import_errors: list[dict] = field(default_factory=list)
    running: str | None = None  # the spec that had started and not finished when the run ended
    ended: str = "done"  # done | exited | hung | out_of_time
    returncode: int | None = None
    output: str = ""  # the tail of what the process printed


def run_pytest(setup: Setup, katas: list[Kata], args: list[str], deadline: float,
               public: bool = True, control: tuple[str, str] | None = None,
               collect_only: bool = False) -> Attempt:
    """Build a box, run pytest on it in the sandbox, read its events; stop it if it hangs."""
    slot = setup.slots.get() if setup.slots is not None else 0
    try:
        with tempfile.TemporaryDirectory(prefix="gpt-katas-grade-") as tmp:
            box, scratch = Path(tmp) / "box", Path(tmp) / "scratch"
            box.mkdir()
            scratch.mkdir()
            paths = build_box(box, setup, katas, public, control)
            return _run(setup, box, scratch, [*paths, *args], deadline, slot, collect_only)
    finally:
        if setup.slots is not None:
            setup.slots.put(slot)


def _run(setup: Setup, box: Path, scratch: Path, args: list[str], deadline: float, slot: int,
         collect_only: bool) -> Attempt:
    limits = setup.limits
    attempt = Attempt()
    read_end, write_end = os.pipe()
    log = tempfile.TemporaryFile()
    cpu = max(1, int(deadline - time.monotonic()) + 5)
    argv = ["-c", "pytest.ini", "--rootdir", ".", "-q", "-p", "harness.report",
            f"--report-fd={write_end}", f"--test-timeout={limits.test_timeout:g}",
            "--impl=katas", "--ref=", *(["--collect-only"] if collect_only else []), *args]
    cmd, env = setup.sandbox.command(box, scratch, argv, slot, limits, cpu, setup.threads)
    try:
        proc = subprocess.Popen(cmd, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, pass_fds=[write_end],
                                start_new_session=True)
    finally:
        os.close(write_end)
    events: queue.Queue = queue.Queue()

    def read() -> None:
        with os.fdopen(read_end, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # not ours: something else wrote to the pipe
                if isinstance(event, dict):
                    events.put(event)
        events.put(None)

    threading.Thread(target=read, daemon=True).start()
    spec_deadline = time.monotonic() + limits.test_timeout + IMPORT_ALLOWANCE + GRACE
    while True:
        try:
            event = events.get(timeout=max(0.0, min(spec_deadline, deadline) - time.monotonic()))
        except queue.Empty:
            attempt.ended = "out_of_time" if deadline <= spec_deadline else "hung"
            break
        if event is None:  # the pipe closed: the process ended
            attempt.ended = "exited"
            break
        kind = event.get("event")
        if kind == "collected" and isinstance(event.get("nodeids"), list):
            attempt.collected = [str(n) for n in event["nodeids"]]
        elif kind == "start":
            attempt.running = str(event.get("nodeid"))
        elif kind == "record" and "nodeid" in event:
            if event.get("name") == "(import)":
                attempt.import_errors.append(event)
            else:
                attempt.records[str(event["nodeid"])] = event
            if event.get("nodeid") == attempt.running:
                attempt.running = None
        elif kind == "done":
            attempt.running = None
            break  # anything the run does after this (background processes) does not count
        spec_deadline = time.monotonic() + limits.test_timeout + GRACE
    if attempt.ended == "exited" and attempt.running is None and attempt.collected is not None \
            and not missing(attempt):
        attempt.ended = "done"  # every spec reported; what happened after does not matter
    if attempt.ended in ("hung", "out_of_time"):
        kill(proc)
    _wait_unreaped(proc, GRACE)
    kill(proc)  # whatever is left of it: unsandboxed, only what stayed in its process group
    attempt.returncode = proc.wait()
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 3000))
    attempt.output = log.read().decode("utf-8", "replace")
    log.close()
    return attempt


def _wait_unreaped(proc: subprocess.Popen, seconds: float) -> None:
    """Wait for the process to end without reaping it, so its process group id stays its own
    until the group is killed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return
        time.sleep(0.02)


def missing(attempt: Attempt) -> list[str]:
    return [n for n in attempt.collected or [] if n not in attempt.records]
