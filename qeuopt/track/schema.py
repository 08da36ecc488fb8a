"""Every name qeuopt writes into MLflow and Optuna, in one place.

Runs: one parent run per study (``ROLE_TAG`` = "study"), one child run per condition
(``ROLE_TAG`` = "condition", ``TRIAL_TAG`` its Optuna trial number). Params: each factor
as ``factor.<name>``, plus the prompt and generation settings. Metrics: ``clip_mean`` and
friends, one ``clip_image_NN`` per image, and the ratings' ``rating_*``. Optuna trials
carry the run id as a user attribute, so each side points at the other.
"""

from __future__ import annotations

# tags
STUDY_TAG = "qeuopt.study"
ROLE_TAG = "qeuopt.role"
TRIAL_TAG = "optuna.trial_number"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests condition runs under the study's run
RATERS_TAG = "qeuopt.raters"
FOLDER_TAG = "qeuopt.folder"  # where the condition's files were written
STEERED_TAG = "qeuopt.steered"
RECOMMENDED_TAG = "qeuopt.recommended"
OPTIMUM_TAG = "qeuopt.optimum"

# params
FACTOR_PREFIX = "factor."  # factor.<name> = the condition's level

# metrics
CLIP_MEAN = "clip_mean"
CLIP_IMAGE_PREFIX = "clip_image_"  # clip_image_00, clip_image_01, ...
RATING_MEAN = "rating_mean"
RATING_COUNT = "rating_count"
RATING_IMAGE_PREFIX = "rating_image_"
PREFERENCE_METRICS = ("preference_score", "preference_lower", "preference_upper", "preference_count")  # pairwise

# Optuna trial user attributes
RUN_ID_ATTR = "mlflow_run_id"
CLIP_SCORES_ATTR = "clip_scores"


def image_metric(prefix: str, index: int) -> str:
    """``clip_image_00``: two digits, so metrics sort in grid order in the MLflow UI."""
    return f"{prefix}{index:02d}"


def column(kind: str, name: str) -> str:
    """The column of ``mlflow.search_runs``/``MlflowClient`` tables: ``params.factor.x``."""
    return f"{kind}.{name}"
