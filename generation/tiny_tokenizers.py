"""Tiny tokenizers built in memory, offline, for the `tiny` model profile.

The real classes (CLIPTokenizer, T5Tokenizer, Qwen2Tokenizer) from a few hundred entries: a
byte-level alphabet (so any text encodes) plus a handful of merges for our domain words. Each one
saved is about 10 KB. Token ids are meaningless, like the tiny models' weights.
"""

from __future__ import annotations

import functools
from typing import Any

# Byte-level BPE maps every byte to a printable character; printable latin-1 bytes map to
# themselves, the rest to code points from 256 upward (the usual GPT-2 scheme).
_PRINTABLE = (
    list(range(ord("!"), ord("~") + 1))
    + list(range(ord("\u00a1"), ord("\u00ac") + 1))
    + list(range(ord("\u00ae"), ord("\u00ff") + 1))
)
DOMAIN_WORDS = ("the", "lane", "road", "white", "yellow", "solid", "dashed", "double", "single",
                "markings", "line", "and", "with", "PASS", "FAIL")

QWEN_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>")


@functools.lru_cache(maxsize=1)
def byte_level_alphabet() -> tuple[str, ...]:
    """The 256 characters of the byte-level alphabet, in byte order."""
    out, extra = [], 0
    for b in range(256):
        if b in _PRINTABLE:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return tuple(out)


def _word_merges(vocab: dict[str, int], words: tuple[str, ...], suffix: str = "") -> list[tuple[str, str]]:
    """Left-to-right merges that build each word (with an optional end-of-word suffix)."""
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word)
        if suffix:
            pieces[-1] = pieces[-1] + suffix
        current = pieces[0]
        for piece in pieces[1:]:
            pair = (current, piece)
            current = current + piece
            if current not in vocab:
                vocab[current] = len(vocab)
                merges.append(pair)
    return merges


def tiny_clip_tokenizer(model_max_length: int = 77) -> Any:
    """A CLIPTokenizer with a byte alphabet (plus end-of-word forms) and domain-word merges."""
    from transformers import CLIPTokenizer

    alphabet = byte_level_alphabet()
    vocab: dict[str, int] = {}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    for ch in alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = _word_merges(vocab, tuple(w.lower() for w in DOMAIN_WORDS), suffix="</w>")
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def tiny_t5_tokenizer(model_max_length: int = 512) -> Any:
    """A unigram T5Tokenizer over letters, digits, punctuation and a few whole words."""
    from transformers import T5Tokenizer

    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in chars]
    pieces += [("\u2581" + w.lower(), -1.0) for w in DOMAIN_WORDS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def tiny_qwen_tokenizer(model_max_length: int = 4096) -> Any:
    """A Qwen2Tokenizer (byte-level BPE) carrying the chat and vision special tokens Qwen2.5-VL uses."""
    from transformers import Qwen2Tokenizer

    vocab = {ch: i for i, ch in enumerate(byte_level_alphabet())}
    merges = _word_merges(vocab, DOMAIN_WORDS)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    return tokenizer
