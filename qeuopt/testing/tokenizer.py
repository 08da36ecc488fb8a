"""The tiny models' CLIP tokenizer: BPE merges learned so that every word of the demo's
prompts, its artists and some common prompt words is a single token (the demo prompt
stays well under CLIP's 77 tokens), written as SD 1.5's tokenizer folder is."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

# Words that should each be one token, so the demo prompt stays well under CLIP's 77.
PROMPT_TEMPLATE = (
    "((1girl:1.3), blue eye, in the style of {style_a}, standing, looking at viewer), "
    "(beach, in the style of {style_b}:1.1), high quality"
)
NEGATIVE_PROMPT = "low quality, BW, bad anatomy, deformed, signature"
ARTISTS = (
    "Tatsunoko Production",
    "Rinko Kawauchi",
    "Richard Dadd",
    "Hokusai",
    "Milton Caniff",
    "Lawrence Alma-Tadema",
    "Stephan Martiniere",
    "Frank Cho",
    "Todd Hido",
    "Alphonse Mucha",
    "Claude Monet",
    "Katsushika Hokusai",
    "Studio Ghibli",
    "Greg Rutkowski",
)
COMMON_WORDS = (
    "a photo of an the in on with and by at masterpiece best high low quality detailed "
    "portrait landscape style painting drawing sketch illustration anime realistic girl boy "
    "man woman person figure sun sea sky beach ocean mountain city forest night day light "
    "red green blue yellow black white color eye eyes hair face smile standing sitting "
    "looking viewer art artist trending artstation 4k 8k ugly blurry worst"
)

_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def tokenizer_corpus() -> list[str]:
    """Text whose words the tiny tokenizer learns as single tokens."""
    return [PROMPT_TEMPLATE, NEGATIVE_PROMPT, COMMON_WORDS, *ARTISTS]


def _corpus_words(lines: list[str]) -> Counter:
    """Split ``lines`` exactly as CLIPTokenizer will: lowercase, CLIP's regex, byte symbols."""
    from transformers import CLIPTokenizer

    # A default CLIPTokenizer has a 3-token vocab; only its normalizer and splitter are used.
    backend = CLIPTokenizer().backend_tokenizer
    words = Counter()
    for line in lines:
        text = backend.normalizer.normalize_str(line)
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(text):
            words[tuple(word[:-1]) + (word[-1] + "</w>",)] += 1
    return words


def _train_merges(lines: list[str]) -> list[tuple[str, str]]:
    """Learn BPE merges until every word of ``lines`` is a single token.

    Real BPE training (not hand-written merges) guarantees no merge made for one word
    blocks another. Our own loop rather than ``tokenizers``' trainer, because that one
    breaks count ties in hash order and gives a different vocab on every run.
    """
    words, merges = _corpus_words(lines), []
    while True:
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            return merges
        # Most frequent first; ties broken by the pair itself, so the result is fixed.
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = Counter({_merge_pair(word, best): n for word, n in words.items()})


def _merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged, i = [], 0
    while i < len(word):
        if word[i : i + 2] == pair:
            merged.append(pair[0] + pair[1])
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return tuple(merged)


def make_tokenizer(folder: Path):
    """Write CLIP-style ``vocab.json`` + ``merges.txt`` into ``folder``; return the tokenizer.

    Vocab order follows OpenAI CLIP: the 256 byte symbols, the same with ``</w>``, one
    entry per merge, then the two specials, so text outside the corpus still tokenizes
    (as byte symbols). The files stay beside the ``tokenizer.json`` that saving writes,
    as in SD 1.5's tokenizer folder, for loaders that want them.
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_symbols = list(bytes_to_unicode().values())
    merges = _train_merges(tokenizer_corpus())
    tokens = byte_symbols + [s + "</w>" for s in byte_symbols]
    tokens += ["".join(pair) for pair in merges] + [_BOS, _EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [" ".join(pair) for pair in merges]
    (folder / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    # transformers 5 ignores CLIPTokenizer(vocab_file=..., merges_file=...) and silently
    # builds a 3-token vocab, so pass the vocab and merges themselves.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
