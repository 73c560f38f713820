"""Grade a learner's katas: each kata's canonical specs in its own sandboxed process, scored.

    python -m harness.grade                    # katas/ -> grade/results.json, junit.xml, summary.md
    python -m harness.grade --kata 03          # one kata
    python -m harness.grade --impl solutions   # the reference (full marks, or something is wrong)
    python -m harness.grade --hidden-specs DIR # add an instructor's specs: DIR/NN_name/test_*.py
    python -m harness.grade --learner DIR      # this tree's specs and grader, DIR's kata modules
    python -m harness.grade --trusted-ref REF  # specs and grader from git REF, not the work tree
    python -m harness.grade --strict           # exit 1 unless every spec passes
    python -m harness.grade --update-manifest  # maintainers: rewrite harness/manifest.json and
                                               # .github/classroom/autograding.json

How it works (docs/grading.md has the points model and the threat model):
1. The trusted files (specs, conftest.py, harness/, data/*.py, harness/points.json) are checked
   against harness/manifest.json, sha256 by sha256. A kata whose specs differ is not graded
   (error, 0 points); a grader that differs grades nothing.
2. Each kata runs in a fresh temporary directory that holds copies of the trusted files, the
   learner's modules (every kata's, since later katas import earlier ones) and only that kata's
   specs, in its own process group with memory and CPU limits and a per-spec timeout.
3. Results come back over a pipe, event by event, so a process that hangs, exits or is killed
   still leaves every spec it finished; the grader then resumes after the spec that broke. The
   set of spec ids is the manifest's, not whatever the run reports; two control specs that must
   fail catch code that patches the checks or pytest's reporting.
4. Only the grader writes grade/, after every kata has finished.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from data import fetch
from harness.katas import NOTEBOOK_SOURCE, ROOT, Kata, discover, is_module

MANIFEST = Path("harness/manifest.json")
POINTS = Path("harness/points.json")
CLASSROOM = Path(".github/classroom/autograding.json")
HIDDEN_MANIFEST = "manifest.json"
UPDATE_COMMAND = "python -m harness.grade --update-manifest"

OUTPUT_CAP = 500  # characters of a spec's printed output kept (the exercism interface's limit)
MESSAGE_CAP = 4000
MAX_ATTEMPTS = 6  # runs of one kata: the first, then one more after each spec that broke the run
GRACE = 10.0  # seconds past the per-spec timeout before the process is killed
IMPORT_ALLOWANCE = 30.0  # extra seconds for collection (imports torch) before it counts as a hang
TIMEOUT_MARK = "this spec ran longer than"  # start of harness.report's TimeoutError message

PYTEST_INI = """[pytest]
addopts = --import-mode=importlib -p no:cacheprovider
filterwarnings = ignore::pytest.PytestUnknownMarkWarning
"""

# Runs in the child before pytest: resource limits, then pytest itself. (Popen's preexec_fn is
# not safe while the grader has threads, so the limits are set by the child on itself.)
LAUNCHER = """import resource, runpy, sys
memory, cpu, fsize = (int(a) for a in sys.argv[1:4])
for what, limit in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
                    (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_CORE, 0)):
    if limit >= 0:
        resource.setrlimit(what, (limit, limit))
sys.argv = ["pytest", *sys.argv[4:]]
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""

CONTROL_SPECS = '''"""The grader's control specs: both must FAIL. If one passes, something has
changed how specs check or report, and the kata is not graded."""


def test_control_check_{nonce}():
    import harness.checks

    harness.checks.expect_close(1.0, 2.0, "control: 1 is not 2")


def test_control_assert_{nonce}():
    assert 1 + 1 == 3, "control: a failing assert must fail"
'''


class GradeError(Exception):
    """Grading could not start: bad arguments, a missing directory, no manifest."""


# --- the trusted files and their manifest ------------------------------------------------------


def kata_of(dirname: str) -> Kata:
    number, _, name = dirname.partition("_")
    return Kata(int(number), name)


def spec_files(root: Path, kata: Kata) -> list[str]:
    """The trusted files of a kata: its specs and anything they read, but not the learner's
    modules, the lesson (*.md) or the notebook (its source and *.ipynb), which learners may
    edit and run."""
    d = root / "katas" / kata.dirname
    return sorted(
        p.relative_to(root).as_posix()
        for p in d.iterdir()
        if p.is_file() and not is_module(p) and p.name != NOTEBOOK_SOURCE
        and p.suffix not in (".md", ".ipynb", ".pyc")
    )


# Entry points that no spec imports: not copied into a kata's run, so not part of what it trusts.
NOT_IMPORTED_BY_SPECS = {"__main__.py", "grade.py", "handout.py"}


