"""One pytest run of a kata: its box of files, its process (in the sandbox), its events.

A box is a fresh directory written from the trusted bytes in memory: pytest.ini, the
harness, conftest.py, the data step and files, the kata's specs (and hidden specs), control
specs made up for this run, and from the learner only the modules each kata declares. It is
read-only; the sandbox gives the run its own /tmp. Events come back one JSON line at a time
over a pipe, so when a run hangs or dies the grader knows every spec it finished and the one
it was in, and starts a new run for the specs after it, until none is left or time is up.
"""

from __future__ import annotations

import ast
import hmac
import json
import os
import queue
import random
import re
import secrets
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import fetch
from harness.grader.sandbox import Limits, Sandbox, kill
from harness.grader.trusted import Trusted, sha256
from harness.katas import Kata
from harness.report import sign

GRACE = 10.0  # seconds past the per-spec timeout before the process is killed
IMPORT_ALLOWANCE = 30.0  # extra seconds for collection (imports torch) before it counts as a hang
MODULE_CAP = 1 << 20  # bytes: a bigger learner module is not copied

PYTEST_INI = """[pytest]
addopts = --import-mode=importlib -p no:cacheprovider
filterwarnings = ignore::pytest.PytestUnknownMarkWarning
"""

# Two specs that must FAIL, new for every run. They and the hidden specs are written into the
# kata's own directory, in files and under names made by one generator from the words of the
# kata's real spec names (Disguise below), so neither path nor name tells a control from a
# hidden spec: code that makes every spec it has not seen pass (patched checks, patched
# reporting, events forged on the channel) makes these pass too, and the kata is not graded.
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


@dataclass
class Disguise:
    """One run's control specs and hidden specs, written as the kata's spec files are: each
    file `katas/<kata>/test_<name>_<word>.py`, each spec named `test_<words>` from the words of
    the kata's public spec names. `files` is what goes into the box; the ids map both ways
    between the box and the canonical ones (`hidden/<kata>/<file>::<name>`)."""

    files: dict[str, str] = field(default_factory=dict)
    control_ids: list[str] = field(default_factory=list)
    box_of: dict[str, str] = field(default_factory=dict)  # canonical "file::name" -> box's
    canonical_of: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(
        cls, kata: Kata, spec_ids: list[str], taken: list[str], hidden: dict[str, bytes], nonce: str
    ) -> Disguise:
        """`hidden`: the kata's hidden files ("NN_name/file" -> bytes); `taken`: paths in the
        kata's directory already."""
        rng = random.Random(nonce)
        names = {i.split("::")[-1].split("[")[0] for i in spec_ids}
        words = sorted({w for n in names for w in n.split("_")[1:] if w.isalpha()}) or ["value"]
        used = set(names)
        paths = {i.split("::")[0] for i in spec_ids} | set(taken)

        def new_name() -> str:
            while True:
                name = "test_" + "_".join(rng.sample(words, min(len(words), rng.randint(2, 4))))
                words.append(f"{rng.choice(words)}{rng.randint(2, 9)}")
                if name not in used:
                    used.add(name)
                    return name

        def new_path() -> str:
            while True:
                path = f"katas/{kata.dirname}/test_{kata.name}_{rng.choice(words)}.py"
                if path not in paths:
                    paths.add(path)
                    return path

        out = cls()
        jobs: list[tuple[str, str | None]] = [(k, None) for k in sorted(hidden)]
        jobs.insert(rng.randint(0, len(jobs)), ("", "control"))
        for key, control in jobs:
            if control:
                path, check, plain = new_path(), new_name(), new_name()
                a = rng.randint(2, 999)
                out.files[path] = CONTROL.format(
                    kata=kata.dirname,
                    check=check,
                    plain=plain,
                    a=a,
                    b=a + 1,
                    what=" ".join(check.split("_")[1:]),
                )
                out.control_ids += [f"{path}::{check}", f"{path}::{plain}"]
                continue
            name = key.split("/", 1)[1]
            text = hidden[key].decode("utf-8", "replace")
            if not (name.startswith("test_") and name.endswith(".py")):
                free = f"katas/{kata.dirname}/{name}"  # data a hidden spec reads: beside it
                if free not in paths:
                    paths.add(free)
                    out.files[free] = text
                continue
            path = new_path()
            out.box_of[f"hidden/{key}"], out.canonical_of[path] = path, f"hidden/{key}"
            text, renamed = rename_specs(text, new_name)
            for old, new in renamed.items():
                out.box_of[f"hidden/{key}::{old}"] = f"{path}::{new}"
                out.canonical_of[f"{path}::{new}"] = f"hidden/{key}::{old}"
            out.files[path] = text
        return out

    def _map(self, nodeid: str, table: dict[str, str]) -> str:
        file, sep, rest = nodeid.partition("::")
        if not sep:
            return table.get(file, file)
        first, dot, tail = rest.partition("::")
        name, bracket, params = first.partition("[")
        key = f"{file}::{name}"
        if key in table:
            return table[key] + bracket + params + dot + tail
        return nodeid

    def to_box(self, nodeid: str) -> str:
        return self._map(nodeid, self.box_of)

    def to_canonical(self, nodeid: str) -> str:
        return self._map(nodeid, self.canonical_of)

    def translate(self, attempt: Attempt) -> Attempt:
        """The attempt with the box's ids of hidden specs as their canonical ids."""
        back = self.to_canonical
        if attempt.collected is not None:
            attempt.collected = [back(n) for n in attempt.collected]
        attempt.records = {back(k): {**v, "nodeid": back(k)} for k, v in attempt.records.items()}
        attempt.import_errors = [
            {**e, "nodeid": back(str(e.get("nodeid")))} for e in attempt.import_errors
        ]
        attempt.running = back(attempt.running) if attempt.running else attempt.running
        return attempt


