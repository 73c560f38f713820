"""`make grade`, the handout, and the CI files for learners' forks (issue 7, docs/grading.md).

Grading every kata takes a while, so each grading runs once per module (module fixtures) in a
copy of the repository under tmp_path; the broken-kata cases use a copy whose only katas are
small made-up ones that hang, crash, exit, cheat, hog memory or have an edited spec.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.grader import trusted as grade
from harness.handout import build, repository_files
from harness.katas import ROOT, discover

pytestmark = pytest.mark.slow

# The fields of .github/classroom/autograding.json as GitHub Classroom's autograding action
# reads them (no public JSON schema exists for this file, so it is written out here).
CLASSROOM_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["tests"],
    "additionalProperties": False,
    "properties": {
        "tests": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "run", "comparison", "timeout", "points"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "setup": {"type": "string"},
                    "run": {"type": "string", "minLength": 1},
                    "input": {"type": "string"},
                    "output": {"type": "string"},
                    "comparison": {"enum": ["included", "exact", "regex"]},
                    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                    "points": {"type": "integer", "minimum": 0},
                },
            },
        }
    },
}

# The exercism test-runner interface, version 3, and the fields this grader adds.
RESULTS_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "status", "message", "tests", "score", "max_score", "katas"],
    "properties": {
        "version": {"const": 3},
        "status": {"enum": ["pass", "fail", "error"]},
        "message": {"type": ["string", "null"]},
        "score": {"type": "number"},
        "max_score": {"type": "number"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status", "message", "output", "test_code", "task_id"],
                "properties": {
                    "name": {"type": "string"},
                    "status": {"enum": ["pass", "fail", "error"]},
                    "message": {"type": ["string", "null"]},
                    "output": {"type": ["string", "null"], "maxLength": 500},
                    "test_code": {"type": "string"},
                    "task_id": {"type": "integer", "minimum": 1},
                },
            },
        },
        "katas": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kata", "status", "message", "score", "max_score", "passed", "total"],
            },
        },
    },
}

FIXED = "fresh-manifest"  # the copy whose manifest was just rebuilt


def run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def copy_repository(dest: Path, keep=lambda path: True) -> Path:
    for path in repository_files(ROOT):
        if keep(path):
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, dest / path)
    (dest / "data").mkdir(parents=True, exist_ok=True)
    for data in (ROOT / "data").glob("*.txt"):
        shutil.copy2(data, dest / "data" / data.name)
    return dest


def update_manifest(root: Path, *extra: str) -> None:
    done = run(["-m", "harness.grade", "--update-manifest", *extra], root)
    assert done.returncode == 0, done.stdout + done.stderr


def grade_in(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = run(["-m", "harness.grade", *args], root)
    assert done.returncode in (0, 1), f"the grader itself failed:\n{done.stdout}\n{done.stderr}"
    results = json.loads((root / "grade" / "results.json").read_text())
    return done, results


def by_kata(results: dict) -> dict[str, dict]:
    return {k["kata"]: k for k in results["katas"]}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A copy of the repository (solutions included) with its manifest rebuilt."""
    root = copy_repository(tmp_path_factory.mktemp(FIXED))
    update_manifest(root)
    return root


# --- the committed files are up to date and valid ------------------------------------------


def test_manifest_and_classroom_config_are_up_to_date(fresh):
    for path in (grade.MANIFEST, grade.CLASSROOM):
        committed = ROOT / path
        assert committed.exists(), f"{path} is missing: run `{grade.UPDATE_COMMAND}`"
        want, have = json.loads((fresh / path).read_text()), json.loads(committed.read_text())
        if want != have:
            stale = _differences(want, have)
            pytest.fail(
                f"{path} is stale ({'; '.join(stale[:8])}). Run `.venv/bin/"
                f"{grade.UPDATE_COMMAND}` and commit what it writes.",
                pytrace=False,
            )


def _differences(want: dict, have: dict) -> list[str]:
    if "grader" not in want:
        return ["the katas or their points changed"]
    out = []
    for path in sorted(set(want["grader"]) | set(have.get("grader", {}))):
        if want["grader"].get(path) != have.get("grader", {}).get(path):
            out.append(f"{path} changed")
    for kata in sorted(set(want["katas"]) | set(have.get("katas", {}))):
        if want["katas"].get(kata) != have.get("katas", {}).get(kata):
            out.append(f"kata {kata} changed")
    return out


