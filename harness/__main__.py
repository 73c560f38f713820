"""The learner's loop (test, kata, status, hint, watch) and the entry point of `check`.

    python -m harness [--impl katas|solutions] [--ref 01-07] COMMAND

    test          run the katas in order; stop at the first one with a failing spec
    kata K        run one kata's specs, verbosely
    status        the progress table for every kata, without stopping (a report: exit 0)
    hint K        the next hint for kata K (--reset starts over)
    watch         rerun `test` whenever a file under katas/ changes
    check         the repository's own verification, what CI runs (harness/check.py)

Each kata's specs run in a fresh pytest process with the `harness.report` plugin, which
writes one JSON record per spec; everything below reads those records. `test` and `status`
skip what harness/status.py already knows: a kata still untouched since the hand-out is not
run, and a kata whose files have not changed since its last run is read from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from harness import check, status
from harness.katas import IMPLS, KATAS, ROOT, Kata, chosen_dirs, find_kata
from harness.specs import Run, dim, green, indent, paint, red, run_kata

HINT_STATE = ROOT / ".hints.json"

# --- test / status ---------------------------------------------------------------------


class Ladder:
    """Every kata's state as far as it is known without running anything: `todo[kata]`, the
    functions still to write when it is an untouched stub (its specs are not run then), and
    `cached(kata)`, its last results while nothing its specs read has changed."""

    def __init__(self, args):
        self.impl, self.ref = args.impl, args.ref
        self.dirs = dict(zip(KATAS, chosen_dirs(args.impl, args.ref)))
        self.cache = status.ResultCache()
        env = status.environment()
        self.todo = {k: status.not_started(k, d) for k, d in self.dirs.items()}
        self.keys = {
            k: status.cache_key(k, list(self.dirs.values()), env)
            for k in KATAS
            if self.todo[k] is None
        }

    def cached(self, kata: Kata) -> Run | None:
        entry = self.cache.get(self.keys[kata]) if kata in self.keys else None
        try:
            return Run(**entry) if entry else None
        except TypeError:  # written by another version of the harness: run again
            return None

    def run(self, kata: Kata) -> Run:
        run = run_kata(kata, self.impl, self.ref)
        if run.returncode in (0, 1) and run.records:  # not a crash, not a Ctrl-C
            kept = [dict(r, longrepr=r["longrepr"][-4000:]) for r in run.records]
            self.cache.put(
                self.keys[kata], asdict(replace(run, records=kept, output=run.output[-4000:]))
            )
        return run

    def in_order(self):
        """Yield (kata, run) in ladder order; run is None for an untouched stub. Katas not in
        the cache run each in its own process; with cores to spare the next few run while the
        caller reads; when the caller stops, no more start."""
        to_run = [k for k in KATAS if k in self.keys and self.cached(k) is None]
        workers = min(4, max(1, (os.cpu_count() or 1) - 1))
        pool = ThreadPoolExecutor(workers)
        futures = {k: pool.submit(self.run, k) for k in to_run[:workers]}
        waiting = iter(to_run[workers:])
        try:
            for kata in KATAS:
                if kata not in futures:
                    yield kata, self.cached(kata)
                    continue
                run = futures.pop(kata).result()
                following = next(waiting, None)
                if following is not None:
                    futures[following] = pool.submit(self.run, following)
                self.cache.save()
                yield kata, run
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.cache.save()


def progress_line(
    kata: Kata, run: Run | None, todo: list[str] | None = None, note: str = ""
) -> str:
    label = f"{kata.number:02d} {kata.name:<12}"
    if run is None:
        if todo is not None:
            count = f"{len(todo)} function{'s' if len(todo) != 1 else ''}"
            note = f"not started ({count} to write) {note}".rstrip()
        return dim(f"  ·  {label} {note or 'not run yet: make status'}")
    if run.ok:
        return green(f"  ✓  {label} {run.passed}/{run.total}") + dim(note and f"  {note}")
    return red(f"  ✗  {label} {run.passed}/{run.total}") + f"  {note}".rstrip()


def first_line_if_unwritten(message: str) -> str:
    """A NotImplementedError needs only its own line: not the example Hypothesis tried."""
    return message.split("\n")[0] if message.startswith("NotImplementedError") else message


def show_failures(kata: Kata, run: Run, impl: str, limit: int = 3) -> None:
    failures = run.failures
    groups: dict[str, list[dict]] = {}  # many specs often fail for one reason
    for record in failures:
        message = record["message"] or record["longrepr"]
        groups.setdefault(message.strip().split("\n")[0], []).append(record)
    print(f"\nKata {kata.dirname}: {len(failures)} of {run.total} specs fail.\n")
    for records in list(groups.values())[:limit]:
        first = records[0]
        others = f"  (and {len(records) - 1} more like it)" if len(records) > 1 else ""
        print(red(f"✗ {first['name']}") + dim(others))
        print(indent(first_line_if_unwritten(first["message"] or first["longrepr"])))
        print()
    show_where(kata, impl)


def show_not_started(kata: Kata, todo: list[str], directory: Path, impl: str) -> None:
    names = ", ".join(t.split(": ")[1] for t in todo[:4]) + (", ..." if len(todo) > 4 else "")
    print(
        f"\nKata {kata.dirname} is not started: every function it asks for still raises "
        f"NotImplementedError\n({names}). The first one says:\n"
    )
    print(indent("NotImplementedError: " + status.stub_message(kata, directory)))
    print()
    show_where(kata, impl)


def show_where(kata: Kata, impl: str) -> None:
    modules = " ".join(str(p.relative_to(ROOT)) for p in kata.modules(impl))
    print(f"Edit:   {modules}")
    print(f"Lesson: katas/{kata.dirname}/README.md")
    print(
        f"More:   make kata K={kata.number:02d} (every spec, verbose)   "
        f"make hint K={kata.number:02d} (a hint)"
    )


def unfinished_note(kata: Kata) -> str:
    """The last words of a `make test` that stops at a kata. Its exit status stays 1 (CI and an
    instructor's scripts read it), so make adds its own error line after this one: this says
    beforehand that it is the normal state of a ladder in progress."""
    make = (
        " make reports that status in its own `*** [test] Error 1` line below."
        if os.environ.get("MAKELEVEL")
        else ""
    )
    return dim(
        f"This is how an unfinished ladder looks, not a breakage: kata {kata.dirname} "
        f"is next. `make test` exits 1 until every kata passes.{make}"
    )


def cmd_test(args) -> int:
    print(f"gpt-katas: running your katas in order ({describe(args)})\n")
    ladder = Ladder(args)
    for i, (kata, run) in enumerate(ladder.in_order()):
        if run is not None and run.ok:
            print(progress_line(kata, run), flush=True)
            continue
        print(progress_line(kata, run, ladder.todo[kata], "<- you are here"))
        for later in KATAS[i + 1 :]:  # what is known of them without running anything
            known = ladder.cached(later)
            print(progress_line(later, known, ladder.todo[later], "(last run)" if known else ""))
        if run is None:
            show_not_started(kata, ladder.todo[kata], ladder.dirs[kata], args.impl)
        else:
            show_failures(kata, run, args.impl)
        if args.command == "test":
            print("\n" + unfinished_note(kata))
        return 1
    print(green(f"\nAll {len(KATAS)} katas pass. You built a GPT. Try `make train IMPL=katas`."))
    return 0


def cmd_status(args) -> int:
    """The table, and exit status 0: a report, not a verdict (`make test` is the verdict)."""
    print(f"gpt-katas status ({describe(args)})\n")
    ladder = Ladder(args)
    done, following = 0, None
    for kata, run in ladder.in_order():
        ok = run is not None and run.ok
        done += ok
        following = following or (None if ok else kata)
        print(progress_line(kata, run, ladder.todo[kata]), flush=True)
    print(f"\n{done} of {len(KATAS)} katas done.")
    if following:
        print(
            f"Next: kata {following.dirname} (make kata K={following.number:02d}, "
            f"lesson katas/{following.dirname}/README.md)."
        )
    return 0


def cmd_kata(args) -> int:
    kata = find_kata(args.kata)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *map(str, kata.specs()),
        "-v",
        "--tb=short",
        f"--impl={args.impl}",
        f"--ref={args.ref}",
    ]
    return subprocess.call(cmd, cwd=ROOT)


def describe(args) -> str:
    where = "reference solutions" if args.impl == "solutions" else "your code in katas/"
    return where + (f"; katas {args.ref} from the reference" if args.ref else "")


# --- hints -----------------------------------------------------------------------------


def cmd_hint(args) -> int:
    kata = find_kata(args.kata)
    text = (kata.path() / "HINTS.md").read_text()
    hints = [h.strip() for h in re.split(r"^## Hint.*$", text, flags=re.M)[1:]]
    state = json.loads(HINT_STATE.read_text()) if HINT_STATE.exists() else {}
    key = kata.dirname
    shown = 0 if args.reset else state.get(key, 0)
    shown = min(shown + 1, len(hints))
    state[key] = shown
    HINT_STATE.write_text(json.dumps(state, indent=1))
    for n, hint in enumerate(hints[:shown], 1):
        heading = f"Hint {n} of {len(hints)} for kata {kata.dirname}"
        print(paint(heading, "1") if n == shown else dim(heading))
        print(indent(hint, "  ") if n == shown else dim(indent(hint, "  ")))
        print()
    if shown == len(hints):
        print("That is every hint. The lesson's section on common mistakes may help next.")
    return 0


# --- watch -----------------------------------------------------------------------------


def cmd_watch(args) -> int:
    """Run `test` now, then again after every change to a .py file under katas/."""
    from watchfiles import PythonFilter, watch  # the file-system events, not a polling loop

    print("Watching katas/ for changes to .py files. Ctrl-C stops.")
    cmd_test(args)
    try:
        for _ in watch(ROOT / "katas", watch_filter=PythonFilter(), debounce=300):
            print("\n" + "-" * 72 + f"\n{time.strftime('%H:%M:%S')}")
            cmd_test(args)
    except KeyboardInterrupt:
        pass
    print("\nStopped watching.")
    return 0


# --- entry point -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--impl", choices=IMPLS, default="katas")
    parser.add_argument("--ref", default="", help="katas to take from solutions/, e.g. 01-07")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("test")
    commands.add_parser("status")
    commands.add_parser("watch")
    commands.add_parser("check")
    for name in ("kata", "hint"):
        sub = commands.add_parser(name)
        sub.add_argument("kata", nargs="?", default="")
        if name == "hint":
            sub.add_argument("--reset", action="store_true")
    args = parser.parse_args(argv)
    if args.command in ("kata", "hint") and not args.kata:
        parser.exit(2, f"which kata? e.g. make {args.command} K=03\n")
    try:
        chosen_dirs(args.impl, args.ref)  # a bad REF= fails here, once, with its message
        return {
            "test": cmd_test,
            "status": cmd_status,
            "kata": cmd_kata,
            "hint": cmd_hint,
            "watch": cmd_watch,
            "check": check.cmd_check,
        }[args.command](args)
    except ValueError as err:  # a bad K= or REF=
        parser.exit(2, f"{err}\n")


if __name__ == "__main__":
    sys.exit(main())