def rename_specs(text: str, new_name) -> tuple[str, dict[str, str]]:
    """The spec file's text with each top-level test function and Test class renamed
    (`new_name()` gives each name), on its own line only; and the renames made."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, {}
    lines = text.splitlines(keepends=True)
    renamed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            keyword = r"(?:async\s+)?def"
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            keyword = "class"
        else:
            continue
        new = new_name() if keyword != "class" else "Test" + new_name()[5:].title().replace("_", "")
        line = node.lineno - 1
        changed = re.sub(
            rf"^(\s*{keyword}\s+){re.escape(node.name)}\b", rf"\g<1>{new}", lines[line], count=1
        )
        if changed != lines[line]:
            lines[line] = changed
            renamed[node.name] = new
    return "".join(lines), renamed


def build_box(
    box: Path,
    setup: Setup,
    katas: list[Kata],
    public: bool = True,
    disguise: Disguise | None = None,
) -> list[str]:
    """Fill `box` (read-only afterwards); return the paths for pytest to run, in order. With
    a disguise, the hidden specs and the controls are its files; without one (collecting the
    hidden specs' ids), the hidden specs are under hidden/."""
    trusted = setup.trusted
    files: dict[str, bytes] = {"pytest.ini": PYTEST_INI.encode()}
    files.update({p: trusted.files[p] for p in trusted.manifest["grader"] if p in trusted.files})
    files.update({f"data/{name}": data for name, data in setup.data.items()})
    for kata in trusted.katas():
        (box / "katas" / kata.dirname).mkdir(parents=True, exist_ok=True)
        files.update(
            {
                f"katas/{kata.dirname}/{name}": data
                for name, data in learner_modules(setup, kata).items()
            }
        )
    paths = []
    for kata in katas:
        if public:
            for p in trusted.manifest["katas"].get(kata.dirname, {}).get("files", {}):
                if p in trusted.files:
                    files[p] = trusted.files[p]
            paths.append(f"katas/{kata.dirname}")
        hidden = {k: v for k, v in trusted.hidden.items() if k.startswith(f"{kata.dirname}/")}
        if disguise is not None:
            if not public:
                paths.append(f"katas/{kata.dirname}")
        elif hidden:
            files.update({f"hidden/{k}": v for k, v in hidden.items()})
            paths.append(f"hidden/{kata.dirname}")
    if disguise is not None:
        files.update({p: t.encode() for p, t in disguise.files.items()})
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
    forged: list[str] = field(default_factory=list)  # what the channel's checks found wrong


def run_pytest(
    setup: Setup,
    katas: list[Kata],
    args: list[str],
    deadline: float,
    public: bool = True,
    disguise: Disguise | None = None,
    collect_only: bool = False,
) -> Attempt:
    """Build a box, run pytest on it in the sandbox, read its events; stop it if it hangs."""
    slot = setup.slots.get() if setup.slots is not None else 0
    try:
        with tempfile.TemporaryDirectory(prefix="gpt-katas-grade-") as tmp:
            box, scratch = Path(tmp) / "box", Path(tmp) / "scratch"
            box.mkdir()
            scratch.mkdir()
            paths = build_box(box, setup, katas, public, disguise)
            return _run(setup, box, scratch, [*paths, *args], deadline, slot, collect_only)
    finally:
        if setup.slots is not None:
            setup.slots.put(slot)


def _run(
    setup: Setup,
    box: Path,
    scratch: Path,
    args: list[str],
    deadline: float,
    slot: int,
    collect_only: bool,
) -> Attempt:
    limits = setup.limits
    attempt = Attempt()
    read_end, write_end = os.pipe()
    key_read, key_write = os.pipe()  # the run's secret: read by the plugin, then closed
    key = secrets.token_bytes(32)
    os.write(key_write, key.hex().encode() + b"\n")
    os.close(key_write)
    log = tempfile.TemporaryFile()
    cpu = max(1, int(deadline - time.monotonic()) + 5)
    argv = [
        "-c",
        "pytest.ini",
        "--rootdir",
        ".",
        "-q",
        "-p",
        "harness.report",
        f"--report-fd={write_end}",
        f"--report-key-fd={key_read}",
        f"--test-timeout={limits.test_timeout:g}",
        "--impl=katas",
        "--ref=",
        *(["--collect-only"] if collect_only else []),
        *args,
    ]
    cmd, env = setup.sandbox.command(box, scratch, argv, slot, limits, cpu, setup.threads)
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=box,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=[write_end, key_read],
            start_new_session=True,
        )
    finally:
        os.close(write_end)
        os.close(key_read)
    events: queue.Queue = queue.Queue()

    def read() -> None:
        """Each line must be an event the plugin signed, in its order; anything else was
        written by someone else (the code graded) and is reported, not used."""
        seq = 0
        with os.fdopen(read_end, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if not line.endswith("\n"):
                    break  # cut off by the process's end: it never finished writing it
                try:
                    event = json.loads(line)
                    mac, number = event.pop("mac"), event.pop("seq")
                    good = number == seq and hmac.compare_digest(str(mac), sign(key, seq, event))
                except (ValueError, KeyError, TypeError, AttributeError):
                    good = False
                if not good:
                    attempt.forged.append(
                        "a line on the report channel that the grader's "
                        "plugin did not send: " + line.strip()[:120]
                    )
                    continue
                seq += 1
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
            order = iter(attempt.collected)
        elif kind == "start":
            nodeid = str(event.get("nodeid"))
            if attempt.collected is None or nodeid not in order:  # out of the run's order
                attempt.forged.append(f"{nodeid} started out of the order pytest collected")
            attempt.running = nodeid
        elif kind == "record" and "nodeid" in event:
            nodeid = str(event["nodeid"])
            if event.get("name") == "(import)":
                attempt.import_errors.append(event)
            elif nodeid != attempt.running or nodeid in attempt.records:
                attempt.forged.append(f"a result for {nodeid}, which was not the spec running")
            else:
                attempt.records[nodeid] = event
            if nodeid == attempt.running:
                attempt.running = None
        elif kind == "done":
            attempt.running = None
            break  # anything the run does after this (background processes) does not count
        spec_deadline = time.monotonic() + limits.test_timeout + GRACE
    if (
        attempt.ended == "exited"
        and attempt.running is None
        and attempt.collected is not None
        and not missing(attempt)
    ):
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
