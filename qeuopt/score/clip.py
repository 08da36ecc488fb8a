"""CLIP image-text similarity through sentence-transformers.

The score logged is the raw cosine similarity of the L2-normalized image and text
embeddings, in [-1, 1]. With ``clip-ViT-L-14`` a matching image-prompt pair scores about
0.2-0.35 and unrelated pairs about 0.1 or less. (torchmetrics' CLIPScore reports
``max(100 * cosine, 0)`` instead; multiply by 100 to compare.) CLIP reads at most 77
tokens: longer texts are truncated, and we warn once per text.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from qeuopt.generate.models import resolve_model

CLIP_MAX_TOKENS = 77


class ClipScorer:
    """Scores images against a text; each distinct text is encoded once.

    Images come as PIL images or as one uint8 array ``(n, height, width, 3)``; an array
    is resized and normalized with torch on the model's device (one upload, no per-image
    PIL resize), which matches CLIP's own PIL preprocessing closely (on the CPU, cosines
    within 1e-5 of it on the tiny model, at 11 against 30 ms per 512x512 grid)."""

    takes_pixels = True  # ConditionRunner may hand over the grid's pixel array

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
        if isinstance(images, np.ndarray) and self._pixel_processor() is not None:
            return self._pixel_embeddings(images)
        return self.model.encode(list(images), batch_size=len(images), normalize_embeddings=True)

    def _pixel_processor(self):
        """CLIP's image processor when the model is one sentence-transformers CLIP module."""
        modules = list(self.model)
        processor = getattr(getattr(modules[0], "processor", None), "image_processor", None) if modules else None
        return processor if len(modules) == 1 and hasattr(processor, "image_mean") else None

    def _pixel_embeddings(self, pixels: np.ndarray) -> np.ndarray:
        """CLIP's preprocessing in torch: shortest edge to ``size`` (bicubic, antialiased),
        centre crop, scale to [0, 1], normalize; then the image tower, on the model's device."""
        import torch
        import torch.nn.functional as F

        proc, device = self._pixel_processor(), self.model.device
        edge, crop = proc.size["shortest_edge"], (proc.crop_size["height"], proc.crop_size["width"])
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2)
        height, width = x.shape[-2:]
        scale = edge / min(height, width)
        size = (max(edge, round(height * scale)), max(edge, round(width * scale)))
        x = _resize(x, size)
        top, left = (size[0] - crop[0]) // 2, (size[1] - crop[1]) // 2
        x = x[..., top : top + crop[0], left : left + crop[1]] / 255.0
        mean = torch.tensor(proc.image_mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(proc.image_std, device=device).view(1, 3, 1, 1)
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            out = self.model({"pixel_values": ((x - mean) / std).to(dtype), "modality": "image"})
        embeddings = F.normalize(out["sentence_embedding"].float(), dim=-1)
        return embeddings.cpu().numpy()

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
            warnings.warn(
                f"CLIP reads {CLIP_MAX_TOKENS} tokens; this text has {count} and is truncated "
                f"for scoring: {text[:60]!r}...",
                stacklevel=3,
            )


def _resize(x, size: tuple[int, int], in_uint8: bool | None = None):
    """uint8 images ``(n, 3, h, w)`` resized as CLIP's processor resizes them (PIL, bicubic,
    antialiased, 8 bits out), as floats. On the CPU (``in_uint8``) torch resizes uint8
    itself, channels last, in PIL's arithmetic: within a level or two of PIL and ~9x less
    CPU than resizing floats (2.6 against 24 ms for six 512x512 images on one thread);
    other devices resize floats (within a few levels of PIL) and round."""
    import torch
    import torch.nn.functional as F

    if in_uint8 if in_uint8 is not None else x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).float()
    x = F.interpolate(x.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return x.clamp(0, 255).round()


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
    return {
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "std": float(values.std(ddof=0)),
    }
