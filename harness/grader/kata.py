"""Grading one kata: which specs count, runs until every one has an outcome, the score.

The specs that count are the manifest's (and the hidden manifest's), never whatever a run
reports. A spec that hangs or kills its run is an error, and a new run grades the specs after
it, as many times as it takes, within the kata's time. Two control specs made up for each run
must fail; if one passes, or never reports, something rewrote the outcomes and the kata gets 0.
So does a line on the report channel that the grader's plugin did not sign, and a result for a
spec other than the one running (harness/grader/run.py checks both).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from harness.grader.run import GRACE, Attempt, Disguise, Setup, run_pytest
from harness.grader.trusted import MANIFEST, UPDATE_COMMAND, number
from harness.katas import Kata

MESSAGE_CAP = 4000
TIMEOUT_MARK = "this spec ran longer than"  # start of harness.report's TimeoutError message


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
    flags: list[str] = field(default_factory=list)  # for the gradebook: "forged results", ...
    score: float = 0.0
    hidden_weight: float = 1.0  # what a hidden spec weighs against a public one

    def passed(self, hidden: bool | None = None) -> int:
        return sum(s.status == "pass" for s in self.specs if hidden is None or s.hidden == hidden)

    def total(self, hidden: bool | None = None) -> int:
        return sum(1 for s in self.specs if hidden is None or s.hidden == hidden)


def expected_ids(setup: Setup, kata: Kata) -> tuple[list[str], list[str] | None]:
    """The public spec ids from the manifest; the hidden ones from the hidden manifest (None:
    there is none, so the ids the run collects are taken)."""
    trusted = setup.trusted
    public = list(trusted.manifest["katas"].get(kata.dirname, {}).get("specs", []))
    if not any(k.startswith(f"{kata.dirname}/") for k in trusted.hidden):
        return public, []
    if trusted.hidden_ids is None:
        return public, None
    return public, [f"hidden/{i}" for i in trusted.hidden_ids if i.startswith(f"{kata.dirname}/")]


def crash_line(output: str) -> str:
    """The exception that ended a pytest process, and where, from what it printed."""
    lines = [line.removeprefix("INTERNALERROR>").strip() for line in output.splitlines()]
    error = next(
        (
            line
            for line in reversed(lines)
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exit|Exception|Interrupt)\b", line)
        ),
        "",
    )
    where = next(
        (line for line in reversed(lines) if line.startswith("File ") and "/katas/" in line), ""
    )
    where = re.sub(r'File ".*?/(katas/[^"]+)"', r"\1", where)
    return f"{error} ({where})" if error and where else error or "(no error message; see the log)"


def _tail(text: str, cap: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= cap else "..." + text[-cap:]


def grade_kata(kata: Kata, setup: Setup, refuse: str = "") -> KataResult:
    """Run one kata's specs (unless `refuse` says why not) and score them."""
    points = setup.trusted.points
    public_ids, hidden_ids = expected_ids(setup, kata)
    hidden_known = hidden_ids is not None
    specs = {i: Spec(i, kata, False) for i in public_ids}
    specs.update({i: Spec(i, kata, True) for i in hidden_ids or []})
    result = KataResult(
        kata, list(specs.values()), points.of(kata), hidden_weight=points.hidden_weight
    )

    def fail_all(message: str, flag: str = "") -> KataResult:
        for spec in result.specs:
            spec.status, spec.message = "error", message
        result.status, result.message, result.score = "error", message, 0
        result.flags += [flag] if flag else []
        return result

    if refuse:
        return fail_all(
            refuse, "modified grader" if "grader's files" in refuse else "modified specs"
        )
    if kata.dirname not in setup.trusted.manifest["katas"]:
        return fail_all(
            f"not graded: katas/{kata.dirname} has no entry in {MANIFEST}; "
            f"a maintainer runs `{UPDATE_COMMAND}`"
        )
    if not (setup.learner / setup.impl / kata.dirname).is_dir():
        return fail_all(f"not graded: {setup.impl}/{kata.dirname} is missing from the tree graded")

    taken = [
        *setup.trusted.manifest["katas"][kata.dirname]["files"],
        *(f"katas/{kata.dirname}/{m}" for m in setup.trusted.modules(kata)),
    ]
    hidden = {k: v for k, v in setup.trusted.hidden.items() if k.startswith(f"{kata.dirname}/")}
    disguise = Disguise.make(kata, public_ids, taken, hidden, secrets.token_hex(8))
    control_ids = disguise.control_ids
    forged: list[str] = []
    records: dict[str, dict] = {}
    stopped: set[str] = set()  # specs that broke a run, recorded as errors
    kata_errors: list[str] = []
    deadline = time.monotonic() + setup.limits.kata_timeout
    attempt = Attempt()
    while True:
        done = sorted(set(records) | stopped)
        args = [a for nodeid in done for a in ("--deselect", disguise.to_box(nodeid))]
        attempt = disguise.translate(run_pytest(setup, [kata], args, deadline, disguise=disguise))
        forged += attempt.forged
        if not hidden_known and attempt.collected is not None:
            hidden_known = True
            for nodeid in attempt.collected:
                if nodeid.startswith("hidden/") and nodeid not in specs:
                    specs[nodeid] = Spec(nodeid, kata, True)
            result.specs = list(specs.values())
            result.notes.append(
                "the hidden specs have no manifest: their ids are the ones the run collected"
            )
        records.update(attempt.records)
        if attempt.import_errors:
            first = attempt.import_errors[0]
            message = first.get("message") or _tail(first.get("longrepr", ""))
            kata_errors.append(
                f"importing the specs (and so the modules they test) failed: {message}"
            )
            for error in attempt.import_errors:
                for spec in specs.values():
                    if spec.file == error["nodeid"] and spec.nodeid not in records:
                        records[spec.nodeid] = {
                            "outcome": "error",
                            "message": message,
                            "longrepr": error.get("longrepr", ""),
                        }
        if attempt.ended == "done":
            if not attempt.collected and not attempt.import_errors and not done:
                kata_errors.append(
                    "importing the specs stopped pytest before any spec ran: "
                    + crash_line(attempt.output)
                )
            break
        what = {
            "hung": f"stopped after {setup.limits.test_timeout + GRACE:g} s without progress "
            f"(an endless loop?)",
            "out_of_time": f"stopped: the kata's {setup.limits.kata_timeout:g} s were used up",
            "exited": f"the process ended (exit status {attempt.returncode}: sys.exit, os._exit, "
            f"a crash, or out of memory?)",
        }[attempt.ended]
        if attempt.running is not None:
            records[attempt.running] = {
                "outcome": "error",
                "message": f"{what} during this spec",
                "longrepr": _tail(attempt.output),
            }
            stopped.add(attempt.running)
            kata_errors.append(f"{attempt.running.split('::', 1)[-1]}: {what}")
            if attempt.ended != "out_of_time":
                continue  # grade the specs after it, however many broke before
            break
        phase = "while importing the specs" if attempt.collected is None else "between specs"
        kata_errors.append(f"{what} {phase}: {crash_line(attempt.output)}")
        break
    return _score(result, specs, records, kata_errors, control_ids, attempt, forged)


