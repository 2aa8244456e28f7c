"""The judge's answer is untrusted text: every odd shape parses to FAIL with a reason, never raises."""

import json

import pytest

from generation.quality.judge_parse import FAIL, PASS, clean_caption, parse_verdict
from generation.quality.judge_prompts import ATTRIBUTE_KEYS, compliance_prompt, judge_prompt


def answer(verdict="PASS", caption="two solid yellow lines", failed=(), **extra):
    body = {"verdict": verdict,
            "checks": {k: {"pass": k not in failed, "note": f"{k} looked at"} for k in ATTRIBUTE_KEYS},
            "revised_caption": caption}
    body.update(extra)
    return json.dumps(body)


def test_clean_pass():
    v = parse_verdict(answer())
    assert v.verdict == PASS and v.passed and v.reasons == []
    assert v.checks == {k: True for k in ATTRIBUTE_KEYS}
    assert v.checks_passed == len(ATTRIBUTE_KEYS)
    assert v.revised_caption == "two solid yellow lines"
    assert v.notes["colour"] == "colour looked at"


def test_model_fail_keeps_checks_and_caption():
    v = parse_verdict(answer("fail", "double yellow solid, follow the curve", failed=("colour", "alignment")))
    assert v.verdict == FAIL and v.model_verdict == FAIL and v.reasons == []
    assert v.checks["colour"] is False and v.checks["alignment"] is False and v.checks["count"] is True
    assert v.revised_caption == "double yellow solid, follow the curve"


def test_code_fence_is_tolerated_but_noted():
    v = parse_verdict("```json\n" + answer() + "\n```")
    assert v.verdict == PASS
    assert "answer was in a code fence" in v.remarks


def test_code_fence_rejected_when_strict():
    v = parse_verdict("```json\n" + answer() + "\n```", allow_fence=False)
    assert v.verdict == FAIL and "answer was in a code fence" in v.reasons


@pytest.mark.parametrize("raw, reason", [
    ("", "empty answer"),
    ("   \n", "empty answer"),
    ("The lines look right to me. PASS", "no JSON object"),
    ('{"verdict": "PASS", "checks": {"count": true', "no complete JSON object"),
    ("Sure! Here is my verdict: " + answer(), "extra text outside the JSON object"),
    (answer() + " Hope this helps.", "extra text outside the JSON object"),
    (answer() + answer(), "extra text outside the JSON object"),
    (answer(verdict="MAYBE"), "unknown verdict 'MAYBE'"),
    (answer(verdict=True), "unknown verdict"),
    (json.dumps({"checks": {k: True for k in ATTRIBUTE_KEYS}, "revised_caption": "x"}), "verdict missing"),
    (json.dumps({"verdict": "PASS", "revised_caption": "x"}), "missing checks: count, colour"),
    (json.dumps({"verdict": "PASS", "checks": {k: "perhaps" for k in ATTRIBUTE_KEYS},
                 "revised_caption": "x"}), "unreadable checks: count"),
    (answer(caption=None), "revised_caption missing"),
    (answer(caption="   "), "revised_caption is not a non-empty string"),
    (answer(failed=("colour",)), "verdict PASS contradicts failed checks: colour"),
    ("[1, 2, 3]", "no JSON object"),
    ('{"verdict": "PASS"} trailing', "extra text"),
])
def test_bad_answers_fail_with_reason(raw, reason):
    v = parse_verdict(raw)
    assert v.verdict == FAIL
    assert any(reason in r for r in v.reasons), v.reasons


def test_missing_revised_caption_key():
    body = json.loads(answer())
    del body["revised_caption"]
    v = parse_verdict(json.dumps(body))
    assert v.verdict == FAIL and "revised_caption missing" in v.reasons
    assert parse_verdict(json.dumps(body), require_caption=False).verdict == PASS


def test_non_text_answers_never_raise():
    for raw in (None, 42, b"{}", ["PASS"], {"verdict": "PASS"}):
        v = parse_verdict(raw)
        assert v.verdict == FAIL and v.reasons


def test_adversarial_text_never_raises():
    nasty = ["{" * 5000, '{"verdict": "PASS", "checks": ' + "[" * 3000, "\x00\x01{}\ud800",
             '{"verdict": "PASS", "checks": {"count": {"pass": {"pass": {"pass": true}}}}}', "}" * 100]
    for raw in nasty:
        assert parse_verdict(raw).verdict == FAIL


def test_check_spellings_and_value_forms():
    checks = {"Count": "PASS", "color": "yes", "pattern": 1, "alignment with original lanes": {"ok": True},
              "texture": {"result": "pass"}, "lighting/shadow": True, "background": "true"}
    v = parse_verdict(json.dumps({"verdict": "Pass", "checks": checks, "revised_caption": "c"}))
    assert v.verdict == PASS, v.reasons
    assert all(v.checks.values())


def test_cut_off_answer_still_gives_its_revised_caption():
    raw = '{"verdict": "FAIL", "revised_caption": "two dashed \\"white\\" lines", "checks": {"count": fal'
    v = parse_verdict(raw)
    assert v.verdict == FAIL and v.revised_caption == 'two dashed "white" lines'


def test_clean_caption():
    assert clean_caption('```\nCaption: "two solid white lines"\n```') == "two solid white lines"
    assert clean_caption("  a\x00b\x13  c \n d ") == "ab c d"
    assert clean_caption("", fallback="the instruction") == "the instruction"
    assert clean_caption(None, fallback="fb") == "fb"
    assert len(clean_caption("x" * 5000)) == 1000


def test_prompts_carry_instruction_caption_and_every_attribute():
    p = judge_prompt("Add a double solid yellow line", "yellow paint")
    assert "Add a double solid yellow line" in p and "yellow paint" in p and "revised_caption" in p
    for key in ATTRIBUTE_KEYS:
        assert f'"{key}"' in p
    c = compliance_prompt("Add a double solid yellow line")
    assert "revised_caption" not in c and '"verdict"' in c


def test_reasons_carry_no_control_characters():
    v = parse_verdict("\x1b[2J\x1b]0;owned\x07 " + answer())
    assert v.verdict == FAIL
    assert all(ch.isprintable() for reason in v.reasons for ch in reason)
