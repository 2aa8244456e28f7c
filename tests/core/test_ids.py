import datetime as dt

import pytest

from core.errors import InvalidIdError, UsageError
from core.ids import new_run_id, slugify, validate_id


def test_new_run_id_format():
    assert new_run_id(dt.datetime(2026, 11, 21, 7, 5, 9)) == "run_20261121_070509"
    assert validate_id(new_run_id()) .startswith("run_")


@pytest.mark.parametrize("good", ["run_20261121_070509", "a", "clip.camera_front_wide_120fov", "A-b_c.9"])
def test_valid_ids_pass(good):
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a b", "whitespace"),
        ("tab\there", "whitespace"),
        (".", "must not be '.'"),
        ("-rf", "must not start with '-'"),
        ("näme", "only letters"),
        ("a;b", "only letters"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_invalid_ids_rejected_with_reason(bad, reason):
    with pytest.raises(InvalidIdError) as info:
        validate_id(bad, "video id")
    message = str(info.value)
    assert "video id" in message and reason in message
    assert "\n" not in message
    assert isinstance(info.value, UsageError)  # bad ids are usage errors (exit code 2)


def test_non_string_rejected():
    with pytest.raises(InvalidIdError):
        validate_id(None)


def test_slugify_makes_valid_folder_names():
    assert slugify("Add a DOUBLE solid yellow line, aligned!") == "add_a_double_solid_yellow_line_aligned"
    assert slugify("../../etc") == "etc"
    assert slugify("!!!") == "item"
    assert len(slugify("word " * 100)) <= 80
