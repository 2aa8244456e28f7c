"""The tiny tokenizers encode any text, round-trip through save/load, and stay small."""

import os

import pytest

from core.tokenizers import (
    QWEN_SPECIAL_TOKENS,
    tiny_clip_tokenizer,
    tiny_qwen_tokenizer,
    tiny_t5_tokenizer,
)

TEXT = "Add double solid yellow lane markings, aligned exactly — ünïcode ok"


@pytest.mark.parametrize("factory", [tiny_clip_tokenizer, tiny_t5_tokenizer, tiny_qwen_tokenizer])
def test_roundtrip_save_load_and_size(factory, tmp_path):
    tok = factory()
    ids = tok(TEXT)["input_ids"]
    assert len(ids) > 5
    tok.save_pretrained(tmp_path)
    again = type(tok).from_pretrained(tmp_path)
    assert again(TEXT)["input_ids"] == ids
    size = sum(os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path))
    assert size < 60_000


def test_byte_level_tokenizers_lose_nothing():
    for tok in (tiny_qwen_tokenizer(),):
        assert tok.decode(tok(TEXT)["input_ids"]) == TEXT


def test_domain_words_are_single_tokens():
    clip = tiny_clip_tokenizer()
    ids = clip("lane", add_special_tokens=False)["input_ids"]
    assert len(ids) == 1


def test_qwen_special_tokens_are_atomic():
    tok = tiny_qwen_tokenizer()
    for special in QWEN_SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
