"""The reports of one learner's grading, written by the grader alone after every kata ran:
results.json (the exercism test-runner interface, version 3, with points), junit.xml, and
summary.md (for $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import ast
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.grader.kata import Spec
from harness.grader.learner import Grade
from harness.grader.manifest import write_json

OUTPUT_CAP = 500  # characters of a spec's printed output kept (the exercism interface's limit)


def _cap(text: str, cap: int = OUTPUT_CAP) -> str:
    if len(text) <= cap:
        return text
    note = "\n... (output truncated)"
    return text[: cap - len(note)] + note


class _TestCode:
    """The source of a spec function, for the exercism interface's test_code."""

    def __init__(self, sources: dict[str, bytes]):
        self.sources = sources
        self.cache: dict[str, dict[str, str]] = {}

    def __call__(self, spec: Spec) -> str:
        if spec.file not in self.cache:
            self.cache[spec.file] = {}
            source = self.sources.get(spec.file, b"").decode("utf-8", "replace")
            lines = source.splitlines()
            try:
                tree = ast.parse(source)
            except SyntaxError:
                tree = ast.Module(body=[], type_ignores=[])
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    self.cache[spec.file][node.name] = "\n".join(lines[first - 1 : node.end_lineno])
        function = spec.nodeid.split("::")[-1].split("[", 1)[0]
        return self.cache[spec.file].get(function, "")


def results_json(result: Grade) -> dict:
    """The exercism test-runner interface, version 3, extended with points per kata."""
    test_code = _TestCode(result.sources)
    errors = [f"{k.kata.dirname}: {k.message}" for k in result.katas if k.status == "error"]
    return {
        "version": 3,
        "status": result.status,
        "message": ("; ".join(result.grader_problems) or "\n".join(errors))
        if result.status == "error"
        else result.line(),
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
                **(
                    {"hidden_passed": k.passed(True), "hidden_total": k.total(True)}
                    if k.total(True)
                    else {}
                ),
                "notes": k.notes,
                "flags": k.flags,
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
            "sandbox": result.sandbox,
            "flags": result.flags(),
        },
    }


def junit_xml(result: Grade) -> bytes:
    suites = ET.Element(
        "testsuites", name="gpt-katas grade", tests=str(sum(k.total() for k in result.katas))
    )
    for k in result.katas:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=k.kata.dirname,
            tests=str(k.total()),
            failures=str(sum(s.status == "fail" for s in k.specs)),
            errors=str(sum(s.status == "error" for s in k.specs)),
            time=f"{sum(s.duration for s in k.specs):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="score", value=f"{k.score:g}")
        ET.SubElement(properties, "property", name="max_score", value=f"{k.max_score:g}")
        for s in k.specs:
            case = ET.SubElement(
                suite,
                "testcase",
                name=s.name,
                classname=s.file.removesuffix(".py").replace("/", "."),
                time=f"{s.duration:.3f}",
            )
            if s.status != "pass":
                tag = "failure" if s.status == "fail" else "error"
                ET.SubElement(
                    case, tag, message=s.message.splitlines()[0] if s.message else tag
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
        lines += [
            "**Not graded: the grader's own files differ from the manifest:** "
            + _cell("; ".join(result.grader_problems), 600),
            "",
        ]
    lines += ["| kata | | points | specs | first problem |", "|---|---|---:|---:|---|"]
    for k in result.katas:
        mark = {"pass": "✓", "fail": "✗", "error": "⚠ error"}[k.status]
        specs = f"{k.passed()}/{k.total()}"
        if k.total(True):
            specs += f" (hidden {k.passed(True)}/{k.total(True)})"
        lines.append(
            f"| {k.kata.dirname} | {mark} | {k.score:g} / {k.max_score:g} | {specs} "
            f"| {_cell(k.message)} |"
        )
    notes = [f"- {k.kata.dirname}: {n}" for k in result.katas for n in k.notes]
    lines += ["", result.line() + "."]
    if result.hidden:
        lines.append("Specs marked [hidden] come from the instructor's hidden specs.")
    if notes:
        lines += ["", "Notes:", *notes]
    if not result.sandboxed:
        lines += [
            "",
            f"**Learner code was not sandboxed** ({result.sandbox.split(': ', 1)[-1]}): "
            "this grade is only as trustworthy as the machine it ran on.",
        ]
    lines += [
        "",
        f"Manifest sha256 `{result.manifest_sha256[:16]}`, mode: {result.mode}, "
        f"{'sandboxed (bubblewrap)' if result.sandboxed else 'not sandboxed'}. "
        "Full results: results.json (exercism v3) and junit.xml.",
    ]
    return "\n".join(lines) + "\n"


def write_reports(result: Grade, out: Path) -> None:
    if out.is_symlink() or out.is_file():
        out.unlink()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_json(out / "results.json", results_json(result))
    (out / "junit.xml").write_bytes(junit_xml(result))
    (out / "summary.md").write_text(summary_md(result))