def test_classroom_config_is_valid_and_has_one_test_per_kata(tmp_path):
    schema = tmp_path / "classroom.schema.json"
    schema.write_text(json.dumps(CLASSROOM_SCHEMA))
    done = subprocess.run(
        [
            shutil.which("check-jsonschema", path=Path(sys.executable).parent)
            or "check-jsonschema",
            "--schemafile",
            str(schema),
            str(ROOT / grade.CLASSROOM),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tests = json.loads((ROOT / grade.CLASSROOM).read_text())["tests"]
    assert [t["name"] for t in tests] == [f"kata {k.dirname}" for k in discover(ROOT)]


def test_workflow_is_valid_against_the_github_workflow_schema():
    done = subprocess.run(
        [
            shutil.which("check-jsonschema", path=Path(sys.executable).parent)
            or "check-jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(ROOT / ".github/workflows/grade.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / ".github/workflows/grade.yml").read_text()
    for step in ("make grade", "GITHUB_STEP_SUMMARY", "actions/upload-artifact", "actions/cache"):
        assert step in text, f"the grade workflow should use {step}"


# --- grading the solutions and the stubs ---------------------------------------------------


@pytest.fixture(scope="module")
def solutions_graded(fresh):
    return grade_in(fresh, "--impl", "solutions")


@pytest.fixture(scope="module")
def stubs_graded(fresh):
    return grade_in(fresh)


def test_the_solutions_get_full_marks(solutions_graded, fresh):
    done, results = solutions_graded
    katas = by_kata(results)
    assert list(katas) == [k.dirname for k in discover(fresh)], "every kata, in order"
    wrong = {name: k["message"] for name, k in katas.items() if k["status"] != "pass"}
    assert not wrong, f"the reference should pass every spec: {wrong}"
    assert results["status"] == "pass" and results["score"] == results["max_score"] > 0
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"grade: {results['max_score']} / "), done.stdout
    _check_reports(fresh / "grade", results)


def test_the_stubs_get_zero_with_every_kata_reported(stubs_graded, fresh):
    done, results = stubs_graded
    katas = by_kata(results)
    assert list(katas) == [k.dirname for k in discover(fresh)]
    assert results["score"] == 0 and results["status"] in ("fail", "error")
    for name, kata in katas.items():
        assert kata["score"] == 0 and kata["total"] > 0, name
        assert kata["message"], f"{name}: the first failure should be reported"
    assert not [t["name"] for t in results["tests"] if t["status"] == "pass"]
    assert done.returncode == 0, "grading exits 0 whatever the score (without STRICT)"
    _check_reports(fresh / "grade", results)


def _check_reports(out: Path, results: dict) -> None:
    import jsonschema

    jsonschema.validate(results, RESULTS_SCHEMA)
    suites = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == [k["kata"] for k in results["katas"]]
    assert sum(int(s.get("tests")) for s in suites) == len(results["tests"])
    summary = (out / "summary.md").read_text()
    for kata in results["katas"]:
        assert f"| {kata['kata']} |" in summary


# --- broken katas: each reported, the others still graded ----------------------------------

BROKEN = {
    # kata dir: (module text as the learner left it, reference module text, spec text)
    "89_fine": (
        "def answer():\n    return 42\n",
        "def answer():\n    return 42\n",
        "from fine import answer\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
    "90_hangs": (
        """
        import time

        def answer():
            return 42

        def slow():
            while True:  # an endless loop that even swallows the grader's timeout
                try:
                    time.sleep(0.1)
                except BaseException:
                    pass
        """,
        "def answer():\n    return 42\n\ndef slow():\n    return 1\n",
        """
        from hangs import answer, slow

        def test_answer():
            assert answer() == 42

        def test_slow():
            assert slow() == 1

        def test_after_the_hang():
            assert answer() == 42
        """,
    ),
    "91_crashes": (
        "raise RuntimeError('broken on purpose at import')\n",
        "def answer():\n    return 42\n",
        "from crashes import answer\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
    "92_exits": (
        "import sys\nsys.exit(3)\n",
        "def answer():\n    return 42\n",
        "from exits import answer\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
    "93_quits": (
        "import os\n\ndef answer():\n    return 42\n\ndef quit():\n    os._exit(0)\n",
        "def answer():\n    return 42\n\ndef quit():\n    return 0\n",
        """
        from quits import answer, quit

        def test_before():
            assert answer() == 42

        def test_quit():
            assert quit() == 0

        def test_after():
            assert answer() == 42
        """,
    ),
    "94_tampered": (
        "def answer():\n    return 41\n",
        "def answer():\n    return 42\n",
        "from tampered import answer\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
    "95_cheats": (
        """
        import pathlib
        import harness.checks

        harness.checks.expect_close = lambda *args, **kwargs: None
        out = pathlib.Path({grade_dir!r})
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text('{{"status": "pass"}}')

        def answer():
            return 41
        """,
        "def answer():\n    return 42\n",
        """
        from cheats import answer

        from harness.checks import expect_close

        def test_answer():
            expect_close(answer(), 42, "the answer")
        """,
    ),
    "96_hogs": (
        "def answer():\n    return len([0] * 10**10)\n",
        "def answer():\n    return 42\n",
        "from hogs import answer\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
}

HIDDEN_SPEC = """
from fine import answer


def test_hidden_that_passes():
    assert answer() == 42


def test_hidden_that_fails():
    assert answer() == 43, "fails on purpose"
"""


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A copy with only the made-up katas above, graded once with hidden specs for 89_fine."""
    root = copy_repository(
        tmp_path_factory.mktemp("broken"),
        keep=lambda p: not p.startswith(("katas/", "solutions/", "tests/")),
    )
    for dirname, (learner, reference, spec) in BROKEN.items():
        module = dirname.split("_", 1)[1] + ".py"
        for where, text in (("katas", learner), ("solutions", reference)):
            (root / where / dirname).mkdir(parents=True)
            text = textwrap.dedent(text).format(grade_dir=str(root / "grade"))
            (root / where / dirname / module).write_text(text)
        (root / "katas" / dirname / f"test_{module}").write_text(textwrap.dedent(spec))
    hidden = root.with_name(root.name + "-hidden")  # beside it, and its own
    (hidden / "89_fine").mkdir(parents=True)
    (hidden / "89_fine" / "test_fine_hidden.py").write_text(HIDDEN_SPEC)
    update_manifest(root)
    update_manifest(root, "--hidden-specs", str(hidden))
    spec = root / "katas" / "94_tampered" / "test_tampered.py"
    spec.write_text(spec.read_text().replace("== 42", "== 41"))  # the learner "fixes" the spec
    done, results = grade_in(
        root, "--timeout", "3", "--memory-mb", "1500", "--strict", "--hidden-specs", str(hidden)
    )
    return root, done, results


def test_every_broken_kata_is_reported_and_the_rest_still_graded(broken):
    root, done, results = broken
    katas = by_kata(results)
    assert list(katas) == list(BROKEN), "every kata is graded"
    assert katas["89_fine"]["passed"] == 2, "a kata that works is graded whatever the others do"
    assert katas["90_hangs"]["status"] == "error"
    assert "test_slow" in katas["90_hangs"]["message"]
    assert "endless loop" in katas["90_hangs"]["message"]
    assert katas["90_hangs"]["passed"] == 2, "the specs after the hanging one are still graded"
    assert katas["91_crashes"]["status"] == "error"
    assert "RuntimeError: broken on purpose at import" in katas["91_crashes"]["message"]
    assert katas["92_exits"]["status"] == "error"
    assert "SystemExit: 3" in katas["92_exits"]["message"]
    assert katas["93_quits"]["status"] == "error" and katas["93_quits"]["passed"] == 2
    assert "test_quit" in katas["93_quits"]["message"]
    assert katas["94_tampered"]["status"] == "error" and katas["94_tampered"]["score"] == 0
    assert "katas/94_tampered/test_tampered.py was changed" in katas["94_tampered"]["message"]
    assert katas["95_cheats"]["status"] == "error" and katas["95_cheats"]["score"] == 0
    assert "control specs" in katas["95_cheats"]["message"]
    hog = [t for t in results["tests"] if t["kata"] == "96_hogs"][0]
    assert hog["status"] != "pass" and "MemoryError" in (hog["message"] or ""), hog
    for kata in list(katas.values())[1:]:
        assert kata["message"], f"{kata['kata']}: a broken kata needs a message"


def test_hidden_specs_count_and_are_labelled(broken):
    _, _, results = broken
    first = by_kata(results)["89_fine"]
    hidden = [t for t in results["tests"] if t["hidden"]]
    assert sorted(t["name"].split(": ", 1)[1] for t in hidden) == [
        "[hidden] test_hidden_that_fails",
        "[hidden] test_hidden_that_passes",
    ]
    assert first["hidden_passed"] == 1 and first["hidden_total"] == 2
    public = first["total"] - 2
    assert first["score"] == grade.number(first["max_score"] * (public + 1) / (public + 2))
    assert "[hidden] test_hidden_that_fails" in first["message"]
    summary = (broken[0] / "grade" / "summary.md").read_text()
    assert "hidden specs" in summary and "(hidden 1/2)" in summary


def test_learner_code_cannot_write_the_results(broken):
    root, done, results = broken
    assert results.get("version") == 3, "the grader writes grade/ after every kata has run"
    assert done.returncode == 1, "STRICT exits 1 unless every spec passes"
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("grade: ")


# --- the handout -----------------------------------------------------------------------------


def test_a_handout_passes_its_own_specs_once_solved(fresh, tmp_path):
    dest = tmp_path / "handout"
    build(dest, fresh)
    assert not (dest / "solutions").exists() and not (dest / "tests").exists()
    assert (dest / grade.MANIFEST).is_file() and (dest / ".github/workflows/grade.yml").is_file()
    katas = discover(dest)
    assert grade.verify(dest, grade.load_manifest(dest)) == ([], {k.dirname: [] for k in katas})
    for kata in katas:
        for module in (ROOT / "solutions" / kata.dirname).glob("*.py"):
            shutil.copy2(module, dest / "katas" / kata.dirname / module.name)
    fetched = run(["-m", "harness.data", "--mirror", str(ROOT / "data")], dest)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    tested = run(["-m", "pytest", "-q", "katas"], dest)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    done, results = grade_in(dest, "--kata", katas[0].dirname, "--strict")
    assert done.returncode == 0 and results["status"] == "pass", results["message"]