def grader_files(root: Path) -> list[str]:
    """The trusted files every kata's run uses: the fixtures, the harness, the data step, points."""
    modules = [*(root / "harness").glob("*.py"), *(root / "data").glob("*.py")]
    paths = [root / "conftest.py", root / POINTS,
             *(p for p in modules if p.name not in NOT_IMPORTED_BY_SPECS)]
    return sorted(p.relative_to(root).as_posix() for p in paths if p.is_file())


def build_manifest(root: Path = ROOT) -> dict:
    """What `--update-manifest` writes: every trusted file's sha256 and every spec's id,
    collected against solutions/."""
    katas = discover(root)
    ids = collect_ids(root, root, "solutions", katas)
    return {
        "about": f"sha256 of every file `make grade` trusts, and every spec id; "
                 f"regenerate with `{UPDATE_COMMAND}`",
        "grader": {path: fetch.sha256_of(root / path) for path in grader_files(root)},
        "katas": {
            kata.dirname: {
                "files": {path: fetch.sha256_of(root / path) for path in spec_files(root, kata)},
                "specs": [i for i in ids if i.startswith(f"katas/{kata.dirname}/")],
            }
            for kata in katas
        },
    }


def build_hidden_manifest(root: Path, hidden: Path) -> dict:
    katas = [kata_of(d.name) for d in sorted(hidden.iterdir())
             if d.is_dir() and d.name[:2].isdigit()]
    ids = collect_ids(root, root, "solutions", katas, hidden=hidden, public=False)
    return {
        "about": "the hidden specs' sha256 and ids; regenerate with "
                 f"`{UPDATE_COMMAND} --hidden-specs DIR`",
        "files": {p.relative_to(hidden).as_posix(): fetch.sha256_of(p)
                  for k in katas for p in sorted((hidden / k.dirname).iterdir()) if p.is_file()},
        "specs": ids,
    }


# Classroom's set-up command: CPU-only torch first (PyPI's Linux build pulls CUDA), at the
# Makefile's pin, then the rest; idempotent, so after the first test it costs seconds.
CLASSROOM_SETUP = ("test -x .venv/bin/python || python3 -m venv .venv && .venv/bin/python -m pip "
                   "install -q --index-url https://download.pytorch.org/whl/cpu "
                   "\"$(sed -n 's/^TORCH *:= *//p' Makefile)\" && make setup data")


def classroom_config(root: Path = ROOT) -> dict:
    """.github/classroom/autograding.json: one all-or-nothing test per kata (partial credit is
    in grade/results.json)."""
    points = load_points(root)
    return {"tests": [
        {
            "name": f"kata {kata.dirname}",
            "setup": CLASSROOM_SETUP,
            "run": f"make grade K={kata.number:02d} STRICT=1",
            "input": "",
            "output": "",
            "comparison": "included",
            "timeout": 20,
            "points": points.of(kata),
        }
        for kata in discover(root)
    ]}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def update_manifest(root: Path = ROOT, hidden: Path | None = None) -> list[Path]:
    if hidden is not None:
        write_json(hidden / HIDDEN_MANIFEST, build_hidden_manifest(root, hidden))
        return [hidden / HIDDEN_MANIFEST]
    write_json(root / MANIFEST, build_manifest(root))
    write_json(root / CLASSROOM, classroom_config(root))
    return [root / MANIFEST, root / CLASSROOM]


def load_manifest(root: Path) -> dict:
    if not (root / MANIFEST).is_file():
        raise GradeError(f"{root / MANIFEST} is missing; a maintainer runs `{UPDATE_COMMAND}`")
    return json.loads((root / MANIFEST).read_text())


def verify(root: Path, manifest: dict) -> tuple[list[str], dict[str, list[str]]]:
    """Problems with the grader's files, and with each kata's spec files, against the manifest.
    (Files the manifest does not name are never copied into a run, so they do not matter.)"""

    def check(paths: dict[str, str]) -> list[str]:
        problems = []
        for path, digest in paths.items():
            if not (root / path).is_file():
                problems.append(f"{path} is missing")
            elif fetch.sha256_of(root / path) != digest:
                problems.append(f"{path} was changed")
        return problems

    return check(manifest["grader"]), {d: check(e["files"]) for d, e in manifest["katas"].items()}


def number(x: float) -> float | int:
    """10.0 -> 10 (JSON readers such as Classroom expect whole points as integers)."""
    return int(x) if float(x).is_integer() else round(float(x), 2)


@dataclass
class Points:
    default: float
    katas: dict[str, float]
    hidden_weight: float

    def of(self, kata: Kata) -> float | int:
        return number(self.katas.get(kata.dirname, self.default))


