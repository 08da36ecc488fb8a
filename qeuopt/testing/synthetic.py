"""Synthetic studies with a known response, shaped like real artist-pair studies.

A score (think CLIP similarity, in arbitrary points) is

    true = base + bias_a[artist A] + bias_b[artist B] + (U V^T)[A, B]
           + strength bump + guidance bump            (+ 0 from the inert factors)
    evaluate = true + seed noise

- artist biases: each artist's own pull, N(0, 1) per slot;
- the pair interaction is low rank (rank 1 or 2), as taste for a pairing usually is:
  some artists combine well, some clash; its typical size is ``interaction``;
- strength and guidance each have one smooth optimum (a Gaussian bump whose peak lies
  anywhere in the level range, or a little outside, so the effect can also be monotone);
- scheduler and steps are inert: real studies carry factors that turn out not to matter;
- seed noise is Gaussian with sd ``noise``: two seeds of one setting differ that much.

Everything is drawn from ``random_state``; the noise of :meth:`SyntheticProblem.evaluate`
comes from its own generator seeded from the same state, so a fresh problem built with
the same arguments replays the same noise sequence.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qeuopt.errors import InputError

STRENGTHS = (0.35, 0.45, 0.55, 0.65, 0.75)
GUIDANCES = (5.0, 6.5, 8.0, 9.5, 11.0)
INERT = {"scheduler": ("euler_a", "dpmpp_2m", "ddim"), "steps": (20, 30, 40)}
BASE_SCORE = 25.0  # where scores sit; only differences matter


@dataclass(frozen=True)
class Bump:
    """A smooth single-peaked effect: ``height * exp(-((x - peak) / width)^2 / 2)``."""

    peak: float
    width: float
    height: float

    def __call__(self, x: float) -> float:
        return self.height * float(np.exp(-0.5 * ((float(x) - self.peak) / self.width) ** 2))


@dataclass
class SyntheticProblem:
    """A study whose true response is known: evaluate it, and measure regret exactly."""

    factors: dict[str, tuple]
    bias_a: np.ndarray
    bias_b: np.ndarray
    interaction: np.ndarray  # (n_a, n_b), low rank
    strength: Bump
    guidance: Bump
    noise: float
    noise_seed: int
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.reset_noise()
        self._index = {name: {level: i for i, level in enumerate(levels)} for name, levels in self.factors.items()}

    def reset_noise(self) -> None:
        """Restart the noise sequence, so the same evaluations get the same noise again."""
        self._rng = np.random.default_rng(self.noise_seed)

    def true_value(self, condition: Mapping[str, Any]) -> float:
        """The noise-free score of a condition (inert factors are checked, then ignored)."""
        idx = self._indices(condition)
        a, b = idx["style_a"], idx["style_b"]
        return (
            BASE_SCORE
            + float(self.bias_a[a] + self.bias_b[b] + self.interaction[a, b])
            + self.strength(condition["strength"])
            + self.guidance(condition["guidance"])
        )

    def evaluate(self, condition: Mapping[str, Any]) -> float:
        """One noisy observation (one image with a fresh seed) of a condition."""
        return self.true_value(condition) + self.noise * float(self._rng.standard_normal())

    def optimum(self) -> float:
        """The best true value over the full grid (exact: the response is separable)."""
        return self.true_value(self.best_condition())

    def best_condition(self) -> dict[str, Any]:
        """A condition reaching :meth:`optimum` (inert factors at their first level)."""
        pair = self.bias_a[:, None] + self.bias_b[None, :] + self.interaction
        a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
        best = {name: levels[0] for name, levels in self.factors.items()}
        best["style_a"], best["style_b"] = self.factors["style_a"][a], self.factors["style_b"][b]
        for name, bump in (("strength", self.strength), ("guidance", self.guidance)):
            best[name] = max(self.factors[name], key=bump)
        return best

    def regret(self, condition: Mapping[str, Any]) -> float:
        """How much worse than the optimum a condition truly is (0 at the optimum)."""
        return self.optimum() - self.true_value(condition)

    def grid_mean(self) -> float:
        """The mean true value over the full grid: the regret of a blind pick is about
        ``optimum() - grid_mean()``."""
        pair = self.bias_a[:, None] + self.bias_b[None, :] + self.interaction
        return (
            BASE_SCORE
            + float(pair.mean())
            + float(np.mean([self.strength(x) for x in self.factors["strength"]]))
            + float(np.mean([self.guidance(x) for x in self.factors["guidance"]]))
        )

    def grid_size(self) -> int:
        return int(np.prod([len(levels) for levels in self.factors.values()]))

    def all_conditions(self):
        """Every condition of the grid, as dicts (for small grids and tests)."""
        names = list(self.factors)
        for combo in itertools.product(*self.factors.values()):
            yield dict(zip(names, combo))

    def _indices(self, condition: Mapping[str, Any]) -> dict[str, int]:
        found = {}
        for name, index in self._index.items():
            if name not in condition:
                raise InputError(
                    f"`condition`: needs a level of every factor {list(self.factors)}; {name!r} is missing"
                )
            if condition[name] not in index:
                raise InputError(
                    f"`condition.{name}`: allowed levels {list(self.factors[name])}; given {condition[name]!r}"
                )
            found[name] = index[condition[name]]
        return found


def make_problem(
    random_state: int = 0,
    *,
    n_artists: int | tuple[int, int] = (3, 9),
    strength: Sequence[float] = STRENGTHS,
    guidance: Sequence[float] = GUIDANCES,
    inert: Mapping[str, Sequence] | None = None,
    rank: int | None = None,
    interaction: float = 0.7,
    noise: float = 0.75,
) -> SyntheticProblem:
    """Draw one synthetic study.

    ``n_artists``: artists per slot, an int for both slots or ``(low, high)`` to draw each
    slot's count uniformly in that range. ``rank``: of the pair interaction, 1 or 2
    (drawn when None). ``interaction``: typical size (sd) of the pair interaction, in the
    units where artist biases have sd 1. ``inert``: factors with no effect (default
    scheduler x steps, three levels each).
    """
    rng = np.random.default_rng(random_state)
    n_a, n_b = _artist_counts(rng, n_artists)
    rank = int(rng.integers(1, 3)) if rank is None else rank
    if rank not in (1, 2):
        raise InputError(f"`rank`: allowed 1 or 2 (or None to draw it); given {rank!r}")
    factors = {
        "style_a": tuple(f"artist_a{i + 1}" for i in range(n_a)),
        "style_b": tuple(f"artist_b{i + 1}" for i in range(n_b)),
        "strength": tuple(strength),
        "guidance": tuple(guidance),
    }
    factors.update({name: tuple(levels) for name, levels in (INERT if inert is None else inert).items()})
    # U V^T with entries of sd `interaction`: each of the `rank` terms has variance 1/rank
    u = rng.normal(0.0, 1.0, (n_a, rank))
    v = rng.normal(0.0, 1.0, (n_b, rank))
    pair = interaction * (u @ v.T) / np.sqrt(rank)
    return SyntheticProblem(
        factors=factors,
        bias_a=rng.normal(0.0, 1.0, n_a),
        bias_b=rng.normal(0.0, 1.0, n_b),
        interaction=pair,
        strength=_bump(rng, strength, height=(1.0, 3.0)),
        guidance=_bump(rng, guidance, height=(0.5, 2.0)),
        noise=float(noise),
        noise_seed=int(rng.integers(2**31)),
    )


def _artist_counts(rng: np.random.Generator, n_artists) -> tuple[int, int]:
    if isinstance(n_artists, (int, np.integer)):
        low = high = int(n_artists)
    else:
        low, high = (int(n) for n in n_artists)
    if not 2 <= low <= high:
        raise InputError(f"`n_artists`: an int >= 2 or (low, high) with 2 <= low <= high; given {n_artists!r}")
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def _bump(rng: np.random.Generator, levels: Sequence[float], height: tuple[float, float]) -> Bump:
    lo, hi = float(min(levels)), float(max(levels))
    span = hi - lo
    # the peak may sit a little outside the tried range: then the effect is monotone
    return Bump(
        peak=float(rng.uniform(lo - 0.15 * span, hi + 0.15 * span)),
        width=float(rng.uniform(0.25, 0.6) * span),
        height=float(rng.uniform(*height)),
    )
