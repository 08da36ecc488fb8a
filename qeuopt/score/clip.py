"""CLIP image-text similarity through sentence-transformers.

The score logged is the raw cosine similarity of the L2-normalized image and text
embeddings, in [-1, 1]. With ``clip-ViT-L-14`` a matching image-prompt pair scores about
0.2-0.35 and unrelated pairs about 0.1 or less. (torchmetrics' CLIPScore reports
``max(100 * cosine, 0)`` instead; multiply by 100 to compare.) CLIP reads at most 77
tokens: longer texts are truncated, and we warn once per text.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from qeuopt.generate.models import resolve_model

CLIP_MAX_TOKENS = 77


class ClipScorer:
    """Scores images against a text; each distinct text is encoded once."""

    def __init__(self, model: str = "clip-ViT-L-14", device: str | None = None):
        self.model_name = model
        self.device = device
        self._model = None
        self._text_cache: dict[str, np.ndarray] = {}

    @property
    def model(self):
        if self._model is None:
            self._model = load_clip(self.model_name, self.device)
        return self._model

    def text_embedding(self, text: str) -> np.ndarray:
        if text not in self._text_cache:
            self._warn_if_truncated(text)
            self._text_cache[text] = self.model.encode([text], normalize_embeddings=True)[0]
        return self._text_cache[text]

    def image_embeddings(self, images: Sequence) -> np.ndarray:
        """All images of a grid in one batch."""
        return self.model.encode(list(images), batch_size=len(images), normalize_embeddings=True)

    def score(self, images: Sequence, text: str) -> np.ndarray:
        """Cosine similarity of each image with ``text``."""
        return self.image_embeddings(images) @ self.text_embedding(text)

    def count_tokens(self, text: str) -> int | None:
        tokenizer = getattr(self.model, "tokenizer", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps it
        if tokenizer is None:
            return None
        return len(tokenizer(text, truncation=False)["input_ids"])

    def _warn_if_truncated(self, text: str) -> None:
        count = self.count_tokens(text)
        if count is not None and count > CLIP_MAX_TOKENS:
            warnings.warn(f"CLIP reads {CLIP_MAX_TOKENS} tokens; this text has {count} and is truncated "
                          f"for scoring: {text[:60]!r}...", stacklevel=3)


def load_clip(name: str, device: str | None):
    """The sentence-transformers CLIP model, or one line saying why it did not load."""
    from qeuopt.errors import ModelLoadError
    from qeuopt.generate.models import load_failure
    from qeuopt.generate.noise import third_party_noise_off

    third_party_noise_off()
    from sentence_transformers import SentenceTransformer

    source = resolve_model(name)
    try:
        return SentenceTransformer(source, device=device)
    except (OSError, ValueError) as err:
        raise ModelLoadError(load_failure("scoring.clip_model", name, source, err)) from err


def summarize(scores: Sequence[float]) -> dict[str, float]:
    """Per-condition aggregates of per-image scores."""
    values = np.asarray(scores, dtype=float)
    return {"mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max()), "std": float(values.std(ddof=0))}