def load_points(root: Path) -> Points:
    data = json.loads((root / POINTS).read_text())
    return Points(data.get("default", 10), data.get("katas", {}), data.get("hidden_weight", 1))


# --- one kata's run, in a sandbox ------------------------------------------------------------


@dataclass
class Limits:
    test_timeout: float = 60.0  # seconds a spec may run
    kata_timeout: float = 600.0  # seconds all of a kata's runs may take together
    memory: int = 4 << 30  # bytes of address space for a kata's process
    file_size: int = 1 << 30  # largest file a kata's process may write


@dataclass
class Setup:
    """Where everything comes from for one grading."""

    canon: Path  # the trusted tree: specs, harness, conftest, points
    learner: Path  # the tree whose kata modules are graded
    impl: str  # "katas" or "solutions": which directory of `learner` holds the modules
    hidden: Path | None
    manifest: dict
    hidden_manifest: dict | None
    limits: Limits
    threads: int = 1
    data: Path = ROOT / "data"  # where the data files are copied from (checked by sha256)


def build_sandbox(box: Path, setup: Setup, katas: list[Kata], public: bool = True,
                  control: str | None = None) -> list[str]:
    """Fill `box` with the trusted files, the learner's modules, and the specs of `katas`;
    return the paths for pytest to run, in order."""
    (box / "pytest.ini").write_text(PYTEST_INI)
    for path in setup.manifest["grader"]:
        (box / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(setup.canon / path, box / path)
    for name, spec in fetch.FILES.items():
        source = setup.data / name
        if (source.is_file() and source.stat().st_size == spec.size
                and fetch.sha256_of(source) == spec.sha256):
            shutil.copyfile(source, box / "data" / name)
    every_kata = {kata_of(d) for d in setup.manifest["katas"]} | set(discover(setup.learner))
    for kata in sorted(every_kata, key=lambda k: k.number):
        (box / "katas" / kata.dirname).mkdir(parents=True, exist_ok=True)
        source = setup.learner / setup.impl / kata.dirname
        for module in sorted(source.glob("*.py")) if source.is_dir() else []:
            if is_module(module):
                shutil.copyfile(module, box / "katas" / kata.dirname / module.name)
    paths = []
    for kata in katas:
        if public:
            for path in setup.manifest["katas"].get(kata.dirname, {}).get("files", {}):
                shutil.copyfile(setup.canon / path, box / path)
            paths.append(f"katas/{kata.dirname}")
        if setup.hidden is not None and (setup.hidden / kata.dirname).is_dir():
            (box / "hidden" / kata.dirname).mkdir(parents=True)
            for f in sorted((setup.hidden / kata.dirname).iterdir()):
                if f.is_file():
                    shutil.copyfile(f, box / "hidden" / kata.dirname / f.name)
            paths.append(f"hidden/{kata.dirname}")
    if control:
        (box / f"grader_{control}").mkdir()
        (box / f"grader_{control}" / f"test_control_{control}.py").write_text(
            CONTROL_SPECS.format(nonce=control))
        paths.append(f"grader_{control}")
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


def _child_env(box: Path, threads: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "SYSTEMROOT")
           if k in os.environ}
    env.update(HOME=str(box), TMPDIR=str(box), CI="true", HYPOTHESIS_PROFILE="ci",
               PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               GPT_KATAS_IMPL="katas", GPT_KATAS_REF="")
    return env


def run_pytest(box: Path, args: list[str], limits: Limits, deadline: float, threads: int = 1,
               collect_only: bool = False) -> Attempt:
    """Run pytest in `box`, reading its events as they come; stop it if it hangs."""
    attempt = Attempt()
    read_end, write_end = os.pipe()
    log = tempfile.TemporaryFile()
    cpu = max(1, int(deadline - time.monotonic()) + 5)
    cmd = [sys.executable, "-c", LAUNCHER, str(limits.memory), str(cpu), str(limits.file_size),
           "-c", "pytest.ini", "--rootdir", ".", "-q", "-p", "harness.report",
           f"--report-fd={write_end}", f"--test-timeout={limits.test_timeout:g}",
           "--impl=katas", "--ref=", *(["--collect-only"] if collect_only else []), *args]
    try:
        proc = subprocess.Popen(cmd, cwd=box, env=_child_env(box, threads),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=[write_end], start_new_session=True)
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
    finished = False
    spec_deadline = time.monotonic() + limits.test_timeout + IMPORT_ALLOWANCE + GRACE
    while True:
        try:
            event = events.get(timeout=max(0.0, min(spec_deadline, deadline) - time.monotonic()))
        except queue.Empty:
            attempt.ended = "out_of_time" if deadline <= spec_deadline else "hung"
            _kill(proc)
            break
        if event is None:  # the pipe closed: the process ended
            attempt.ended = "done" if finished else "exited"
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
            finished, attempt.running = True, None
        spec_deadline = time.monotonic() + limits.test_timeout + GRACE
    if attempt.ended == "exited" and attempt.running is None and attempt.collected is not None \
            and not _missing(attempt):
        attempt.ended = "done"  # every spec reported; what happened after does not matter
    try:
        attempt.returncode = proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        _kill(proc)
        attempt.returncode = proc.wait()
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 3000))
    attempt.output = log.read().decode("utf-8", "replace")
    log.close()
    return attempt


