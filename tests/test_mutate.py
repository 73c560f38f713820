"""`make mutate`'s bookkeeping (scripts/mutate.py): how survivors are set apart and counted,
and the list of equivalent mutants. Running mutmut itself is too slow for `make check`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import mutate  # noqa: E402


def test_a_reworded_message_is_set_apart_and_a_changed_value_is_not():
    assert mutate.only_wording(
        [
            '-     raise ValueError("window must be >= 1")',
            '+     raise ValueError("XXwindow must be >= 1XX")',
        ]
    )
    assert mutate.only_wording(
        [
            '-     raise ValueError("window must be >= 1")',
            '+     raise ValueError("WINDOW MUST BE >= 1")',
        ]
    )
    assert not mutate.only_wording(["-     if window < 1:", "+     if window <= 1:"])
    assert not mutate.only_wording(['-     d.get("kind")', '+     d.get("XXkindXX")'])
    assert not mutate.only_wording(
        ['-     state = {"best_step": -1, "n": 0}', '+     state = {"XXbest_stepXX": -1, "n": 0}']
    )
    assert not mutate.only_wording(
        ['-     raise E("no tokens given")', '+     raise E("XXno tokens givenXX") or 1']
    )


def test_the_share_leaves_out_given_equivalent_and_reworded_mutants(capsys):
    kept = [f"modern.x_new_cache__mutmut_{i}" for i in range(1, 21)]
    given = ["modern.x_describe__mutmut_1", "modern.xǁModernConfigǁ__post_init____mutmut_2"]
    survivors = kept[:3] + given
    result = {
        "kata": "16_modern",
        "mutants": kept + given,
        "survivors": survivors,
        "codes": {name: 0 for name in survivors},
        "diffs": {
            kept[0]: ["- a < b", "+ a <= b"],
            kept[1]: ['- E("a b")', '+ E("XXa bXX")'],
            kept[2]: ["- x", "+ y"],
            **{name: ["- x", "+ y"] for name in given},
        },
    }
    # 22 mutants: 2 in given code, 1 reworded, 1 equivalent; 17 of the 18 left killed, 94.4%
    assert not mutate.report(result, {kept[2]: "the same"})
    out = capsys.readouterr().out
    assert "2 in given code" in out and "17/18" in out and "below the 95% target" in out
    assert kept[0] in out and kept[2] not in out and "describe" not in out
    result["mutants"] += [f"modern.x_generate__mutmut_{i}" for i in range(1, 21)]  # 37/38
    assert mutate.report(result, {kept[2]: "the same"})


def test_given_code_is_what_stub_and_solution_share():
    given = mutate.given_functions(next(k for k in mutate.katas.KATAS if k.number == 16))
    assert {"describe", "count_params", "ModernConfig.__post_init__"} <= given
    assert not given & {"ModernGPT.forward", "new_cache", "Block.__init__"}
    assert (
        mutate.function_of("modern.xǁModernConfigǁ__post_init____mutmut_16")
        == "ModernConfig.__post_init__"
    )
    assert mutate.function_of("modern.x_describe__mutmut_1") == "describe"


def test_every_listed_equivalent_mutant_says_why():
    listed = mutate.equivalent_mutants()
    assert listed, "tests/mutation/equivalent.txt lists no mutant"
    lines = [
        line
        for line in mutate.EQUIVALENT.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == len(listed), "a mutant is listed twice in tests/mutation/equivalent.txt"
    for name, why in listed.items():
        assert "__mutmut_" in name and len(why) > 10, f"{name}: give the reason it is equivalent"
