"""The kata harness: runs one spec suite against the learner's code or the reference solutions.

`use(impl, ref)` puts the chosen kata directories on `sys.path`, so every kata module is
imported by its own name (`from value import Value`) whichever implementation is selected.
"""

from harness.katas import (
    KATAS,
    ROOT,
    Kata,
    find_kata,
    parse_ref,
    program_impl,
    results_dir,
    run_program,
    use,
)

__all__ = [
    "KATAS",
    "ROOT",
    "Kata",
    "find_kata",
    "parse_ref",
    "program_impl",
    "results_dir",
    "run_program",
    "use",
]