def _missing(attempt: Attempt) -> list[str]:
    return [n for n in attempt.collected or [] if n not in attempt.records]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def collect_ids(canon: Path, learner: Path, impl: str, katas: list[Kata],
                hidden: Path | None = None, public: bool = True) -> list[str]:
    """The spec ids of `katas` (collect only, against `impl`), for the manifest."""
    setup = Setup(canon, learner, impl, hidden, {"grader": {p: "" for p in grader_files(canon)},
                  "katas": {k.dirname: {"files": {p: "" for p in spec_files(canon, k)}}
                            for k in discover(canon)}}, None, Limits(test_timeout=120))
    with tempfile.TemporaryDirectory(prefix="gpt-katas-collect-") as tmp:
        box = Path(tmp)
        paths = build_sandbox(box, setup, katas, public=public)
        attempt = run_pytest(box, paths, setup.limits, time.monotonic() + 600, collect_only=True)
    if attempt.import_errors or attempt.collected is None:
        problems = "\n".join(e.get("longrepr") or e.get("message", "")
                             for e in attempt.import_errors)
        raise GradeError(f"collecting the specs against {impl}/ failed:\n"
                         f"{problems or attempt.output}")
    if hidden is not None:  # ids relative to the hidden directory, as its manifest keeps them
        return [i.removeprefix("hidden/") for i in attempt.collected if i.startswith("hidden/")]
    return attempt.collected


# --- grading a kata ----------------------------------------------------------------------------


@dataclass
class Spec:
    nodeid: str
    kata: Kata
    hidden: bool
    status: str = "error"  # pass | fail | error
    message: str = ""
    output: str = ""
    duration: float = 0.0
    longrepr: str = ""

    @property
    def name(self) -> str:
        return ("[hidden] " if self.hidden else "") + self.nodeid.split("::", 1)[-1]

    @property
    def file(self) -> str:
        return self.nodeid.split("::", 1)[0]


@dataclass
class KataResult:
    kata: Kata
    specs: list[Spec]
    max_score: float
    status: str = "fail"  # pass | fail | error
    message: str = ""  # why the kata is an error, or its first failure
    notes: list[str] = field(default_factory=list)
    score: float = 0.0

    def passed(self, hidden: bool | None = None) -> int:
        return sum(s.status == "pass" for s in self.specs if hidden is None or s.hidden == hidden)

    def total(self, hidden: bool | None = None) -> int:
        return sum(1 for s in self.specs if hidden is None or s.hidden == hidden)


def _expected_ids(setup: Setup, kata: Kata) -> tuple[list[str], list[str] | None]:
    """The public spec ids from the manifest; the hidden ones from the hidden manifest (None:
    there is none, so the ids the run collects are taken)."""
    public = list(setup.manifest["katas"].get(kata.dirname, {}).get("specs", []))
    if setup.hidden is None or not (setup.hidden / kata.dirname).is_dir():
        return public, []
    if setup.hidden_manifest is None:
        return public, None
    return public, [f"hidden/{i}" for i in setup.hidden_manifest["specs"]
                    if i.startswith(f"{kata.dirname}/")]


def _crash_line(output: str) -> str:
    """The exception that ended a pytest process, and where, from what it printed."""
    lines = [line.removeprefix("INTERNALERROR>").strip() for line in output.splitlines()]
    error = next((line for line in reversed(lines)
                  if re.match(r"^[A-Za-z_][\w.]*(Error|Exit|Exception|Interrupt)\b", line)), "")
    where = next((line for line in reversed(lines)
                  if line.startswith("File ") and "/katas/" in line), "")
    where = re.sub(r'File ".*?/(katas/[^"]+)"', r"\1", where)
    return f"{error} ({where})" if error and where else error or "(no error message; see the log)"


