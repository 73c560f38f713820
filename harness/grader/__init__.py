"""The grader behind `make grade` and `make grade-class`, one responsibility a module:

    trusted   the manifest, and the trusted files read (and checked) into memory once
    manifest  writing the manifest and the Classroom config (maintainers)
    sandbox   where learner code runs: bubblewrap, or plainly (and then said so)
    run       one kata: its box, its pytest processes, its score
    reports   results.json (exercism v3), junit.xml, summary.md
    classes   a whole class: every learner's repository, one gradebook

`python -m harness.grade` (harness/grade.py) is the command line.
"""
