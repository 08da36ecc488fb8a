"""Worlds to search that qeuopt's model was not built for, plus its own family as one row.

Written down before anything was run on them and never used to tune anything (no
qeuopt default was chosen by looking at results on these families). Every world has
``factors``, ``evaluate(condition)`` (one noisy observation; the noise replays after
``reset_noise()``), ``true_value(condition)``, ``optimum()``, ``grid_mean()`` and
``regret(condition)``; the truth is tabulated over the whole grid, so the optimum is exact.

- ``own``: :func:`qeuopt.testing.synthetic.make_problem`, the model's own family (additive main
  effects, a rank-1/2 pair term, smooth bumps, Gaussian noise).
- ``fullrank``: a full-rank artist-pair interaction as large as the artists' own pull
  (no low-rank structure to learn), Student-t noise (3 degrees of freedom).
- ``numeric``: interactions between numeric and categorical factors: every slot-A artist
  has its own best strength, the best guidance moves with strength, steps give
  diminishing returns; noise sd grows with guidance (heteroscedastic).
- ``plateau``: scores saturate (a plateau of near-equal good settings), strength below a
  threshold does nothing, one (artist A, artist B, scheduler) triple carries a bonus no
  main effect or pair term shows, and 10% of images fail (heavy one-sided outliers).
- ``agiqa``, ``agiqa-sd15``: real human ratings replayed (:mod:`agiqa_replay`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

STRENGTHS = (0.35, 0.45, 0.55, 0.65, 0.75)
GUIDANCES = (5.0, 6.5, 8.0, 9.5, 11.0)
SCHEDULERS = ("euler_a", "dpmpp_2m", "ddim")


class TableWorld:
    """A world whose true value is tabulated over the grid; noise drawn in call order."""

    def __init__(
        self,
        factors: Mapping[str, tuple],
        truth: np.ndarray,
        noise: Callable[[np.random.Generator, tuple], float],
        noise_seed: int,
    ):
        self.factors = {name: tuple(levels) for name, levels in factors.items()}
        self.truth, self.noise, self.noise_seed = truth, noise, noise_seed
        self._index = {name: {level: i for i, level in enumerate(levels)} for name, levels in self.factors.items()}
        self.reset_noise()

    def reset_noise(self) -> None:
        self._rng = np.random.default_rng(self.noise_seed)

    def _codes(self, condition: Mapping[str, Any]) -> tuple:
        return tuple(self._index[name][condition[name]] for name in self.factors)

    def true_value(self, condition) -> float:
        return float(self.truth[self._codes(condition)])

    def evaluate(self, condition) -> float:
        codes = self._codes(condition)
        return float(self.truth[codes]) + float(self.noise(self._rng, codes))

    def optimum(self) -> float:
        return float(self.truth.max())

    def grid_mean(self) -> float:
        return float(self.truth.mean())

    def regret(self, condition) -> float:
        return self.optimum() - self.true_value(condition)


def _grid(factors: Mapping[str, tuple]) -> list[np.ndarray]:
    """Per factor, an index array broadcastable over the grid (for numpy formulas)."""
    n = len(factors)
    return [
        np.arange(len(levels)).reshape([-1 if i == k else 1 for i in range(n)])
        for k, levels in enumerate(factors.values())
    ]


def _artists(rng: np.random.Generator) -> dict[str, tuple]:
    n_a, n_b = (int(rng.integers(3, 10)) for _ in range(2))
    return {
        "style_a": tuple(f"artist_a{i + 1}" for i in range(n_a)),
        "style_b": tuple(f"artist_b{i + 1}" for i in range(n_b)),
    }


def _bump(x, peak, width, height):
    return height * np.exp(-0.5 * ((x - peak) / width) ** 2)


def fullrank(seed: int) -> TableWorld:
    rng = np.random.default_rng([1, seed])
    factors = {
        **_artists(rng),
        "strength": STRENGTHS,
        "guidance": GUIDANCES,
        "scheduler": SCHEDULERS,
        "steps": (20, 30, 40),
    }
    a, b, s, g, _, _ = _grid(factors)
    n_a, n_b = len(factors["style_a"]), len(factors["style_b"])
    pair = rng.normal(0, 1, (n_a, n_b))  # iid cells: full rank, nothing shared between pairs
    st, gu = np.array(STRENGTHS), np.array(GUIDANCES)
    truth = (
        rng.normal(0, 1, n_a)[a]
        + rng.normal(0, 1, n_b)[b]
        + pair[a, b]
        + _bump(st[s], rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.25), rng.uniform(1, 3))
        + _bump(gu[g], rng.uniform(4, 12), rng.uniform(1.5, 3.5), rng.uniform(0.5, 2))
    )
    truth = np.broadcast_to(truth, [len(v) for v in factors.values()]).copy()
    return TableWorld(factors, truth, lambda r, codes: 0.75 * r.standard_t(3), int(rng.integers(2**31)))


def numeric(seed: int) -> TableWorld:
    rng = np.random.default_rng([2, seed])
    steps = (10, 20, 30, 50)
    factors = {**_artists(rng), "strength": STRENGTHS, "guidance": GUIDANCES, "scheduler": SCHEDULERS, "steps": steps}
    a, b, s, g, c, k = _grid(factors)
    n_a, n_b = len(factors["style_a"]), len(factors["style_b"])
    st, gu = np.array(STRENGTHS), np.array(GUIDANCES)
    peaks = rng.uniform(0.3, 0.8, n_a)  # artist x strength: each artist A has its own best strength
    best_guidance = rng.uniform(6, 10) + rng.choice([-1, 1]) * rng.uniform(5, 12) * (st[s] - 0.55)
    truth = (
        rng.normal(0, 1, n_a)[a]
        + rng.normal(0, 1, n_b)[b]
        + _bump(st[s], peaks[a], 0.12, rng.uniform(1, 3))
        + _bump(gu[g], best_guidance, 2.0, rng.uniform(1, 2))  # strength x guidance
        + rng.normal(0, 0.3, 3)[c]
        + rng.uniform(0.5, 1.5) * (1 - np.exp(-np.array(steps)[k] / rng.uniform(5, 20)))
    )
    truth = np.broadcast_to(truth, [len(v) for v in factors.values()]).copy()
    g_index = list(factors).index("guidance")

    def noise(r, codes):  # heteroscedastic: sd 0.5 at the lowest guidance, 1.5 at the highest
        return (0.5 + codes[g_index] / (len(GUIDANCES) - 1)) * r.standard_normal()

    return TableWorld(factors, truth, noise, int(rng.integers(2**31)))


def plateau(seed: int) -> TableWorld:
    rng = np.random.default_rng([3, seed])
    factors = {
        **_artists(rng),
        "strength": STRENGTHS,
        "guidance": GUIDANCES,
        "scheduler": SCHEDULERS,
        "steps": (20, 30, 40),
    }
    a, b, s, g, c, _ = _grid(factors)
    n_a, n_b = len(factors["style_a"]), len(factors["style_b"])
    st, gu = np.array(STRENGTHS), np.array(GUIDANCES)
    threshold = rng.choice(STRENGTHS[1:4])  # below it the image barely changes: a flat region
    raw = (
        rng.normal(0, 1, n_a)[a]
        + rng.normal(0, 1, n_b)[b]
        + np.where(st[s] >= threshold, rng.uniform(1, 2), 0.0)
        + _bump(gu[g], rng.uniform(4, 12), rng.uniform(1.5, 3.5), rng.uniform(0.5, 2))
    )
    triple = (rng.integers(n_a), rng.integers(n_b), rng.integers(3))
    bonus = 1.5 * ((a == triple[0]) & (b == triple[1]) & (c == triple[2]))
    truth = 2.0 * np.tanh(raw / 2.0) + bonus  # saturation: many near-equal good settings
    truth = np.broadcast_to(truth, [len(v) for v in factors.values()]).copy()

    def noise(r, codes):  # 10% failed images score 3 points low: heavy one-sided outliers
        return 0.5 * r.standard_normal() - (3.0 if r.random() < 0.1 else 0.0)

    return TableWorld(factors, truth, noise, int(rng.integers(2**31)))


class OwnWorld:
    """:func:`qeuopt.testing.synthetic.make_problem` seen through the world interface."""

    def __init__(self, seed: int):
        from qeuopt.testing.synthetic import make_problem

        self.problem = make_problem(seed)
        self.factors = self.problem.factors

    def __getattr__(self, name):
        return getattr(self.problem, name)


def all_conditions(world) -> list[dict]:
    names = list(world.factors)
    return [dict(zip(names, combo)) for combo in itertools.product(*world.factors.values())]


def make_world(family: str, seed: int):
    """One instance of a family."""
    if family == "own":
        return OwnWorld(seed)
    if family in ("agiqa", "agiqa-sd15"):
        from agiqa_replay import replay_world

        return replay_world(seed, sd15_only=family == "agiqa-sd15")
    makers = {"fullrank": fullrank, "numeric": numeric, "plateau": plateau}
    if family not in makers:
        raise ValueError(f"`family`: allowed own, fullrank, numeric, plateau, agiqa, agiqa-sd15; given {family!r}")
    return makers[family](seed)