def _tail(text: str, cap: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= cap else "..." + text[-cap:]


def grade_kata(kata: Kata, setup: Setup, refuse: str = "") -> KataResult:
    """Run one kata's specs (unless `refuse` says why not) and score them."""
    points = load_points(setup.canon)
    public_ids, hidden_ids = _expected_ids(setup, kata)
    hidden_known = hidden_ids is not None
    specs = {i: Spec(i, kata, False) for i in public_ids}
    specs.update({i: Spec(i, kata, True) for i in hidden_ids or []})
    result = KataResult(kata, list(specs.values()), points.of(kata))

    def fail_all(message: str) -> KataResult:
        for spec in result.specs:
            spec.status, spec.message = "error", message
        result.status, result.message = "error", message
        return result

    if refuse:
        return fail_all(refuse)
    if kata.dirname not in setup.manifest["katas"]:
        return fail_all(f"not graded: katas/{kata.dirname} has no entry in {MANIFEST}; "
                        f"a maintainer runs `{UPDATE_COMMAND}`")
    if not (setup.learner / setup.impl / kata.dirname).is_dir():
        return fail_all(f"not graded: {setup.impl}/{kata.dirname} is missing from the tree graded")

    control = secrets.token_hex(4)
    control_ids = {f"grader_{control}/test_control_{control}.py::test_control_{what}_{control}"
                   for what in ("check", "assert")}
    records: dict[str, dict] = {}
    stopped: set[str] = set()  # specs that broke a run, recorded as errors
    kata_errors: list[str] = []
    deadline = time.monotonic() + setup.limits.kata_timeout
    for attempt_number in range(1, MAX_ATTEMPTS + 1):
        with tempfile.TemporaryDirectory(prefix=f"gpt-katas-grade-{kata.dirname}-") as tmp:
            box = Path(tmp)
            paths = build_sandbox(box, setup, [kata], control=control)
            done = sorted(set(records) | stopped)
            args = [*paths, *(a for nodeid in done for a in ("--deselect", nodeid))]
            attempt = run_pytest(box, args, setup.limits, deadline, setup.threads)
        if not hidden_known and attempt.collected is not None:
            hidden_known = True
            for nodeid in attempt.collected:
                if nodeid.startswith("hidden/") and nodeid not in specs:
                    specs[nodeid] = Spec(nodeid, kata, True)
            result.specs = list(specs.values())
            result.notes.append("the hidden specs have no manifest: their ids are the ones the "
                                "run collected")
        records.update(attempt.records)
        if attempt.import_errors:
            first = attempt.import_errors[0]
            message = first.get("message") or _tail(first.get("longrepr", ""))
            kata_errors.append(f"importing the specs (and so the modules they test) failed: "
                               f"{message}")
            for error in attempt.import_errors:
                for spec in specs.values():
                    if spec.file == error["nodeid"] and spec.nodeid not in records:
                        records[spec.nodeid] = {"outcome": "error", "message": message,
                                                "longrepr": error.get("longrepr", "")}
        if attempt.ended == "done":
            if not attempt.collected and not attempt.import_errors:
                kata_errors.append("importing the specs stopped pytest before any spec ran: "
                                   + _crash_line(attempt.output))
            break
        what = {
            "hung": f"stopped after {setup.limits.test_timeout + GRACE:g} s without progress "
                    f"(an endless loop?)",
            "out_of_time": f"stopped: the kata's {setup.limits.kata_timeout:g} s were used up",
            "exited": f"the process ended (exit status {attempt.returncode}: sys.exit, os._exit, "
                      f"a crash, or out of memory?)",
        }[attempt.ended]
        if attempt.running is not None:
            records[attempt.running] = {"outcome": "error", "message": f"{what} during this spec",
                                        "longrepr": _tail(attempt.output)}
            stopped.add(attempt.running)
            kata_errors.append(f"{attempt.running.split('::', 1)[-1]}: {what}")
            if attempt.ended != "out_of_time" and attempt_number < MAX_ATTEMPTS:
                continue  # grade the specs after it
            break
        phase = "while importing the specs" if attempt.collected is None else "between specs"
        kata_errors.append(f"{what} {phase}: {_crash_line(attempt.output)}")
        break

    unexpected = [n for n in records if n not in specs and n not in control_ids]
    if unexpected:
        result.notes.append(f"{len(unexpected)} spec result(s) not in the manifest were ignored")
    not_run = [spec for nodeid, spec in specs.items() if nodeid not in records]
    if not_run and not kata_errors:
        kata_errors.append(f"{len(not_run)} spec(s) did not run: the run stopped early or did not "
                           f"collect them: {_crash_line(attempt.output)}")
    for spec in not_run:
        spec.status, spec.message = "error", "not run: " + kata_errors[-1]
    for nodeid, spec in specs.items():
        record = records.get(nodeid)
        if record is None:
            continue
        outcome = record.get("outcome")
        spec.status = {"passed": "pass", "failed": "fail", "skipped": "fail"}.get(outcome, "error")
        spec.message = str(record.get("message", ""))[:MESSAGE_CAP]
        if outcome == "skipped":
            spec.message = f"skipped: a skipped spec earns no points ({spec.message})"
        spec.longrepr = str(record.get("longrepr", ""))[:MESSAGE_CAP * 4]
        spec.output = str(record.get("output", ""))
        spec.duration = float(record.get("duration", 0.0) or 0.0)
        if TIMEOUT_MARK in spec.message:
            kata_errors.append(f"{spec.name}: {spec.message.split(':', 1)[-1].strip()}")

    controls = [records.get(i) for i in control_ids]
    complete = not kata_errors and not not_run
    if any(c.get("outcome") != "failed" if c else complete for c in controls):
        return fail_all("not graded: the grader's control specs, which must fail, did not; "
                        "something in the code graded changes how specs check or report")
    weights = {True: points.hidden_weight, False: 1.0}
    total = sum(weights[s.hidden] for s in result.specs)
    passed = sum(weights[s.hidden] for s in result.specs if s.status == "pass")
    result.score = number(result.max_score * passed / total) if total else 0
    if not result.specs:
        kata_errors.append("no spec to grade")
    if kata_errors:
        result.status, result.message = "error", "; ".join(dict.fromkeys(kata_errors))
    elif all(s.status == "pass" for s in result.specs):
        result.status, result.message = "pass", ""
    else:
        first = next(s for s in result.specs if s.status != "pass")
        result.status, result.message = "fail", f"{first.name}: {first.message}"
    return result


# --- the whole grading -----------------------------------------------------------------------


@dataclass
class Grade:
    katas: list[KataResult]
    grader_problems: list[str]
    manifest_sha256: str
    mode: str
    hidden: bool

    @property
    def score(self) -> float | int:
        return number(sum(k.score for k in self.katas))

    @property
    def max_score(self) -> float | int:
        return number(sum(k.max_score for k in self.katas))

    @property
    def status(self) -> str:
        if self.grader_problems or any(k.status == "error" for k in self.katas):
            return "error"
        return "pass" if all(k.status == "pass" for k in self.katas) else "fail"

    def line(self) -> str:
        done = sum(k.status == "pass" for k in self.katas)
        specs = sum(k.passed() for k in self.katas), sum(k.total() for k in self.katas)
        errors = [k.kata.dirname for k in self.katas if k.status == "error"]
        text = (f"grade: {self.score:g} / {self.max_score:g} points; {done} of {len(self.katas)} "
                f"katas complete; {specs[0]} of {specs[1]} specs pass")
        if self.grader_problems:
            text += "; the grader's own files were changed, nothing graded"
        elif errors:
            text += "; errors in " + ", ".join(errors)
        return text


def grade(setup: Setup, katas: list[Kata], jobs: int = 1, mode: str = "working tree") -> Grade:
    grader_problems, kata_problems = verify(setup.canon, setup.manifest)

    def refusal(kata: Kata) -> str:
        problems = grader_problems or kata_problems.get(kata.dirname, [])
        if not problems:
            return ""
        whose = "the grader's files" if grader_problems else "the specs"
        return (f"not graded: {whose} differ from the manifest ({'; '.join(problems)}). "
                f"Restore them: `git checkout -- {' '.join(p.split()[0] for p in problems)}`")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda k: grade_kata(k, setup, refusal(k)), katas))
    if setup.learner != setup.canon:  # edits to the learner's own copy of the specs do not count
        for result in results:
            canonical = setup.manifest["katas"].get(result.kata.dirname, {}).get("files", {})
            theirs = [p for p in canonical
                      if (setup.learner / p).is_file()
                      and fetch.sha256_of(setup.learner / p) != fetch.sha256_of(setup.canon / p)]
            if theirs:
                result.notes.append("graded with the canonical specs; these differ in the tree "
                                    "graded: " + ", ".join(theirs))
    digest = hashlib.sha256(json.dumps(setup.manifest, sort_keys=True).encode()).hexdigest()
    return Grade(results, grader_problems, digest, mode, setup.hidden is not None)


