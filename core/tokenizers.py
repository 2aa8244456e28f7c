"""Tokenizers and processors the stages' models share (transformers is imported inside the functions).

- Tiny tokenizers built in memory, offline, for the ``tiny`` profile: the real classes (CLIPTokenizer,
  T5Tokenizer, Qwen2Tokenizer) from a few hundred entries: a byte-level alphabet (so any text encodes)
  plus a handful of merges for our domain words. Each one saved is about 10 KB. Token ids are
  meaningless, like the tiny models' weights.
- Image-only processors for the Qwen vision-language models (the stage-2 judge, Qwen2.5-VL; the stage-3
  driving model's backbone, Qwen3-VL): transformers cannot build a video processor without torchvision,
  which CPU environments do not have, and only images are ever sent.
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

# A chat template in Qwen's format (system/user/assistant turns, an image as
# <|vision_start|><|image_pad|><|vision_end|>), used when the tokenizer carries none.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


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


def image_only_processor(base: type) -> type:
    """``base`` (a Qwen-VL processor class) accepting ``video_processor=None``.

    The processor's class check rejects ``None``; we only ever send images, so the check is skipped for a
    missing video processor. Everything else (image token expansion, chat template, decoding) is the
    stock class.
    """

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    ImageOnlyProcessor.__name__ = ImageOnlyProcessor.__qualname__ = f"ImageOnly{base.__name__}"
    return ImageOnlyProcessor


def qwen_image_processor_class() -> type:
    """The Qwen2-VL image processor (Qwen3-VL uses it too): the torchvision backend when importable, else
    the PIL backend, which gives the same pixels."""
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2VLImageProcessor

        return Qwen2VLImageProcessor
    except Exception:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil
