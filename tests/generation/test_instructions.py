"""Edit instructions: splitting, the lane shorthand, the defaults, folders, and one-line errors."""

import pytest

from core.errors import UsageError
from core.ids import validate_id
from generation.instructions import DEFAULT_SHORTHANDS, SUFFIX, expand, parse_instructions


def test_defaults_are_the_five_lane_edits_each_with_the_alignment_suffix():
    defaults = parse_instructions(None)
    assert [d.lanes.words() for d in defaults] == [
        "single white solid", "double white solid", "single yellow solid", "double yellow solid",
        "single white dashed"]
    assert len(DEFAULT_SHORTHANDS) == 5
    for inst in defaults:
        assert inst.kind == "default"
        assert inst.text.endswith(SUFFIX)
        assert SUFFIX == ("aligned exactly to the original lane positions and perspective; keep road texture, "
                          "lighting, and shadows unchanged")
    assert len({d.folder for d in defaults}) == 5
    assert parse_instructions(None) == defaults
    # text given without an instruction is an error, never the five defaults (5x the GPU work)
    for blank in ("", "  ", "||", " || \n "):
        with pytest.raises(UsageError, match="empty instruction|no instruction in it"):
            parse_instructions(blank)


def test_shorthand_expands_to_a_full_instruction_in_any_word_order():
    (a,) = parse_instructions("lane double yellow solid")
    (b,) = parse_instructions("Lane solid, yellow double")
    assert a.text == b.text == expand(a.lanes)
    assert "double solid yellow line" in a.text and a.text.endswith(SUFFIX)
    assert a.folder == b.folder == "lane_double_yellow_solid"
    assert a.kind == "shorthand" and a.source == "lane double yellow solid"


def test_several_instructions_split_on_pipes_and_new_lines_blank_lines_ignored():
    text = "lane single white dashed || Paint a wide white stop line\n\n  lane double white solid\n"
    out = parse_instructions(text)
    assert [i.kind for i in out] == ["shorthand", "free", "shorthand"]
    assert out[1].text == "Paint a wide white stop line"
    for inst in out:
        assert validate_id(inst.folder, "instruction folder") == inst.folder


def test_free_text_folders_are_valid_stable_and_distinct():
    a = parse_instructions("Make the ../../ lanes glow!!")[0]
    b = parse_instructions("Make the ../../ lanes glow!!")[0]
    c = parse_instructions("Make the lanes glow brighter")[0]
    assert a.folder == b.folder != c.folder
    assert ".." not in a.folder and "/" not in a.folder
    assert a.folder.startswith("make_the_lanes_glow_")


def test_duplicates_run_once():
    out = parse_instructions("lane double yellow solid||lane yellow double solid")
    assert len(out) == 1


@pytest.mark.parametrize("text, message", [
    ("lane double yellow solid||", "empty instruction"),
    ("||lane double yellow solid", "empty instruction"),
    ("a ||   || b", "empty instruction"),
    ("   \n  ", "empty instruction"),
    ("lane double purple solid", "unknown word 'purple'"),
    ("lane", "lane shorthand needs words"),
    ("lane single double", "count given twice"),
])
def test_bad_instructions_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError) as err:
        parse_instructions(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
