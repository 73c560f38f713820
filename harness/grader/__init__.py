"""The grader behind `make grade` and `make grade-class`, one responsibility a module:

    trusted   the manifest, and the trusted files read (and checked) into memory once
    manifest  writing the manifest and the Classroom config (maintainers)
    sandbox   where learner code runs: bubblewrap, or plainly (and then said so)
    run       one pytest run: its box of files, its process, the events it reports
    kata      one kata: which specs count, runs until each has an outcome, the score
    learner   one learner: every kata, summed up
    reports   results.json (exercism v3), junit.xml, summary.md
    classes   a whole class: every learner's repository, one gradebook

`python -m harness.grade` (harness/grade.py) is the command line; docs/grading.md has the
trust model.
"""