def _score(
    result: KataResult,
    specs: dict[str, Spec],
    records: dict[str, dict],
    kata_errors: list[str],
    control_ids: list[str],
    attempt: Attempt,
    forged: list[str] | None = None,
) -> KataResult:
    unexpected = [n for n in records if n not in specs and n not in control_ids]
    if unexpected:
        result.notes.append(f"{len(unexpected)} spec result(s) not in the manifest were ignored")
    not_run = [spec for nodeid, spec in specs.items() if nodeid not in records]
    if not_run and not kata_errors:
        kata_errors.append(
            f"{len(not_run)} spec(s) did not run: the run stopped early or did not "
            f"collect them: {crash_line(attempt.output)}"
        )
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
        spec.longrepr = str(record.get("longrepr", ""))[: MESSAGE_CAP * 4]
        spec.output = str(record.get("output", ""))
        spec.duration = float(record.get("duration", 0.0) or 0.0)
        if TIMEOUT_MARK in spec.message:
            kata_errors.append(f"{spec.name}: {spec.message.split(':', 1)[-1].strip()}")

    controls = [records.get(i) for i in control_ids]
    complete = not kata_errors and not not_run
    failed_controls = any(c.get("outcome") != "failed" if c else complete for c in controls)
    if failed_controls or forged:
        message = (
            "not graded: the grader's control specs, which must fail, did not; "
            "something in the code graded changes how specs check or report"
            if failed_controls
            else "not graded: the report channel carried what the grader's plugin did not "
            f"send ({forged[0]}); something in the code graded forges results"
        )
        for spec in result.specs:
            spec.status, spec.message = "error", message
        result.status, result.message, result.score = "error", message, 0
        result.flags.append("forged results")
        return result
    weights = {True: result.hidden_weight, False: 1.0}
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
