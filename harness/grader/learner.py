"""One learner's grading: every kata asked for, from one set of trusted files, summed up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from harness.grader.kata import KataResult, grade_kata
from harness.grader.run import Setup
from harness.grader.trusted import number, sha256
from harness.katas import Kata


@dataclass
class Grade:
    katas: list[KataResult]
    grader_problems: list[str]
    manifest_sha256: str
    mode: str
    hidden: bool
    sandbox: str  # "sandboxed (bubblewrap)" or "not sandboxed: why"
    sources: dict[str, bytes] = field(default_factory=dict)  # spec files, for test_code

    @property
    def score(self) -> float | int:
        return number(sum(k.score for k in self.katas))

    @property
    def max_score(self) -> float | int:
        return number(sum(k.max_score for k in self.katas))

    @property
    def sandboxed(self) -> bool:
        return self.sandbox.startswith("sandboxed")

    @property
    def status(self) -> str:
        if self.grader_problems or any(k.status == "error" for k in self.katas):
            return "error"
        return "pass" if all(k.status == "pass" for k in self.katas) else "fail"

    def flags(self) -> list[str]:
        """What an instructor should look at: "modified specs", "not sandboxed", ..."""
        found = [f for k in self.katas for f in k.flags]
        if self.grader_problems:
            found.append("modified grader")
        if not self.sandboxed:
            found.append("not sandboxed")
        return list(dict.fromkeys(found))

    def line(self) -> str:
        done = sum(k.status == "pass" for k in self.katas)
        specs = sum(k.passed() for k in self.katas), sum(k.total() for k in self.katas)
        errors = [k.kata.dirname for k in self.katas if k.status == "error"]
        text = (
            f"grade: {self.score:g} / {self.max_score:g} points; {done} of {len(self.katas)} "
            f"katas complete; {specs[0]} of {specs[1]} specs pass"
        )
        if self.grader_problems:
            text += "; the grader's own files were changed, nothing graded"
        elif errors:
            text += "; errors in " + ", ".join(errors)
        if not self.sandboxed:
            text += f"; {self.sandbox}"
        return text


def grade(setup: Setup, katas: list[Kata], jobs: int = 1, mode: str = "working tree") -> Grade:
    """Grade `katas` of setup.learner with setup.trusted, `jobs` katas at a time."""
    trusted = setup.trusted

    def refusal(kata: Kata) -> str:
        problems = trusted.grader_problems or trusted.kata_problems.get(kata.dirname, [])
        if not problems:
            return ""
        whose = "the grader's files" if trusted.grader_problems else "the specs"
        return (
            f"not graded: {whose} differ from the manifest ({'; '.join(problems)}). "
            f"Restore them: `git checkout -- {' '.join(p.split()[0] for p in problems)}`"
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda k: grade_kata(k, setup, refusal(k)), katas))
    if setup.learner.resolve() != trusted.root.resolve():
        for result in results:  # the learner's own copy of the specs is never used: say so
            theirs = modified_specs(setup, result.kata)
            if theirs:
                result.notes.append(
                    "graded with the canonical specs; these differ in the tree "
                    "graded: " + ", ".join(theirs)
                )
                result.flags.append("modified specs")
    sources = dict(trusted.files)
    sources.update({f"hidden/{k}": v for k, v in trusted.hidden.items()})
    return Grade(
        results,
        trusted.grader_problems,
        trusted.digest,
        mode,
        bool(trusted.hidden),
        setup.sandbox.describe(),
        sources,
    )


def modified_specs(setup: Setup, kata: Kata) -> list[str]:
    """The kata's spec files that differ in the learner's tree from the trusted ones."""
    out = []
    for path, digest in (
        setup.trusted.manifest["katas"].get(kata.dirname, {}).get("files", {}).items()
    ):
        theirs = setup.learner / path
        if theirs.is_file() and not theirs.is_symlink() and sha256(theirs.read_bytes()) != digest:
            out.append(path)
    return out
