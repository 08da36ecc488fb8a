"""MLflow, the record of results: the only module that imports mlflow.

One parent run per study (found again by its tags when a study resumes), one child run
per condition with params, metrics, image files, the grid and a per-image table. Runs
are addressed by id through ``MlflowClient``, so no global "active run" state leaks
between studies or threads.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping, Sequence

STUDY_TAG, ROLE_TAG, TRIAL_TAG = "qeuopt.study", "qeuopt.role", "optuna.trial_number"
PARENT_TAG = "mlflow.parentRunId"
RATERS_TAG = "qeuopt.raters"
MAX_PARAMS, MAX_METRICS, MAX_PARAM_CHARS = 100, 1000, 6000  # per request / per value


class Tracker:
    """Writes a study's runs to one MLflow experiment."""

    def __init__(self, uri: str, experiment: str, artifact_dir: str | Path = "mlartifacts"):
        import mlflow

        from qeuopt.track.store import database_lock, ensure_tracking_db, store_errors

        self.uri = uri
        with store_errors(uri, "opening the MLflow tracking store"):
            ensure_tracking_db(uri)
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            # MLflow creates its tables on first use; two first workers on PostgreSQL race there
            with database_lock(uri, "qeuopt.mlflow") if uri.startswith("postgresql") else nullcontext():
                self.experiment_id = self._experiment(experiment, Path(artifact_dir))

    def _experiment(self, name: str, artifact_dir: Path) -> str:
        """Found by name, or created. With a tracking server (http, https) the server owns
        artifact storage (``--artifacts-destination``), so no location is given: every
        machine's uploads then reach it. A local store keeps ``artifact_dir``."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        served = self.uri.split(":", 1)[0] in ("http", "https")
        location = None if served else artifact_dir.resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another worker created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def _search(self, filter_string: str, max_results: int = 50000):
        return self.client.search_runs([self.experiment_id], filter_string, max_results=max_results)

    def study_run(self, study: str, params: Mapping[str, Any] | None = None) -> str:
        """The parent run of ``study``: the existing one on resume, else a new one."""
        found = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'study'", 1)
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=study,
                                     tags={STUDY_TAG: study, ROLE_TAG: "study"})
        self.log(run.info.run_id, params=params or {})
        return run.info.run_id

    def find_study_run(self, study: str) -> str | None:
        """The parent run of ``study`` if it exists; unlike :meth:`study_run` it creates
        nothing and leaves the run's status alone (analysis reads, it does not resume)."""
        found = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'study'", 1)
        return found[0].info.run_id if found else None

    def condition_run(self, parent_id: str, study: str, trial_number: int, name: str,
                      params: Mapping[str, Any]) -> str:
        tags = {PARENT_TAG: parent_id, STUDY_TAG: study, ROLE_TAG: "condition", TRIAL_TAG: str(trial_number)}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.log(run.info.run_id, params=params)
        return run.info.run_id

    def log(self, run_id: str, params: Mapping[str, Any] = (), metrics: Mapping[str, float] = (),
            tags: Mapping[str, Any] = (), step: int = 0) -> None:
        """Params, metrics and tags in as few requests as MLflow's limits allow."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in dict(params).items()]
        tags = [RunTag(k, str(v)) for k, v in dict(tags).items()]
        metrics = [Metric(k, float(v), now, step) for k, v in dict(metrics).items()]
        for i in range(0, max(len(params), len(tags), 1), MAX_PARAMS):
            self.client.log_batch(run_id, params=params[i:i + MAX_PARAMS], tags=tags[i:i + MAX_PARAMS])
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i:i + MAX_METRICS])

    def log_images(self, run_id: str, image_files: Sequence[Path], grid, grid_file: Path) -> None:
        """Image files as artifacts under ``png/`` (A1111 metadata intact) and the grid as an
        MLflow image too (``images/`` is where MLflow keeps its image series)."""
        for path in image_files:
            self.client.log_artifact(run_id, str(path), artifact_path="png")
        self.client.log_artifact(run_id, str(grid_file))
        self.client.log_image(run_id, grid, key="grid", step=0, synchronous=True)

    def log_table(self, run_id: str, frame, artifact_file: str) -> None:
        self.client.log_table(run_id, data=frame, artifact_file=artifact_file)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def artifact_paths(self, run_id: str, folder: str | None = None) -> list[str]:
        """Paths of the artifacts directly under ``folder`` (the run's root by default)."""
        return [a.path for a in self.client.list_artifacts(run_id, folder)]

    def log_ratings(self, run_id: str, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                    step: int) -> None:
        """Human ratings of one condition: aggregates as metrics (``step`` is the rating store's
        revision, so the newest value is the one MLflow shows), the raters as a tag, and every
        rating as ``ratings.json``. An image whose last rating was withdrawn reads NaN."""
        metrics = {f"rating_image_{k:02d}": v for k, v in summary["per_image"].items()}
        stale = [k for k in self.client.get_run(run_id).data.metrics
                 if k.startswith("rating_image_") and k not in metrics]
        metrics.update({k: float("nan") for k in stale})
        metrics.update(rating_mean=summary["mean"], rating_count=summary["count"], rating_skips=summary["skips"])
        self.log(run_id, metrics=metrics, tags={RATERS_TAG: ", ".join(summary["raters"])}, step=step)
        self.client.log_dict(run_id, {"ratings": [dict(r) for r in rows]}, "ratings.json")

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def fail_if_running(self, run_id: str) -> None:
        if self.client.get_run(run_id).info.status == "RUNNING":
            self.finish(run_id, "FAILED")

    def condition_runs(self, study: str):
        """Every condition run of ``study`` as a DataFrame shaped like ``mlflow.search_runs``."""
        import pandas as pd

        runs = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'condition'")
        rows = [{"run_id": r.info.run_id, "status": r.info.status, "start_time": r.info.start_time,
                 **{f"params.{k}": v for k, v in r.data.params.items()},
                 **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                 **{f"tags.{k}": v for k, v in r.data.tags.items()}} for r in runs]
        return pd.DataFrame(rows)

    def download(self, run_id: str, path: str, dst: str | Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dst)))


def _escape(text: str) -> str:
    return text.replace("'", "\\'")
