"""MLflow, the record of results: the only module that imports mlflow.

One parent run per study (found again by its tags when a study resumes), one child run
per condition with params, metrics, image files, the grid and a per-image table. Runs
are addressed by id through ``MlflowClient``, so no global "active run" state leaks
between studies or threads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from qeuopt.track.schema import (
    PARENT_TAG,
    RATERS_TAG,
    RATING_IMAGE_PREFIX,
    ROLE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    image_metric,
)

MAX_PARAMS, MAX_METRICS, MAX_PARAM_CHARS = 100, 1000, 6000  # per request / per value
# MLflow 3's UI opens an experiment by its kind: GenAI ("Traces", "No data") unless told
# it is a training-style one; a saved view (a tag the UI's "Save view" writes too) opened
# by `?viewStateShareKey=` gives the runs table its filter, sort and columns.
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
VIEW_TAG = "mlflow.sharedViewState."


class Tracker:
    """Writes a study's runs to one MLflow experiment."""

    def __init__(self, uri: str, experiment: str, artifact_dir: str | Path = "mlartifacts"):
        import mlflow

        from qeuopt.track.store import database_lock, ensure_tracking_db, store_errors, write_ahead_log

        self.uri = uri
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI of the runs created here
        with store_errors(uri, "opening the MLflow tracking store"):
            ensure_tracking_db(uri)
            write_ahead_log(uri)
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
        run = self.client.create_run(self.experiment_id, run_name=study, tags={STUDY_TAG: study, ROLE_TAG: "study"})
        self.log(run.info.run_id, params=params or {})
        return run.info.run_id

    def present_study(self, study: str, factors: Sequence[str], metrics: Sequence[str]) -> str:
        """Make MLflow's UI open this experiment on the study's condition runs: the
        experiment marked training-style, and a saved view listing the condition runs in
        design order with ``metrics`` and the factor levels as columns. Returns the UI path
        (after the server's address) that opens the view."""
        import json

        key = view_key(study)
        state = {
            "searchFilter": f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'condition'",
            "orderByKey": "tags.`mlflow.runName`",
            "orderByAsc": True,
            "runsHiddenMode": "SHOW_ALL",
            "selectedColumns": [*(f"metrics.`{m}`" for m in metrics), *(f"params.`factor.{f}`" for f in factors)],
        }
        now = int(time.time() * 1000)
        envelope = {"name": f"qeuopt: {study}", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        self.client.set_experiment_tag(self.experiment_id, KIND_TAG, TRAINING_KIND)
        self.client.set_experiment_tag(self.experiment_id, VIEW_TAG + key, json.dumps(envelope))
        return f"/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={key}"

    def find_study_run(self, study: str) -> str | None:
        """The parent run of ``study`` if it exists; unlike :meth:`study_run` it creates
        nothing and leaves the run's status alone (analysis reads, it does not resume)."""
        found = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'study'", 1)
        return found[0].info.run_id if found else None

    def delete_study_runs(self, study: str) -> int:
        """Move every run of ``study`` (parent and conditions) to MLflow's trash; returns how many."""
        runs = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}'")
        for run in runs:
            self.client.delete_run(run.info.run_id)
        return len(runs)

    def condition_run(
        self,
        parent_id: str,
        study: str,
        trial_number: int,
        name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float] = (),
        tags: Mapping[str, Any] = (),
    ) -> str:
        """A child run holding ``params``, ``metrics`` and ``tags``: one create, one batch."""
        tags = {
            **dict(tags),
            PARENT_TAG: parent_id,
            STUDY_TAG: study,
            ROLE_TAG: "condition",
            TRIAL_TAG: str(trial_number),
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        self.log(run.info.run_id, params=params, metrics=metrics)
        return run.info.run_id

    def log(
        self,
        run_id: str,
        params: Mapping[str, Any] = (),
        metrics: Mapping[str, float] = (),
        tags: Mapping[str, Any] = (),
        step: int = 0,
    ) -> None:
        """Params, metrics and tags in as few requests as MLflow's limits allow."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in dict(params).items()]
        tags = [RunTag(k, str(v)) for k, v in dict(tags).items()]
        metrics = [Metric(k, float(v), now, step) for k, v in dict(metrics).items()]
        # one request when everything fits (params and tags 100 each, 1000 entries in all)
        for i in range(0, max(len(params), len(tags), 1), MAX_PARAMS):
            batch_p, batch_t = params[i : i + MAX_PARAMS], tags[i : i + MAX_PARAMS]
            room = MAX_METRICS - len(batch_p) - len(batch_t)
            batch_m, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, params=batch_p, tags=batch_t, metrics=batch_m)
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS])

    def log_files(self, run_id: str, files: Sequence[Path], artifact_path: str | None = None) -> None:
        """Files as artifacts (PNGs keep their A1111 metadata). A local artifact store gets
        hard links, so an image is stored once on disk however many places show it; any
        other store (or a link refused across disks) gets a copy through MLflow."""
        target = self._local_artifact_dir(run_id)
        for path in files:
            if target is None or not _link(Path(path), target / (artifact_path or "") / Path(path).name):
                self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def log_chart(self, run_id: str, image) -> None:
        """An image for MLflow's image chart (``images/``; MLflow stores it with a preview)."""
        self.client.log_image(run_id, image, key="grid", step=0, synchronous=True)

    def _local_artifact_dir(self, run_id: str) -> Path | None:
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        parsed = urlparse(uri)
        return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else None

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

    def log_ratings(
        self, run_id: str, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], step: int
    ) -> None:
        """Human ratings of one condition: aggregates as metrics (``step`` is the rating store's
        revision, so the newest value is the one MLflow shows), the raters as a tag, and every
        rating as ``ratings.json``. The metric of an image whose last rating was withdrawn
        (undo) is removed, as is ``rating_mean`` when no rating is left."""
        metrics = {image_metric(RATING_IMAGE_PREFIX, k): v for k, v in summary["per_image"].items()}
        metrics.update(rating_mean=summary["mean"], rating_count=summary["count"], rating_skips=summary["skips"])
        metrics = {k: v for k, v in metrics.items() if v == v}  # NaN: nothing to show
        stale = [k for k in self.client.get_run(run_id).data.metrics if k.startswith("rating_") and k not in metrics]
        self.remove_metrics(run_id, stale)
        self.log(run_id, metrics=metrics, tags={RATERS_TAG: ", ".join(summary["raters"])}, step=step)
        self.client.log_dict(run_id, {"ratings": [dict(r) for r in rows]}, "ratings.json")

    def remove_metrics(self, run_id: str, keys: Sequence[str]) -> None:
        """Delete metrics (every step) from a run. MLflow's client has no call for this, so
        it is done in the SQL store's own session and tables; another store (a remote
        tracking server) cannot delete them, and gets NaN as the newest value instead."""
        if not keys:
            return
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = self.client._tracking_client.store
        if not isinstance(store, SqlAlchemyStore):
            self.log(run_id, metrics={k: float("nan") for k in keys})
            return
        with store.ManagedSessionMaker() as session:
            for table in (SqlMetric, SqlLatestMetric):
                session.query(table).filter(table.run_uuid == run_id, table.key.in_(list(keys))).delete(
                    synchronize_session=False
                )

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
        self._artifact_uris.pop(run_id, None)

    def fail_if_running(self, run_id: str) -> None:
        if self.client.get_run(run_id).info.status == "RUNNING":
            self.finish(run_id, "FAILED")

    def condition_runs(self, study: str):
        """Every condition run of ``study`` as a DataFrame shaped like ``mlflow.search_runs``."""
        import pandas as pd

        runs = self._search(f"tags.`{STUDY_TAG}` = '{_escape(study)}' and tags.`{ROLE_TAG}` = 'condition'")
        rows = [
            {
                "run_id": r.info.run_id,
                "status": r.info.status,
                "start_time": r.info.start_time,
                **{f"params.{k}": v for k, v in r.data.params.items()},
                **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                **{f"tags.{k}": v for k, v in r.data.tags.items()},
            }
            for r in runs
        ]
        return pd.DataFrame(rows)

    def download(self, run_id: str, path: str, dst: str | Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dst)))


def view_key(study: str) -> str:
    """The saved view's id: letters, digits, - and _ only (it travels in a URL)."""
    import re

    return "qeuopt-" + re.sub(r"[^A-Za-z0-9_-]", "-", study)


def _link(source: Path, target: Path) -> bool:
    """Hard-link ``source`` at ``target`` (replacing it); False where links are refused."""
    import os

    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.link")
    try:
        temp.unlink(missing_ok=True)
        os.link(source, temp)
    except OSError:  # another disk, or a file system without hard links
        return False
    os.replace(temp, target)
    return True


def _escape(text: str) -> str:
    return text.replace("'", "\\'")
