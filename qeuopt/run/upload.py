"""A finished condition to MLflow: its images, grid, chart and per-image table, then the
run marked FINISHED; and the repair of what a killed process left: a cut-off upload, the
run and folder of a failed trial."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from qeuopt.generate.files import GRID_FILE, condition_images, parse_image_name
from qeuopt.generate.grid import labelled_grid
from qeuopt.run.workers import owner, uploading_elsewhere
from qeuopt.run.writer import finish_pending
from qeuopt.track.schema import CLIP_SCORES_ATTR, FOLDER_TAG, RUN_ID_ATTR

CHART_SIDE = 128  # MLflow previews its image chart at 256 pixels wide: a 3-wide chart needs no more


def save_trial_note(trial, body: str) -> None:
    """A Markdown note on ``trial`` for optuna-dashboard, where it is installed.

    optuna-dashboard keeps trial notes as *study* attributes, and its ``save_note`` reads
    every one of them (twice) to find the next version: a cost per condition that grows
    with the study (135 ms of CPU at the 1000th trial on SQLite; with PostgreSQL every
    read also crosses the network).
    qeuopt writes each trial's note once, so it is version 1, written with the keys and
    chunking of optuna-dashboard's own note module (body first, so a reader never sees a
    version without its text); where that module's layout has changed, its public
    ``save_note`` does the work."""
    try:
        from optuna_dashboard._note import note_ver_key, split_body
    except ImportError:
        try:
            from optuna_dashboard import save_note
        except ImportError:
            return
        save_note(trial, body)
        return
    storage, study_id = trial.storage, trial.study._study_id
    for key, text in split_body(body, trial._trial_id).items():
        storage.set_study_system_attr(study_id, key, text)
    storage.set_study_system_attr(study_id, note_ver_key(trial._trial_id), 1)


def chart_grid(images: Sequence, cols: int, seeds: Sequence[int]):
    """MLflow's image chart of a condition: its images as small tiles in grid order,
    captioned by seed, without the header text (a chart, not the record: grid.png is that)."""
    from PIL import Image

    tiles = [Image.fromarray(i) if not isinstance(i, Image.Image) else i.copy() for i in images]
    for tile in tiles:
        tile.thumbnail((CHART_SIDE, CHART_SIDE))
    return labelled_grid(tiles, -(-len(tiles) // cols), cols, [], [f"seed {s}" for s in seeds])


def files_chart(folder: Path, files: Sequence[Path]):
    """:func:`chart_grid` read back from a condition's folder (a repaired upload)."""
    from PIL import Image

    images = [Image.open(f) for f in files]
    with Image.open(folder / GRID_FILE) as grid:
        cols = max(1, round(grid.width / max(images[0].width, 1)))
    return chart_grid(images, cols, [parse_image_name(f.name)[1] for f in files])


def log_overview(tracker, run_id: str, names: Sequence[str], scores, values, chart) -> None:
    """The image chart and the per-image table: neither needs the condition's files, so
    a writer logs them while its PNGs are being encoded."""
    import pandas as pd

    tracker.log_chart(run_id, chart)
    table = pd.DataFrame(
        {
            "image": list(names),
            "seed": [parse_image_name(name)[1] for name in names],
            "clip_cosine": list(scores),
            **{k: [v] * len(names) for k, v in values.items()},
        }
    )
    tracker.log_table(run_id, table, "images_table.json")


def upload_condition(tracker, run_id: str, folder: Path, scores, values, overview_logged: bool = False) -> None:
    """Images and grid of a condition from its folder, its chart and per-image table
    unless ``overview_logged`` (:func:`log_overview`); then the run is marked FINISHED.
    Safe to repeat: the same artifact paths are replaced."""
    files = condition_images(folder)
    tracker.log_files(run_id, files, "png")
    tracker.log_files(run_id, [folder / GRID_FILE])
    if not overview_logged:
        log_overview(tracker, run_id, [f.name for f in files], scores, values, files_chart(folder, files))
    tracker.finish(run_id)


def finish_cut_off_upload(tracker, trial) -> bool:
    """A trial whose run is still RUNNING was cut off after its metrics were recorded:
    its folder is written from the pending dump if need be, then its artifacts are
    uploaded and the run finished. A finished run is left alone. False when neither the
    folder nor its pending dump is on this machine (written by a worker elsewhere)."""
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    run = tracker.client.get_run(run_id) if run_id else None
    if run is None or run.info.status != "RUNNING":
        return True
    folder = Path(run.data.tags[FOLDER_TAG])
    if not finish_pending(folder):
        return False
    upload_condition(tracker, run_id, folder, trial.user_attrs[CLIP_SCORES_ATTR], trial.params)
    return True


def discard_failed(trial, tracker, folder: Path) -> None:
    """A failed trial leaves nothing half-written: its folder goes, its run is FAILED."""
    shutil.rmtree(folder, ignore_errors=True)
    if trial.user_attrs.get(RUN_ID_ATTR):
        tracker.fail_if_running(trial.user_attrs[RUN_ID_ATTR])


def repair_interrupted(study, tracker, folder_of: Callable[[int], Path]) -> None:
    """Finish what interrupted runs left in the Optuna ``study``: uploads of complete trials
    whose worker is gone are redone from their files; runs and folders (``folder_of(number)``)
    of failed trials are marked FAILED and removed. A live worker's uploads are its own business."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if trial.state == TrialState.FAIL:
            discard_failed(trial, tracker, folder_of(trial.number))
        elif not uploading_elsewhere(trial) and not finish_cut_off_upload(tracker, trial):
            print(
                f"qeuopt: c{trial.number:03d}: its images were written on {owner(trial).get('host')}"
                " and never reached MLflow; its scores stand, its run stays RUNNING until a rerun "
                "there uploads them",
                file=sys.stderr,
            )
