"""The grader against a hostile learner (issue 14), and a whole class graded at once.

An instructor's copy of the repository whose only katas are small made-up ones is graded
once (module fixture) against a learner's tree in which each kata from 79 to 87 carries one
class of attack: edits of the grader, of specs and checks during grading, background
processes, modules that shadow libraries or other katas' modules, reading secrets and other
katas' hidden specs, a fork storm, forged reports, and specs that crash (no cap on restarts).
Katas 88 (a wrong answer) and 89 (a right one, with a hidden spec) are the bystanders: they
must come out exactly as they would without the attacks. Every attack must leave the
instructor's files byte-identical and no process running. The payloads need bubblewrap: where
it cannot run, those tests are skipped with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.grader.sandbox import find_sandbox
from harness.handout import repository_files
from harness.katas import ROOT

pytestmark = pytest.mark.slow

SANDBOX = find_sandbox()
needs_bwrap = pytest.mark.skipif(not SANDBOX.sandboxed, reason=SANDBOX.why)

SECRET = "gk-secret-7d1f0c2a"  # in the grader's environment and in its $HOME
HIDDEN_MARK = "hidden-spec-body-5e2b"  # in kata 89's hidden spec
MARK = "120.4242"  # `sleep 120.4242`: how a left-over process of a payload is found

SPEC = "from {module} import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
RIGHT = "def answer():\n    return 42\n"
WRONG = "def answer():\n    return 41\n"

PLAIN_SPEC = (
    "from {module} import answer\n\nfrom harness.checks import expect, expect_close\n\n\n"
    "def test_answer():\n    expect(answer() == 42, 'the answer')\n\n\n"
    "def test_answer_close():\n    expect_close(answer(), 42, 'the answer')\n\n\n"
    "def test_answer_is_not_43():\n    expect(answer() != 43, 'not 43')\n"
)

# Forgers that spare the control specs, each telling them apart in its own way: it rewrites
# the outcome of the specs it picks (pick(nodeid) -> bool), and leaves the others alone.
SPARING = """
        import ast
        import pathlib
        import harness.report

        send = harness.report.Streamer.send

        def pick(nodeid):
            file, _, name = nodeid.partition("::")
            @PICK@

        def forged(self, event, **fields):
            if event == "record" and pick(fields.get("nodeid", "")):
                fields.update(outcome="passed", message="", longrepr="")
            send(self, event, **fields)

        harness.report.Streamer.send = forged

        def answer():
            return 41
        """
# by path and name: the public spec file, and anything under hidden/ (where hidden specs were)
BY_PATH = 'return file == "katas/74_bypath/test_bypath.py" or file.startswith("hidden/")'
# by body: every spec whose body calls the kata's code (the controls never do)
BY_BODY = """tree = ast.parse(pathlib.Path(file).read_text())
            return any(isinstance(node, ast.FunctionDef) and node.name == name.split("[")[0]
                       and any(isinstance(call, ast.Call) and getattr(call.func, "id", "")
                               == "answer" for call in ast.walk(node)) for node in tree.body)"""

# kata dir -> (its spec, the learner's module; {name: text} of extra learner files)
KATAS = {
    "73_bybody": (None, SPARING.replace("@PICK@", BY_BODY), {}),
    "74_bypath": (None, SPARING.replace("@PICK@", BY_PATH), {}),
    "76_channel": (
        None,
        """
        import ast
        import json
        import os
        import pathlib
        import sys

        def write(fd, **event):
            os.write(fd, (json.dumps(event) + "\\n").encode())

        fd = next(int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--report-fd="))
        specs = []
        for path in sorted(pathlib.Path("katas/76_channel").glob("test_*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                    specs.append(f"{path.as_posix()}::{node.name}")
        write(fd, event="collected", nodeids=specs)
        for nodeid in specs:  # the real spec passes; the made-up ones fail, as they should
            real = nodeid.startswith("katas/76_channel/test_channel.py::")
            write(fd, event="start", nodeid=nodeid)
            write(fd, event="record", nodeid=nodeid, name=nodeid.split("::")[1],
                  outcome="passed" if real else "failed", message="", longrepr="", output="")
        write(fd, event="done", exitstatus=0)

        def answer():
            return 41
        """,
        {},
    ),
    "77_anything": (
        PLAIN_SPEC.format(module="anything"),
        """
        class Anything:
            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

        def answer():
            return Anything()
        """,
        {},
    ),
    "78_figures": (
        PLAIN_SPEC.format(module="figures"),
        """
        class Number(float):
            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

            def __float__(self):
                return 42.0

        def answer():
            return Number(41)
        """,
        {},
    ),
    "79_crashy": (
        "import pytest\nfrom crashy import answer, crash\n\n\n"
        "@pytest.mark.parametrize('n', range(8))\ndef test_crash(n):\n"
        "    assert crash() is None\n\n\ndef test_last():\n    assert answer() == 42\n",
        "import os\n\n\ndef crash():\n    os._exit(1)\n\n\n" + RIGHT,
        {},
    ),
    "80_grader": (
        None,
        """
        import pathlib
        written = []
        for target in ["@ROOT@/harness/grade.py", "@ROOT@/harness/grader/kata.py",
                       "@ROOT@/harness/checks.py", "harness/checks.py", "harness/report.py",
                       "conftest.py", "harness/grader/kata.py"]:
            try:
                path = pathlib.Path(target)
                path.write_text(path.read_text() + "\\n# changed by a learner\\n")
                written.append(target)
            except OSError:
                pass

        def answer():
            return 42 if written else 41
        """,
        {},
    ),
    "81_specs": (
        None,
        """
        import pathlib
        written = []
        for root in ("@ROOT@", ".", "/grade"):
            for spec in ("katas/88_answer/test_answer.py", "katas/89_fine/test_fine.py"):
                try:
                    pathlib.Path(root, spec).write_text("def test_answer():\\n    pass\\n")
                    written.append(spec)
                except OSError:
                    pass
        for hidden in pathlib.Path("@HIDDEN@").glob("*/*.py"):
            try:
                hidden.write_text("def test_hidden():\\n    pass\\n")
                written.append(str(hidden))
            except OSError:
                pass

        def answer():
            return 42 if written else 41
        """,
        {},
    ),
    "82_checks": (
        "from checks import answer\n\nfrom harness.checks import expect_close\n\n\n"
        "def test_answer():\n    expect_close(answer(), 42, 'the answer')\n",
        """
        import _pytest.reports
        import harness.checks

        harness.checks.expect_close = lambda *args, **kwargs: None
        original = _pytest.reports.TestReport.__init__

        def always_passed(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.outcome, self.longrepr = "passed", None

        _pytest.reports.TestReport.__init__ = always_passed

        def answer():
            return 41
        """,
        {},
    ),
    "83_background": (
        None,
        """
        import subprocess
        import sys

        later = ("import pathlib, time\\ntime.sleep(6)\\n"
                 "for p in ['@ROOT@/katas/88_answer/test_answer.py', '@OUT@/results.json']:\\n"
                 "    try:\\n        pathlib.Path(p).write_text('forged')\\n"
                 "    except OSError:\\n        pass\\n# @MARK@\\n")
        subprocess.Popen([sys.executable, "-c", later], start_new_session=True)
        subprocess.Popen(["sleep", "@MARK@"], start_new_session=True)

        def answer():
            return 41
        """,
        {},
    ),
    "84_shadow": (
        "import numpy\nfrom shadow import answer\n\n\ndef test_answer():\n"
        "    assert numpy.isclose(answer(), 42)\n",
        WRONG,
        {
            "numpy.py": "def isclose(a, b, **kwargs):\n    return True\n",
            "answer.py": RIGHT,
            "fine.py": WRONG,
            "conftest.py": "import sys\n",
        },
    ),
    "85_secrets": (
        None,
        """
        import os
        import pathlib
        found = []
        for pid in os.listdir("/proc"):
            try:
                if "@SECRET@".encode() in pathlib.Path("/proc", pid, "environ").read_bytes():
                    found.append(f"environ of {pid}")
            except OSError:
                pass
        for path in ("@HOME@/secret.txt", "@HIDDEN@/89_fine/test_fine_hidden.py",
                     "hidden/89_fine/test_fine_hidden.py", os.path.expanduser("~/secret.txt")):
            try:
                found.append(pathlib.Path(path).read_text())
            except OSError:
                pass
        print("found:", found)

        def answer():
            return 42 if found else 41
        """,
        {},
    ),
    "86_forks": (
        None,
        """
        import os

        def answer():
            made = 0
            for _ in range(1000):
                try:
                    pid = os.fork()
                except OSError:
                    break
                if pid == 0:
                    try:
                        os.execv("/usr/bin/sleep", ["sleep", "@MARK@"])
                    finally:
                        os._exit(0)
                made += 1
            return 42 if made >= 1000 else 41
        """,
        {},
    ),
    "87_forge": (
        None,
        """
        import pathlib
        import harness.report

        for path in ("@OUT@/results.json", "@ROOT@/grade/results.json"):
            try:
                pathlib.Path(path).write_text('{"status": "pass", "score": 999}')
            except OSError:
                pass
        send = harness.report.Streamer.send

        def forged(self, event, **fields):
            if event == "record":
                fields.update(outcome="passed", message="", longrepr="")
            send(self, event, **fields)

        harness.report.Streamer.send = forged

        def answer():
            return 41
        """,
        {},
    ),
    "88_answer": (None, WRONG, {}),
    "89_fine": (None, RIGHT, {}),
}

HIDDEN_SPEC = f"""
from fine import answer


def test_hidden_that_passes():
    assert answer() == 42, "{HIDDEN_MARK}"
"""


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env
    )


def module_of(dirname: str) -> str:
    return dirname.split("_", 1)[1]


@pytest.fixture(scope="module")
def instructor(tmp_path_factory) -> Path:
    """The instructor's checkout: the repository with made-up katas, manifests up to date."""
    root = tmp_path_factory.mktemp("instructor")
    for path in repository_files(ROOT):
        if not path.startswith(("katas/", "solutions/", "tests/")):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, root / path)
    for dirname, (spec, _, _) in KATAS.items():
        module = module_of(dirname)
        for where, text in (
            ("katas", "def answer():\n    raise NotImplementedError\n"),
            ("solutions", RIGHT),
        ):
            (root / where / dirname).mkdir(parents=True)
            (root / where / dirname / f"{module}.py").write_text(text)
        (root / "katas" / dirname / f"test_{module}.py").write_text(
            spec or SPEC.format(module=module)
        )
    (root / "solutions" / "79_crashy" / "crashy.py").write_text(
        "def crash():\n    return None\n\n\n" + RIGHT
    )
    hidden = root.with_name(root.name + "-hidden")  # beside it, and its own
    (hidden / "89_fine").mkdir(parents=True)
    (hidden / "89_fine" / "test_fine_hidden.py").write_text(HIDDEN_SPEC)
    for dirname in ("73_bybody", "74_bypath"):
        (hidden / dirname).mkdir(parents=True)
        (hidden / dirname / f"test_{module_of(dirname)}_hidden.py").write_text(
            HIDDEN_SPEC.replace("fine", module_of(dirname))
        )
    for extra in ([], ["--hidden-specs", str(hidden)]):
        done = run(["-m", "harness.grade", "--update-manifest", *extra], root)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def snapshot(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for r in roots for p in sorted(r.rglob("*")) if p.is_file()}


def left_over(mark: str) -> list[str]:
    """Processes whose command line holds `mark`."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if mark.encode() in cmdline and str(os.getpid()) != pid:
            found.append(f"{pid}: {cmdline.decode(errors='replace')[:120]}")
    return found


@pytest.fixture(scope="module")
def attacked(instructor, tmp_path_factory):
    """Grade the attacks' learner tree from the instructor's checkout, once."""
    base = tmp_path_factory.mktemp("attack")
    learner, out, home = base / "learner", base / "out", base / "home"
    home.mkdir()
    (home / "secret.txt").write_text(SECRET)
    hidden = instructor.with_name(instructor.name + "-hidden")
    fill = {
        "@ROOT@": str(instructor),
        "@HIDDEN@": str(hidden),
        "@OUT@": str(out),
        "@HOME@": str(home),
        "@SECRET@": SECRET,
        "@MARK@": MARK,
    }
    for dirname, (_, module, extras) in KATAS.items():
        d = learner / "katas" / dirname
        d.mkdir(parents=True)
        for name, text in {f"{module_of(dirname)}.py": module, **extras}.items():
            text = textwrap.dedent(text)
            for key, value in fill.items():
                text = text.replace(key, value)
            (d / name).write_text(text)
    before = snapshot(instructor, hidden, home)
    env = {**os.environ, "HOME": str(home), "GRADER_TOKEN": SECRET}
    done = run(
        [
            "-m",
            "harness.grade",
            "--learner",
            str(learner),
            "--out",
            str(out),
            "--hidden-specs",
            str(hidden),
            "--timeout",
            "10",
            "--sandbox",
            "bwrap",
        ],
        instructor,
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    leftovers = left_over(MARK)
    results = json.loads((out / "results.json").read_text())
    return {
        "results": results,
        "katas": {k["kata"]: k for k in results["katas"]},
        "before": before,
        "after": snapshot(instructor, hidden, home),
        "leftovers": leftovers,
        "out": out,
    }


def bystanders_are_graded_as_without_attacks(attacked) -> None:
    katas = attacked["katas"]
    assert katas["88_answer"]["status"] == "fail" and katas["88_answer"]["score"] == 0
    fine = katas["89_fine"]
    assert fine["status"] == "pass" and fine["score"] == fine["max_score"], fine
    assert fine["hidden_passed"] == fine["hidden_total"] == 1
    assert attacked["after"] == attacked["before"], (
        "the instructor's files must not change: "
        + ", ".join(
            p
            for p in attacked["after"].keys() ^ attacked["before"].keys()
            or [p for p in attacked["after"] if attacked["after"][p] != attacked["before"].get(p)]
        )
    )
    assert not attacked["leftovers"], f"processes left running: {attacked['leftovers']}"


def scored_zero_or_flagged(attacked, dirname: str) -> dict:
    kata = attacked["katas"][dirname]
    assert kata["score"] == 0 or kata["flags"], kata
    bystanders_are_graded_as_without_attacks(attacked)
    return kata


@needs_bwrap
def test_editing_the_grader_during_grading_changes_nothing(attacked):
    assert scored_zero_or_flagged(attacked, "80_grader")["status"] == "fail"


@needs_bwrap
def test_editing_specs_and_hidden_specs_during_grading_changes_nothing(attacked):
    assert scored_zero_or_flagged(attacked, "81_specs")["status"] == "fail"


@needs_bwrap
def test_patching_the_checks_and_pytest_is_caught_by_the_control_specs(attacked):
    kata = scored_zero_or_flagged(attacked, "82_checks")
    assert kata["score"] == 0 and "forged results" in kata["flags"]
    assert "control specs" in kata["message"]


@needs_bwrap
def test_background_processes_die_with_the_sandbox(attacked):
    assert scored_zero_or_flagged(attacked, "83_background")["score"] == 0


@needs_bwrap
def test_learner_files_cannot_shadow_a_library_or_another_katas_module(attacked):
    kata = scored_zero_or_flagged(attacked, "84_shadow")
    assert kata["status"] == "fail", "numpy.py in a kata folder must not replace numpy"


@needs_bwrap
def test_secrets_and_other_katas_hidden_specs_are_out_of_reach(attacked):
    assert scored_zero_or_flagged(attacked, "85_secrets")["status"] == "fail"
    for test in attacked["results"]["tests"]:
        if test["kata"] == "85_secrets":
            said = (test["output"] or "") + (test["message"] or "")
            assert SECRET not in said and HIDDEN_MARK not in said, said
    assert not any(SECRET in p.read_text() for p in attacked["out"].iterdir())


@needs_bwrap
def test_a_fork_storm_is_capped_and_cleaned_up(attacked):
    assert scored_zero_or_flagged(attacked, "86_forks")["status"] == "fail"


@needs_bwrap
def test_forged_reports_are_caught_and_the_results_file_is_the_graders(attacked):
    kata = scored_zero_or_flagged(attacked, "87_forge")
    assert kata["score"] == 0 and "forged results" in kata["flags"]
    assert attacked["results"]["version"] == 3


@needs_bwrap
def test_an_object_that_equals_anything_earns_nothing(attacked):
    """Issue 24: without patching anything, `answer() == 42` was True (full marks before)."""
    kata = scored_zero_or_flagged(attacked, "77_anything")
    assert kata["score"] == 0 and kata["passed"] == 0, kata
    messages = [
        t["message"] or "" for t in attacked["results"]["tests"] if t["kata"] == "77_anything"
    ]
    assert all("plain values" in m for m in messages), messages


@needs_bwrap
def test_a_number_subclass_that_compares_as_it_likes_earns_nothing(attacked):
    """A float subclass whose == is always True and whose float() is the answer."""
    kata = scored_zero_or_flagged(attacked, "78_figures")
    assert kata["score"] == 0 and kata["passed"] == 0, kata
    assert "redefines" in kata["message"] and "Number" in kata["message"], kata["message"]


@needs_bwrap
def test_events_written_on_the_report_channel_are_caught(attacked):
    """Lines the plugin did not sign (here: a whole forged run, controls failing as they
    should) no longer count: the kata is not graded, flagged."""
    kata = scored_zero_or_flagged(attacked, "76_channel")
    assert kata["score"] == 0 and "forged results" in kata["flags"], kata
    assert "report channel" in kata["message"], kata["message"]


@needs_bwrap
def test_a_forger_that_tells_controls_by_path_and_name_loses_the_hidden_specs(attacked):
    """Controls and hidden specs share the kata's directory and one naming scheme: sparing
    what is not a public spec spares the hidden specs too (before: hidden/ gave them away,
    and this forger had full marks)."""
    kata = attacked["katas"]["74_bypath"]
    assert kata["passed"] == 1 and kata["total"] == 2 and kata["hidden_passed"] == 0, kata
    assert kata["score"] == kata["max_score"] / 2 and not kata["flags"], kata


@needs_bwrap
def test_a_forger_that_reads_spec_bodies_is_not_caught(attacked):
    """What remains (docs/grading.md's trust table): the controls never call the kata's
    code, so a forger that reads each spec's body can spare them and forge the rest, hidden
    specs included. Measured here so that the table stays true."""
    kata = attacked["katas"]["73_bybody"]
    assert kata["score"] == kata["max_score"] and kata["hidden_passed"] == 1, kata
    assert not kata["flags"], kata


@needs_bwrap
def test_specs_after_any_number_of_crashes_are_still_graded(attacked):
    kata = attacked["katas"]["79_crashy"]
    assert kata["status"] == "error" and kata["total"] == 9 and kata["passed"] == 1, kata
    bystanders_are_graded_as_without_attacks(attacked)


def test_a_trusted_ref_ignores_the_working_trees_grader_and_specs(instructor, tmp_path):
    """TRUSTED_REF: the grader and the specs of that commit run, whatever the tree says."""
    repo = tmp_path / "repo"
    shutil.copytree(instructor, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "handout"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    kata = repo / "harness" / "grader" / "kata.py"
    kata.write_text(
        kata.read_text().replace(
            "result.score = number(result.max_score * passed / total) if total else 0",
            "result.score = result.max_score",
        )
    )
    (repo / "katas" / "88_answer" / "test_answer.py").write_text("def test_answer():\n    pass\n")
    (repo / "katas" / "88_answer" / "answer.py").write_text(WRONG)
    done = run(
        [
            "-m",
            "harness.grade",
            "--trusted-ref",
            "HEAD",
            "--kata",
            "88",
            "--out",
            str(tmp_path / "out"),
        ],
        repo,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["score"] == 0 and results["integrity"]["mode"] == "trusted ref HEAD"
    assert results["katas"][0]["status"] == "fail", results["katas"][0]


# --- a whole class -----------------------------------------------------------------------------

STUB = "def answer():\n    raise NotImplementedError('write answer(): see the lesson')\n"
FORGER = textwrap.dedent(KATAS["82_checks"][1])


def class_of_twenty(where: Path) -> dict[str, tuple[str, str, str]]:
    """20 learners' checkouts; name -> (88's points, 89's points, a flag or problem)."""
    plans = {}
    for i in range(6):
        plans[f"solved{i}"] = (RIGHT, RIGHT, "", ("10", "10", ""))
    for i in range(6):
        plans[f"stub{i}"] = (STUB, STUB, "", ("0", "0", ""))
    for i in range(5):
        plans[f"half{i}"] = (STUB, RIGHT, "", ("0", "10", ""))
    plans["forger"] = (STUB, FORGER, "", ("0", "0", "forged results"))
    plans["edited-specs"] = (RIGHT, RIGHT, "spec", ("10", "10", "modified specs"))
    plans["broken"] = (None, None, "", ("", "", "no katas/ directory"))
    for name, (answer, fine, spec, _) in plans.items():
        (where / name).mkdir(parents=True)
        (where / name / "README.md").write_text("a learner's repository\n")
        if answer is None:
            continue
        for dirname, text in (("88_answer", answer), ("89_fine", fine)):
            (where / name / "katas" / dirname).mkdir(parents=True)
            (where / name / "katas" / dirname / f"{module_of(dirname)}.py").write_text(text)
        if spec:
            (where / name / "katas" / "89_fine" / "test_fine.py").write_text(
                "def test_answer():\n    pass\n"
            )
    return {name: plan[3] for name, plan in plans.items()}


def test_grade_class_writes_the_gradebook(instructor, tmp_path):
    expected = class_of_twenty(tmp_path / "class")
    assert len(expected) == 20
    out = tmp_path / "out"
    done = run(
        [
            "-m",
            "harness.grade",
            "--class",
            str(tmp_path / "class"),
            "--kata",
            "88",
            "--kata",
            "89",
            "--out",
            str(out),
            "--timeout",
            "10",
        ],
        instructor,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with (out / "gradebook.csv").open() as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(expected)
    for name, (answer, fine, flag) in expected.items():
        row = rows[name]
        assert (row["88_answer"], row["89_fine"]) == (answer, fine), row
        assert flag in row["flags"] + row["problem"], row
        assert ("not sandboxed" in row["flags"]) == (not SANDBOX.sandboxed) or name == "broken"
        if name != "broken":
            report = json.loads((out / row["reports"] / "results.json").read_text())
            assert report["score"] == float(row["total"])


def test_without_a_sandbox_grading_works_and_says_so(instructor, tmp_path):
    learner = tmp_path / "learner"
    (learner / "katas" / "89_fine").mkdir(parents=True)
    (learner / "katas" / "89_fine" / "fine.py").write_text(RIGHT)
    done = run(
        [
            "-m",
            "harness.grade",
            "--learner",
            str(learner),
            "--kata",
            "89",
            "--out",
            str(tmp_path / "out"),
            "--sandbox",
            "none",
        ],
        instructor,
    )
    assert done.returncode == 0 and "not sandboxed" in done.stdout, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["score"] == results["max_score"] == 10
    assert results["integrity"]["sandbox"].startswith("not sandboxed")
    assert "not sandboxed" in results["integrity"]["flags"]
    assert "**Learner code was not sandboxed**" in (tmp_path / "out" / "summary.md").read_text()


def test_grade_class_clones_from_a_list_of_urls(instructor, tmp_path):
    repo = tmp_path / "alice"
    (repo / "katas" / "89_fine").mkdir(parents=True)
    (repo / "katas" / "89_fine" / "fine.py").write_text(RIGHT)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "solved"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# the class\n{repo}\n{tmp_path / 'bob-does-not-exist'}\n")
    out = tmp_path / "out"
    done = run(
        ["-m", "harness.grade", "--class", str(urls), "--kata", "89", "--out", str(out)], instructor
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with (out / "gradebook.csv").open() as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    assert rows["alice"]["total"] == "10" and rows["alice"]["problem"] == ""
    assert rows["bob-does-not-exist"]["total"] == "0"
    assert "git clone" in rows["bob-does-not-exist"]["problem"]


# --- hostile names in a class, two graders at once, the controls' disguise ---------------------

HOSTILE = {  # a learner's directory name -> what that learner wrote in kata 89
    "gradebook.csv": RIGHT,
    "repositories": RIGHT,
    "learners": STUB,
    '=HYPERLINK("x","y")': RIGHT,
    "+SUM(1)": STUB,
    "-2": RIGHT,
    "@cmd": RIGHT,
    "\tTAB": RIGHT,
    "a b": STUB,
    "a_b": RIGHT,
    "A_B": RIGHT,
    "x" * 200: RIGHT,
}


def test_folder_names_and_cells_are_the_graders():
    from harness.grader.classes import cell, folder_name

    taken: set[str] = set()
    made = [folder_name(n, taken) for n in ["../x", "..", "a/b", "a b", "a_b", "A_B", "", "-rf"]]
    assert made == ["_x", "learner", "a_b", "a_b-2", "a_b-3", "A_B-4", "learner-2", "rf"]
    assert all(len(folder_name(n, set())) <= 64 for n in ("x" * 500, "é" * 100))
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=cmd|' /C calc'!A0"):
        assert cell(dangerous) == "'" + dangerous
    assert cell("alice") == "alice" and cell(10) == "10"


def test_hostile_learner_names_touch_nobody_elses_grade(instructor, tmp_path):
    """Names like the files the grader writes, formulas, and names that collide once made
    safe: every learner gets their own grade, folder and row; the gradebook is written."""
    where = tmp_path / "class"
    for name, text in HOSTILE.items():
        (where / name / "katas" / "89_fine").mkdir(parents=True)
        (where / name / "katas" / "89_fine" / "fine.py").write_text(text)
    out = tmp_path / "out"
    done = run(
        [
            "-m",
            "harness.grade",
            "--class",
            str(where),
            "--kata",
            "89",
            "--out",
            str(out),
            "--timeout",
            "10",
            "--jobs",
            "2",
        ],
        instructor,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gradebook.csv", "learners"]
    with (out / "gradebook.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(HOSTILE)
    shown = {
        row["learner"].removeprefix("'")
        if row["learner"][:2] in ("'=", "'+", "'-", "'@", "'\t")
        else row["learner"]: row
        for row in rows
    }
    assert sorted(shown) == sorted(HOSTILE)
    folders = set()
    for name, text in HOSTILE.items():
        row = shown[name]
        assert row["89_fine"] == ("10" if text == RIGHT else "0"), (name, row)
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
        report = out / row["reports"]
        assert report.parent == out / "learners" and report.name not in folders, row
        folders.add(report.name)
        assert json.loads((report / "results.json").read_text())["score"] == float(row["total"])


def test_two_graders_at_once_get_uid_ranges_of_their_own(tmp_path):
    from harness.grader.sandbox import FIRST_UID, UID_RANGE, claim_uids

    locks = tmp_path / "uids"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from harness.grader.sandbox import claim_uids\n"
            f"print(claim_uids(Path({str(locks)!r})), flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        theirs = int(holder.stdout.readline())
        mine = claim_uids(locks)
        assert theirs == FIRST_UID and mine == FIRST_UID + UID_RANGE
    finally:
        holder.kill()
        holder.wait()
    assert claim_uids(locks) == FIRST_UID, "a grader killed with -9 frees its range"


def test_controls_and_hidden_specs_look_alike_by_path_and_name():
    """In a run's box, hidden spec files and control spec files follow one scheme, and the
    ids map back to the hidden specs' own."""
    import re

    from harness.grader.run import Disguise
    from harness.grader.trusted import kata_of

    kata = kata_of("05_attention")
    public = [
        f"katas/05_attention/test_attention.py::test_{n}"
        for n in ("causal_mask_blocks_the_future", "softmax_rows_sum_to_one", "scale_by_sqrt")
    ]
    hidden = {
        "05_attention/test_attention_hidden.py": b"import pytest\n\n\ndef helper():\n    pass\n\n\n"
        b"def test_hidden_one():\n    pass\n\n\n@pytest.mark.parametrize('n', [1, 2])\n"
        b"def test_hidden_two(n):\n    pass\n"
    }
    disguise = Disguise.make(kata, public, ["katas/05_attention/attention.py"], hidden, "seed")
    words = {w for p in public for w in p.split("::")[1].split("_")[1:]}
    name = re.compile(r"test_[a-z0-9_]+")
    files = sorted(disguise.files)
    assert len(files) == 2 and all(
        re.fullmatch(r"katas/05_attention/test_attention_[a-z]+[0-9]?\.py", f) for f in files
    )
    boxed = [
        disguise.to_box(f"hidden/05_attention/test_attention_hidden.py::{n}")
        for n in ("test_hidden_one", "test_hidden_two[1]")
    ]
    for nodeid in [*boxed, *disguise.control_ids]:
        spec = nodeid.split("::")[1].split("[")[0]
        assert (
            name.fullmatch(spec) and {w.rstrip("0123456789") for w in spec.split("_")[1:]} <= words
        ), nodeid
    assert boxed[1].endswith("[1]") and "def helper" in disguise.files[boxed[0].split("::")[0]]
    assert (
        disguise.to_canonical(boxed[1])
        == "hidden/05_attention/test_attention_hidden.py::test_hidden_two[1]"
    )


# --- forgeries that patch nothing, on a real kata ----------------------------------------------

# Kata 02 left unsolved: every answer an object that equals anything (4.21 of 10 points
# before issue 24), or numbers, lists and strings whose == is always True (5.79 of 10).
EQUALS_ANYTHING = """# A forger: nothing is implemented; every answer equals anything.


class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return self

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return True

    def __contains__(self, item):
        return True

    def __getitem__(self, key):
        return self


class CharTokenizer(Anything):
    def __init__(self, *args, **kwargs):
        pass

    @classmethod
    def from_dict(cls, d):
        return cls()

    @classmethod
    def load(cls, path):
        return cls()
"""
SUBCLASSES = """# A forger: nothing is implemented; numbers and lists that equal anything.


class Number(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class Ids(list):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


class Text(str):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


class CharTokenizer:
    def __init__(self, text="", bos=False):
        self.chars = Ids()
        self.stoi = Ids()
        self.itos = Ids()
        self.vocab_size = Number(0)
        self.bos_id = None if not bos else Number(0)

    def encode(self, text):
        return Ids([Number(0)] * len(text))

    def decode(self, ids):
        return Text("")

    def to_dict(self):
        return Ids()

    @classmethod
    def from_dict(cls, d):
        return cls()

    def save(self, path):
        pass

    @classmethod
    def load(cls, path):
        return cls()
"""


@pytest.fixture(scope="module")
def kata02(tmp_path_factory) -> Path:
    """An instructor's checkout whose only kata is the real kata 02, manifest up to date."""
    root = tmp_path_factory.mktemp("kata02")
    for path in repository_files(ROOT):
        if not path.startswith(("katas/", "solutions/", "tests/")) or path.startswith(
            ("katas/02_tokenizer/", "solutions/02_tokenizer/")
        ):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, root / path)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for data in (ROOT / "data").glob("*.txt"):
        shutil.copy2(data, root / "data" / data.name)
    done = run(["-m", "harness.grade", "--update-manifest"], root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@needs_bwrap
@pytest.mark.parametrize("forger", [EQUALS_ANYTHING, SUBCLASSES], ids=["equals", "subclass"])
def test_forgeries_that_patch_nothing_score_nothing_on_a_real_kata(kata02, tmp_path, forger):
    learner = tmp_path / "learner"
    (learner / "katas" / "02_tokenizer").mkdir(parents=True)
    (learner / "katas" / "02_tokenizer" / "tokenizer.py").write_text(forger)
    done = run(
        [
            "-m",
            "harness.grade",
            "--learner",
            str(learner),
            "--kata",
            "02",
            "--out",
            str(tmp_path / "out"),
            "--timeout",
            "20",
        ],
        kata02,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kata = json.loads((tmp_path / "out" / "results.json").read_text())["katas"][0]
    assert kata["score"] == 0 and kata["passed"] == 0, kata
    assert "plain values" in kata["message"], kata["message"]