# --- reports -----------------------------------------------------------------------------------


def _cap(text: str, cap: int = OUTPUT_CAP) -> str:
    if len(text) <= cap:
        return text
    note = "\n... (output truncated)"
    return text[: cap - len(note)] + note


class _TestCode:
    """The source of a spec function, for the exercism interface's test_code."""

    def __init__(self, roots: list[Path]):
        self.roots = roots
        self.cache: dict[str, dict[str, str]] = {}

    def __call__(self, spec: Spec) -> str:
        file = spec.file.removeprefix("hidden/") if spec.hidden else spec.file
        if file not in self.cache:
            self.cache[file] = {}
            root = self.roots[1] if spec.hidden else self.roots[0]
            path = root / file
            if path.is_file():
                source = path.read_text()
                lines = source.splitlines()
                try:
                    tree = ast.parse(source)
                except SyntaxError:
                    tree = ast.Module(body=[], type_ignores=[])
                for node in ast.walk(tree):
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                        self.cache[file][node.name] = "\n".join(lines[first - 1: node.end_lineno])
        function = spec.nodeid.split("::")[-1].split("[", 1)[0]
        return self.cache[file].get(function, "")


def results_json(result: Grade, setup: Setup) -> dict:
    """The exercism test-runner interface, version 3, extended with points per kata."""
    test_code = _TestCode([setup.canon, setup.hidden or setup.canon])
    errors = [f"{k.kata.dirname}: {k.message}" for k in result.katas if k.status == "error"]
    return {
        "version": 3,
        "status": result.status,
        "message": ("; ".join(result.grader_problems) or "\n".join(errors))
        if result.status == "error" else result.line(),
        "score": result.score,
        "max_score": result.max_score,
        "katas": [
            {
                "kata": k.kata.dirname,
                "task_id": k.kata.number,
                "status": k.status,
                "message": k.message,
                "score": k.score,
                "max_score": k.max_score,
                "passed": k.passed(),
                "total": k.total(),
                **({"hidden_passed": k.passed(True), "hidden_total": k.total(True)}
                   if k.total(True) else {}),
                "notes": k.notes,
            }
            for k in result.katas
        ],
        "tests": [
            {
                "name": f"{s.kata.dirname}: {s.name}",
                "status": s.status,
                "message": s.message or None,
                "output": _cap(s.output) if s.output else None,
                "test_code": test_code(s),
                "task_id": s.kata.number,
                "kata": s.kata.dirname,
                "hidden": s.hidden,
            }
            for k in result.katas
            for s in k.specs
        ],
        "integrity": {
            "mode": result.mode,
            "manifest_sha256": result.manifest_sha256,
            "problems": result.grader_problems,
            "hidden_specs": result.hidden,
        },
    }


