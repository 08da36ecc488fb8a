"""Real human ratings replayed as a search problem (AGIQA-3K, ../shared/data/agiqa3k).

AGIQA-3K rated images of the same 300 prompts from several generators; Stable Diffusion
1.5 appears at four settings (normal, fewer steps, lower and higher guidance). The
prompts carry a style (anime, sci-fi, baroque, abstract, realistic, or none) and
modifiers. The complete part of that table, with no cell invented, is

    generator (9: the four SD 1.5 settings, SDXL 2.2, Midjourney at two settings,
               GLIDE, AttnGAN)  x  style (6)  x  colour modifier (none, cold, warm)

= 162 settings (DALL-E 2 is left out: it has no image for realistic + warm colour);
``sd15_only`` keeps the four SD 1.5 settings (72). A setting's true value
is the mean ``mos_quality`` of its images; evaluating it returns one of those images'
scores drawn at random (another prompt with the same factors, as a new seed would give),
so cells with more images are noisier to read and the replay keeps the real noise. A
cell with one image always returns that score. Instances differ only in their seeds.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from families import TableWorld

DATA = Path(os.environ.get("QEUOPT_AGIQA", Path(__file__).resolve().parents[1] / "../shared/data/agiqa3k/data.csv"))
COLOURS = ("none", "cold color", "warm color")


@lru_cache(maxsize=2)
def replay_table(sd15_only: bool = False) -> tuple[dict, np.ndarray, tuple]:
    """(factors, true values over the grid, per-cell arrays of image scores)."""
    data = load_images(sd15_only)
    data = data[data["colour"].isin(COLOURS) & (data["model"] != "DALLE2")]
    factors = {
        "generator": tuple(sorted(data["generator"].unique())),
        "style": tuple(sorted(data["style"].unique())),
        "colour": COLOURS,
    }
    shape = [len(v) for v in factors.values()]
    truth, scores = np.full(shape, np.nan), np.empty(shape, dtype=object)
    for (gen, style, colour), cell in data.groupby(["generator", "style", "colour"]):
        index = (factors["generator"].index(gen), factors["style"].index(style), COLOURS.index(colour))
        truth[index], scores[index] = cell["mos_quality"].mean(), cell["mos_quality"].to_numpy()
    if np.isnan(truth).any():
        raise ValueError(f"`data`: {int(np.isnan(truth).sum())} settings have no image in {DATA}")
    return factors, truth, scores


def load_images(sd15_only: bool = False) -> pd.DataFrame:
    """One row per image: generator, setting, prompt index, style, adj1 (colour), adj2, scores."""
    if not DATA.exists():
        raise FileNotFoundError(f"AGIQA-3K data not found at {DATA}; set QEUOPT_AGIQA to data.csv")
    data = pd.read_csv(DATA)
    parts = data["name"].str.rsplit("_", n=2, expand=True)
    data["model"], data["setting"], data["prompt_id"] = parts[0], parts[1], parts[2].str.split(".").str[0]
    data["generator"] = np.where(data["setting"] == "normal", data["model"], data["model"] + " " + data["setting"])
    data = data.fillna({"style": "none", "adj1": "none", "adj2": "none"})
    data["colour"] = data["adj1"]
    if sd15_only:
        data = data[data["model"] == "sd1.5"]
    return data.reset_index(drop=True)


def replay_world(seed: int, sd15_only: bool = False) -> TableWorld:
    factors, truth, scores = replay_table(sd15_only)

    def noise(rng, codes):  # one image of the cell instead of the cell's mean
        cell = scores[codes]
        return float(cell[rng.integers(len(cell))]) - float(truth[codes])

    return TableWorld(factors, truth, noise, int(np.random.default_rng([4, seed]).integers(2**31)))
