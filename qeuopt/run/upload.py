"""A finished condition to MLflow: its images, grid, chart and per-image table, then the
run marked FINISHED; and the repair of an upload a killed process cut off."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qeuopt.generate.files import GRID_FILE, condition_images, parse_image_name
from qeuopt.generate.grid import labelled_grid
from qeuopt.run.writer import finish_pending
from qeuopt.track.schema import CLIP_SCORES_ATTR, FOLDER_TAG, RUN_ID_ATTR

CHART_SIDE = 256


def save_trial_note(trial, body: str) -> None:
    """A Markdown note on ``trial`` for optuna-dashboard, where it is installed."""
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(trial, body)


def chart_grid(folder: Path, files: Sequence[Path]):
    """The images of a condition tiled as in its grid.png, without the header text."""
    from PIL import Image

    images = [Image.open(f) for f in files]
    for image in images:  # a chart, not the record (grid.png is that): 256 pixels a side at most
        image.thumbnail((CHART_SIDE, CHART_SIDE))
    with Image.open(folder / GRID_FILE) as grid:
        cols = max(1, round(grid.width / max(Image.open(files[0]).width, 1)))
    rows = -(-len(images) // cols)
    return labelled_grid(images, rows, cols, [], [f"seed {parse_image_name(f.name)[1]}" for f in files])


def upload_condition(tracker, run_id: str, folder: Path, scores, values) -> None:
    """Images, grid and per-image table of a condition, from its folder; then the run is
    marked FINISHED. Safe to repeat: the same artifact paths are replaced."""
    import pandas as pd

    files = condition_images(folder)
    tracker.log_files(run_id, files, "png")
    tracker.log_files(run_id, [folder / GRID_FILE])
    tracker.log_chart(run_id, chart_grid(folder, files))  # MLflow's image chart: small, no header text
    seeds = [parse_image_name(f.name)[1] for f in files]
    table = pd.DataFrame(
        {
            "image": [f.name for f in files],
            "seed": seeds,
            "clip_cosine": list(scores),
            **{k: [v] * len(files) for k, v in values.items()},
        }
    )
    tracker.log_table(run_id, table, "images_table.json")
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