def junit_xml(result: Grade) -> bytes:
    suites = ET.Element("testsuites", name="gpt-katas grade",
                        tests=str(sum(k.total() for k in result.katas)))
    for k in result.katas:
        suite = ET.SubElement(suites, "testsuite", name=k.kata.dirname, tests=str(k.total()),
                              failures=str(sum(s.status == "fail" for s in k.specs)),
                              errors=str(sum(s.status == "error" for s in k.specs)),
                              time=f"{sum(s.duration for s in k.specs):.3f}")
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="score", value=f"{k.score:g}")
        ET.SubElement(properties, "property", name="max_score", value=f"{k.max_score:g}")
        for s in k.specs:
            case = ET.SubElement(suite, "testcase", name=s.name,
                                 classname=s.file.removesuffix(".py").replace("/", "."),
                                 time=f"{s.duration:.3f}")
            if s.status != "pass":
                tag = "failure" if s.status == "fail" else "error"
                ET.SubElement(case, tag, message=s.message.splitlines()[0] if s.message else tag
                              ).text = s.longrepr or s.message
            if s.output:
                ET.SubElement(case, "system-out").text = _cap(s.output, 4000)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


def _cell(text: str, cap: int = 160) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    line = line if len(line) <= cap else line[: cap - 1] + "…"
    return line.replace("|", "\\|").replace("`", "'")


def summary_md(result: Grade) -> str:
    lines = [f"## gpt-katas grade: {result.score:g} / {result.max_score:g} points", ""]
    if result.grader_problems:
        lines += ["**Not graded: the grader's own files differ from the manifest:** "
                  + _cell("; ".join(result.grader_problems), 600), ""]
    lines += ["| kata | | points | specs | first problem |", "|---|---|---:|---:|---|"]
    for k in result.katas:
        mark = {"pass": "✓", "fail": "✗", "error": "⚠ error"}[k.status]
        specs = f"{k.passed()}/{k.total()}"
        if k.total(True):
            specs += f" (hidden {k.passed(True)}/{k.total(True)})"
        lines.append(f"| {k.kata.dirname} | {mark} | {k.score:g} / {k.max_score:g} | {specs} "
                     f"| {_cell(k.message)} |")
    notes = [f"- {k.kata.dirname}: {n}" for k in result.katas for n in k.notes]
    lines += ["", result.line() + "."]
    if result.hidden:
        lines.append("Specs marked [hidden] come from the instructor's hidden specs.")
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", f"Manifest sha256 `{result.manifest_sha256[:16]}`, mode: {result.mode}. "
              "Full results: results.json (exercism v3) and junit.xml."]
    return "\n".join(lines) + "\n"


