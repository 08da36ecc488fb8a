"""Do qeuopt's rating models predict real human ratings? Cross-validated, against plain baselines.

Data: AGIQA-3K (../shared/data/agiqa3k/data.csv), human quality scores (mos_quality) of
generated images. Two prediction tasks, each 5-fold:

- ``settings``: predict an image's score from its setting's factors (generator or SD 1.5
  setting, style, adj1, adj2); folds hold out whole prompts, as a recommender must
  score settings for prompts it has not seen. Models: global mean; biases only (one
  effect per level, ``SettingModel(pair=None)``); ridge on one-hot levels
  (scikit-learn); the setting model with its pair factorization (``pair="auto"``: the
  two text factors with most levels, adj1 x adj2); the T-method (Ta, one-hot items);
  ``LevelGP``; and ``ModelSelector`` (the recommender's default, refitted in every
  fold, so its choice is cross-validated too; its CV runs without the GP candidate
  unless ``--selector-gp``, to keep the run short).
- ``matrix``: predict a (prompt, generator) cell from the others, the collaborative
  filtering task: ``PairFactorization`` with 1, 2 and 5 latent factors against biases
  only (0 factors) and the global mean; folds hold out random cells.

Printed: RMSE mean +- standard error over folds, and the paired difference to biases
only (negative = better than biases only).

    python benchmarks/rating_models.py [--sd15-only] [--selector-gp] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import pandas as pd
from agiqa_replay import load_images
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold
from sklearn.preprocessing import OneHotEncoder

from qeuopt.model import PairFactorization, TMethodRegressor
from qeuopt.model.levelgp import LevelGP
from qeuopt.model.select import ModelSelector
from qeuopt.model.setting import SettingModel


class OneHot(RegressorMixin, BaseEstimator):
    """A numeric-array regressor applied to one-hot encoded level columns."""

    def __init__(self, regressor=None):
        self.regressor = regressor

    def fit(self, X, y):
        self.encoder_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(X.astype(str))
        self.model_ = self.regressor.fit(self.encoder_.transform(X.astype(str)), y)
        return self

    def predict(self, X):
        return self.model_.predict(self.encoder_.transform(X.astype(str)))


class GlobalMean(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def setting_models(selector_gp: bool) -> dict:
    candidates = ("mean", "additive", "pair", "gp") if selector_gp else ("mean", "additive", "pair")
    return {
        "global mean": GlobalMean(),
        "biases only": SettingModel(pair=None),
        "ridge (one-hot)": OneHot(Ridge(alpha=1.0)),
        "setting model + pair": SettingModel(pair="auto"),
        "T-method Ta (one-hot items)": OneHot(TMethodRegressor(variant="ta")),
        "LevelGP": LevelGP(),
        "ModelSelector (default)": ModelSelector(candidates),
    }


def matrix_models() -> dict:
    return {
        "global mean": GlobalMean(),
        "biases only": PairFactorization(n_factors=0, random_state=0),
        **{f"PairFactorization k={k}": PairFactorization(n_factors=k, random_state=0) for k in (1, 2, 5)},
    }


def cross_validate(models: dict, X, y, splits) -> tuple[pd.DataFrame, dict]:
    """Per-fold RMSE (rows: folds, columns: models) and the selector's choices."""
    rows, choices = [], {}
    for train, test in splits:
        row = {}
        for name, model in models.items():
            fitted = model.fit(X.iloc[train] if hasattr(X, "iloc") else X[train], y[train])
            predicted = fitted.predict(X.iloc[test] if hasattr(X, "iloc") else X[test])
            row[name] = float(np.sqrt(np.mean((y[test] - predicted) ** 2)))
            if hasattr(fitted, "chosen_"):
                choices[fitted.chosen_] = choices.get(fitted.chosen_, 0) + 1
        rows.append(row)
    return pd.DataFrame(rows), choices


def report(title: str, errors: pd.DataFrame, baseline: str = "biases only") -> list[str]:
    k = len(errors)
    lines = [f"### {title}", "", f"| model | RMSE ({k} folds) | minus {baseline} |", "|---|---:|---:|"]
    for name in errors.columns:
        diff = errors[name] - errors[baseline]
        lines.append(
            f"| {name} | {errors[name].mean():.4f} +- {errors[name].std(ddof=1) / np.sqrt(k):.4f} | "
            f"{diff.mean():+.4f} +- {diff.std(ddof=1) / np.sqrt(k):.4f} |"
        )
    return lines + [""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sd15-only", action="store_true", help="only the SD 1.5 images (4 settings)")
    parser.add_argument("--selector-gp", action="store_true", help="let ModelSelector try LevelGP too (slow)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = load_images(args.sd15_only)
    factor = "setting" if args.sd15_only else "generator"
    X = data[[factor, "style", "adj1", "adj2"]].astype(object)
    y = data["mos_quality"].to_numpy(float)
    folds = GroupKFold(args.folds, shuffle=True, random_state=0).split(X, y, data["prompt_id"])
    errors, choices = cross_validate(setting_models(args.selector_gp), X, y, list(folds))
    keys = data[["prompt_id", factor]].to_numpy(dtype=object)
    cells = KFold(args.folds, shuffle=True, random_state=0).split(keys)
    matrix, _ = cross_validate(matrix_models(), keys, y, list(cells))
    print("Command: python benchmarks/rating_models.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(
        f"AGIQA-3K, {len(data)} images ({'SD 1.5 at 4 settings' if args.sd15_only else 'all generators'}), "
        f"mos_quality sd {y.std():.3f}; {time.perf_counter() - start:.0f} s\n"
    )
    print("\n".join(report(f"settings: score from ({factor}, style, adj1, adj2), whole prompts held out", errors)))
    print(f"ModelSelector chose, per fold: {choices}\n")
    print("\n".join(report(f"matrix: (prompt, {factor}) cells held out", matrix)))


if __name__ == "__main__":
    main()
