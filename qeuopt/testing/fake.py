"""A fake generator and scorer: studies run in milliseconds with no model at all.

The fake images are deterministic in (prompt, settings, seed), so tests can check
resumption, tracking and analysis without diffusers; the fake score is a smooth function
of the pixels, so better-looking conditions are reproducible too.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from qeuopt.config.spec import GenerationSettings


class FakeGenerator:
    """Noise images seeded by the condition; ``fail_after=n`` raises on call n+1;
    ``seconds``: sleep that long per grid, standing in for a GPU's time."""

    model = "fake-model"

    def __init__(self, fail_after: int | None = None, seconds: float = 0.0):
        self.fail_after, self.seconds = fail_after, seconds
        self.calls: list[tuple[str, list[int]]] = []

    def generate(
        self, prompt: str, negative: str, settings: GenerationSettings, seeds: Sequence[int], init_image=None
    ) -> list[Image.Image]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError(f"fake generator stopped after {self.fail_after} conditions")
        self.calls.append((prompt, list(seeds)))
        if self.seconds:
            time.sleep(self.seconds)
        return [self._image(prompt, settings, seed) for seed in seeds]

    @staticmethod
    def _image(prompt: str, settings: GenerationSettings, seed: int) -> Image.Image:
        digest = hashlib.sha256(f"{prompt}|{settings.strength}|{settings.guidance}|{seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        pixels = rng.integers(0, 256, (settings.height, settings.width, 3), dtype=np.uint8)
        return Image.fromarray(pixels)

    def sampler_label(self, scheduler: str) -> str:
        return self.a1111_sampler(scheduler)[0]

    def a1111_sampler(self, scheduler: str) -> tuple[str, str]:
        """A1111's (sampler, schedule type); the fake "model" ships Euler."""
        from qeuopt.config.schedulers import a1111_sampler

        return a1111_sampler("euler" if scheduler == "default" else scheduler)


class FakeScorer:
    """Mean brightness of each image in [0, 1], standing in for a CLIP cosine."""

    def __init__(self):
        self.texts: list[str] = []

    def score(self, images: Sequence[Image.Image], text: str) -> np.ndarray:
        self.texts.append(text)
        return np.array([np.asarray(image, dtype=float).mean() / 255.0 for image in images])