def write_reports(result: Grade, setup: Setup, out: Path) -> None:
    if out.is_symlink() or out.is_file():
        out.unlink()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_json(out / "results.json", results_json(result, setup))
    (out / "junit.xml").write_bytes(junit_xml(result))
    (out / "summary.md").write_text(summary_md(result))


# --- command line ------------------------------------------------------------------------------


def _trusted_tree(ref: str, into: Path) -> Path:
    """The files of git `ref`, extracted: the canonical specs and grader."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                             capture_output=True)
    if archive.returncode != 0:
        raise GradeError(f"--trusted-ref {ref}: {archive.stderr.decode().strip()}")
    tree = into / "trusted"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.grade",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--kata", "-k", action="append", default=[],
                        help="grade only this kata (number or name); repeat for more")
    parser.add_argument("--impl", choices=("katas", "solutions"), default="katas",
                        help="grade the learner's code (katas, the default) or the reference")
    parser.add_argument("--hidden-specs", type=Path,
                        help="an extra spec directory: DIR/NN_name/test_*.py")
    parser.add_argument("--learner", type=Path, help="grade the kata modules of this checkout")
    parser.add_argument("--trusted-ref", help="take the specs and the grader from this git ref")
    parser.add_argument("--out", type=Path, default=ROOT / "grade", help="where the reports go")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every spec passes")
    parser.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=Limits.test_timeout,
                        help="seconds one spec may run (default %(default)g)")
    parser.add_argument("--kata-timeout", type=float, default=Limits.kata_timeout,
                        help="seconds one kata may take in all (default %(default)g)")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory >> 20,
                        help="address space of a kata's process, MiB (default %(default)d)")
    parser.add_argument("--update-manifest", action="store_true",
                        help=f"maintainers: rewrite {MANIFEST} and {CLASSROOM} (with "
                             "--hidden-specs: DIR/manifest.json)")
    args = parser.parse_args(argv)
    try:
        if args.update_manifest:
            for path in update_manifest(ROOT, args.hidden_specs):
                print(f"wrote {path}")
            return 0
        with tempfile.TemporaryDirectory(prefix="gpt-katas-trusted-") as tmp:
            canon = _trusted_tree(args.trusted_ref, Path(tmp)) if args.trusted_ref else ROOT
            learner = (args.learner or ROOT).resolve()
            result, setup = _grade_from_args(args, canon, learner)
            write_reports(result, setup, args.out)
    except GradeError as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2
    print(result.line())
    return 1 if args.strict and result.status != "pass" else 0


def _grade_from_args(args, canon: Path, learner: Path) -> tuple[Grade, Setup]:
    manifest = load_manifest(canon)
    if not (learner / args.impl).is_dir():
        raise GradeError(f"{learner / args.impl} does not exist: nothing to grade")
    hidden = args.hidden_specs.resolve() if args.hidden_specs else None
    if hidden is not None and not hidden.is_dir():
        raise GradeError(f"HIDDEN_SPECS={args.hidden_specs}: no such directory")
    hidden_manifest = None
    if hidden is not None and (hidden / HIDDEN_MANIFEST).is_file():
        hidden_manifest = json.loads((hidden / HIDDEN_MANIFEST).read_text())
        changed = [p for p, digest in hidden_manifest["files"].items()
                   if not (hidden / p).is_file() or fetch.sha256_of(hidden / p) != digest]
        if changed:
            raise GradeError(f"the hidden specs differ from {hidden / HIDDEN_MANIFEST}: "
                             f"{', '.join(changed)}; rerun `{UPDATE_COMMAND} --hidden-specs DIR`")
    limits = Limits(args.timeout, args.kata_timeout, args.memory_mb << 20)
    jobs = max(1, args.jobs)
    setup = Setup(canon, learner, args.impl, hidden, manifest, hidden_manifest, limits,
                  threads=max(1, (os.cpu_count() or 1) // jobs))
    every = sorted({kata_of(d) for d in manifest["katas"]} | set(discover(learner)),
                   key=lambda k: k.number)
    if args.kata:
        wanted = set()
        for key in args.kata:
            text = str(key).strip()
            match = [k for k in every
                     if text in (str(k.number), f"{k.number:02d}", k.name, k.dirname)]
            if not match:
                raise GradeError(f"no kata called {text!r}; the katas are: "
                                 + ", ".join(k.dirname for k in every))
            wanted.update(match)
        every = [k for k in every if k in wanted]
    print(f"grading {len(every)} kata(s) from {learner / args.impl} ...", file=sys.stderr)
    mode = (f"trusted ref {args.trusted_ref}" if args.trusted_ref
            else f"learner {learner}" if args.learner else "working tree")
    return grade(setup, every, jobs, mode), setup


if __name__ == "__main__":
    sys.exit(main())
