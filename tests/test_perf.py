"""The overlapped condition pipeline, the background catalog and the speed settings."""

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qeuopt.config.load import build_spec
from qeuopt.config.spec import GenerationSettings
from qeuopt.errors import ModelLoadError, StudyError
from qeuopt.generate.diffusion import cpu_threads, place
from qeuopt.generate.grid import read_parameters
from qeuopt.ratings.catalog import Catalog
from qeuopt.run.lanes import LANES, lanes_for
from qeuopt.run.study import Study
from qeuopt.run.writer import Writer
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data


def make_study(**changes) -> Study:
    data = study_data(**changes)
    return Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)


def test_writer_queue_is_bounded_and_blocks_the_producer():
    writer, gate, started = Writer(depth=2, encoders=1), threading.Event(), []

    def job():
        started.append(1)
        gate.wait(5)

    writer.submit(job)
    writer.submit(job)
    waited = []
    blocked = threading.Thread(target=lambda: waited.append(writer.submit(job)))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # two conditions wait already: the third submit holds the generator
    gate.set()
    blocked.join(5)
    writer.close()
    assert len(started) == 3 and waited[0] > 0.2


class WatchedGenerator(FakeGenerator):
    """Counts the lanes inside ``generate`` at once; ``second`` is set when a second grid starts."""

    def __init__(self):
        super().__init__(seconds=0.02)
        self.inside, self.most, self.second = 0, 0, threading.Event()

    def generate(self, *args, **kwargs):
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            if self.calls:
                self.second.set()
            return super().generate(*args, **kwargs)
        finally:
            self.inside -= 1


class ScorerWaitingForTheNextGrid(FakeScorer):
    """The first condition's scoring waits until the generator renders the next grid."""

    def __init__(self, generator: WatchedGenerator):
        super().__init__()
        self.generator, self.overlapped = generator, None

    def score(self, images, text):
        if self.overlapped is None:
            self.overlapped = self.generator.second.wait(20)  # with one lane: never, it times out
        return super().score(images, text)


def test_the_next_grid_renders_while_the_last_is_recorded(workdir):
    generator = WatchedGenerator()
    scorer = ScorerWaitingForTheNextGrid(generator)
    study = make_study()
    assert study.run(generator, scorer, progress=False).ran == 9
    assert scorer.overlapped  # condition 1 was rendering while condition 0 was being scored
    assert generator.most == 1  # one pipeline: never two lanes inside it at once
    trials = study.trials()
    assert trials["state"].eq("COMPLETE").all() and len(trials) == 9  # every row once, none twice
    params = trials.filter(like="params_").astype(str).agg("|".join, axis=1)
    assert params.nunique() == 9


def test_a_generator_on_the_cpu_gets_one_lane():
    class OnDevice:
        def __init__(self, device):
            self.device = device

    assert lanes_for(OnDevice("cuda"), overlap=True) == lanes_for(OnDevice("mps"), overlap=True) == LANES == 2
    assert lanes_for(FakeGenerator(), overlap=True) == 2  # no device said: treated as an accelerator
    assert lanes_for(OnDevice("cpu"), overlap=True) == 1  # a second lane would compete for its cores
    assert lanes_for(OnDevice("cuda"), overlap=False) == 1


def test_writer_failure_surfaces_in_the_generating_thread():
    writer = Writer(depth=1, encoders=1)
    writer.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        writer.close()


def test_files_killed_mid_write_are_finished_on_resume(workdir, monkeypatch):
    """The process dies after a condition's run and pixel dump exist but before its PNGs:
    the resumed study writes the folder from the dump, uploads, and regenerates nothing."""
    import qeuopt.run.condition as condition

    real, calls = condition.write_files, []

    def dies_on_third(job, pixels, encoders=None):
        calls.append(job.folder)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed: nothing of this condition's folder is written
        return real(job, pixels, encoders)

    monkeypatch.setattr(condition, "write_files", dies_on_third)
    study, first = make_study(), FakeGenerator()
    with pytest.raises(KeyboardInterrupt):
        study.run(first, FakeScorer(), progress=False)
    monkeypatch.setattr(condition, "write_files", real)
    lost = Path(calls[2])
    assert not lost.exists() and lost.with_name(lost.name + ".pending").is_dir()

    again = FakeGenerator()
    study.run(again, FakeScorer(), progress=False)
    runs = study.runs()
    assert len(runs) == 9 and set(runs["status"]) == {"FINISHED"}
    assert len(first.calls) + len(again.calls) == 9  # nothing is generated twice
    assert lost.is_dir() and not lost.with_name(lost.name + ".pending").exists()
    pngs = sorted(lost.glob("*_seed*.png"))
    assert len(pngs) == 2 and "Seed: 1235" in read_parameters(pngs[1])
    row = runs[runs["tags.qeuopt.folder"] == str(lost.resolve())].iloc[0]
    expected = FakeGenerator._image(
        row["params.prompt"],
        study.spec.settings_for({"strength": float(row["params.strength"]), "guidance": float(row["params.guidance"])}),
        1234,
    )
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(pngs[0])), np.asarray(expected))


def test_slow_writer_finishes_every_condition_before_run_returns(workdir, monkeypatch):
    import qeuopt.run.condition as condition

    real = condition.write_files

    def slow(job, pixels, encoders=None):
        time.sleep(0.3)  # the writer lags the generator: close() must wait, not drop work
        return real(job, pixels, encoders)

    monkeypatch.setattr(condition, "write_files", slow)
    study = make_study(factors={"style_a": ["a", "b"], "style_b": ["c", "d"]}, design={"kind": "full"})
    summary = study.run(FakeGenerator(), FakeScorer(), progress=False)
    assert summary.total == 4 and summary.timings.wait > 0  # the bounded queue held the generator
    assert set(study.runs()["status"]) == {"FINISHED"}
    assert len(list((workdir / "outputs" / "unit").glob("c00?/grid.png"))) == 4


def test_tracking_database_uses_write_ahead_logging(workdir):
    import sqlite3

    study = make_study()
    study.tracker()
    with sqlite3.connect(workdir / "mlflow.db") as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_optuna_database_stays_in_rollback_journal_mode(workdir):
    """In WAL mode two workers started together on one optuna.db each ran all 9 rows of an
    L9 (tests/test_once.py, every time): a reader's snapshot can be older than the other
    worker's committed queue. The rollback journal makes that reader wait instead."""
    import sqlite3

    make_study().optuna_study()
    with sqlite3.connect(workdir / "optuna.db") as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "delete"


def test_overlapped_and_inline_runs_write_the_same_files(workdir):
    inline = make_study(name="inline", tracking={"overlap_logging": False})
    inline.run(FakeGenerator(), FakeScorer(), progress=False)
    overlapped = make_study(name="overlap")
    overlapped.run(FakeGenerator(), FakeScorer(), progress=False)
    a, b = (
        sorted((workdir / "outputs" / "inline").rglob("*.png")),
        sorted((workdir / "outputs" / "overlap").rglob("*.png")),
    )
    assert [p.relative_to(p.parents[1]) for p in a] == [p.relative_to(p.parents[1]) for p in b] and len(a) == 27
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


class SlowStudy:
    """A study whose MLflow listing can be made to hang, as a busy database would."""

    def __init__(self, folder: Path):
        self.folder, self.rows, self.hang = folder, [], threading.Event()

    def add(self, number: int) -> None:
        folder = self.folder / f"c{number:03d}"
        folder.mkdir()
        (folder / "00_seed7.png").write_bytes(b"png")
        self.rows.append(
            {
                "run_id": f"r{number}",
                "status": "FINISHED",
                "tags.qeuopt.folder": str(folder),
                "tags.optuna.trial_number": str(number),
                "params.prompt": "p",
                "params.factor.a": "x",
            }
        )

    def runs(self):
        if self.hang.is_set():
            time.sleep(2.0)
        return pd.DataFrame(self.rows)


def test_catalog_refreshes_in_the_background_never_in_a_request(tmp_path):
    study = SlowStudy(tmp_path)
    study.add(0)
    catalog = Catalog(study, refresh_s=0.05).start()
    try:
        study.add(1)
        deadline = time.monotonic() + 5
        while 1 not in catalog.known() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert catalog.known() == {0: 1, 1: 1}  # a new condition appears without any request asking
        study.hang.set()  # every refresh now takes 2 s
        time.sleep(0.2)
        start = time.perf_counter()
        for _ in range(50):
            catalog.known(), catalog.entries(), catalog.get(1)
        assert time.perf_counter() - start < 0.5
    finally:
        study.hang.clear()
        catalog.stop()


def test_speed_settings_are_validated():
    with pytest.raises(StudyError) as caught:
        build_spec(study_data(generation={"threads": -2, "offload": "gpu"}))
    text = str(caught.value)
    assert "`generation.threads`" in text and "-2" in text
    assert "`generation.offload`" in text and "none, model, sequential" in text and "'gpu'" in text
    with pytest.raises(StudyError, match="needs|CUDA"):
        build_spec(study_data(generation={"offload": "model", "device": "cpu"}))
    spec = build_spec(study_data(generation={"offload": "sequential", "threads": 3}))
    assert spec.generation.offload == "sequential" and spec.generation.threads == 3
    for bad in (10, -1, True, 1.5, "fast"):
        with pytest.raises(StudyError, match=r"`tracking.png_compression`: (an )?int.*given") as caught:
            build_spec(study_data(tracking={"png_compression": bad}))
        assert repr(bad) in str(caught.value)
    assert build_spec(study_data()).tracking.png_compression == 1
    assert build_spec(study_data(tracking={"png_compression": 9})).tracking.png_compression == 9


def test_png_compression_changes_sizes_not_pixels_or_metadata(workdir):
    from PIL import Image

    folders = {}
    for level in (0, 9):
        study = make_study(name=f"level{level}", tracking={"png_compression": level})
        study.run(FakeGenerator(), FakeScorer(), progress=False)
        folders[level] = sorted((workdir / "outputs" / f"level{level}").rglob("*.png"))
    stored, packed = folders[0], folders[9]
    assert len(stored) == len(packed) == 27
    for a, b in zip(stored, packed):
        assert a.relative_to(a.parents[1]) == b.relative_to(b.parents[1])
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
        assert read_parameters(a) == read_parameters(b) and read_parameters(a)
    grids = [[p for p in found if p.name == "grid.png"] for found in (stored, packed)]
    assert all(a.stat().st_size > 1.2 * b.stat().st_size for a, b in zip(*grids))  # the labelled grid packs


def test_compile_warm_up_is_timed_apart(workdir):
    class SlowFirstGrid(FakeGenerator):
        def generate(self, *args, **kwargs):
            time.sleep(0.3 if not self.calls else 0.0)  # as torch.compile's first call
            return super().generate(*args, **kwargs)

    study = make_study(generation={"compile": True})
    timings = study.run(SlowFirstGrid(), FakeScorer(), progress=False).timings
    assert timings.warmup >= 0.3 and timings.generate < 0.3


def test_thread_count(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(GenerationSettings(threads=3), "cuda") == 3
    assert cpu_threads(GenerationSettings(), "cuda") is None  # GPU runs keep torch's default
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert cpu_threads(GenerationSettings(), "cpu") == 3  # one core left to the writer
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads(GenerationSettings(), "cpu") is None  # the user's choice stands


def test_offload_needs_cuda_and_calls_diffusers():
    calls = []

    class Pipe:
        def to(self, device):
            calls.append(("to", device))
            return self

        def enable_model_cpu_offload(self, device):
            calls.append(("model", device))

        def enable_sequential_cpu_offload(self, device):
            calls.append(("sequential", device))

    with pytest.raises(ModelLoadError, match="`generation.offload`"):
        place(Pipe(), GenerationSettings(offload="model"), "cpu")
    place(Pipe(), GenerationSettings(offload="model"), "cuda")
    place(Pipe(), GenerationSettings(offload="sequential"), "cuda:1")
    place(Pipe(), GenerationSettings(), "cpu")
    assert calls == [("model", "cuda"), ("sequential", "cuda:1"), ("to", "cpu")]


def test_clip_on_pixel_arrays_matches_the_pil_path():
    from PIL import Image

    from qeuopt.score.clip import ClipScorer

    scorer = ClipScorer("qeuopt-tiny:clip")
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    for size in ((96, 64), (512, 512)):
        pixels = np.stack([np.asarray(Image.fromarray(c).resize(size, Image.BICUBIC)) for c in coarse])
        on_array = scorer.score(pixels, "a beach at night")
        on_pil = scorer.score([Image.fromarray(p) for p in pixels], "a beach at night")
        # torch resizes the uint8 pixels in PIL's arithmetic (within a level or two of it)
        assert np.allclose(on_array, on_pil, atol=1e-4), np.abs(on_array - on_pil).max()
        assert not np.allclose(on_array, on_array[0], atol=1e-3)  # the images really differ


def test_clip_resize_follows_pil_on_either_path():
    import torch
    from PIL import Image

    from qeuopt.score.clip import _resize

    rng = np.random.default_rng(2)
    coarse = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    pixels = np.stack([np.asarray(Image.fromarray(c).resize((512, 512), Image.BICUBIC)) for c in coarse])
    pil = np.stack([np.asarray(Image.fromarray(p).resize((224, 224), Image.BICUBIC)) for p in pixels]).astype(int)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    for in_uint8, levels in ((True, 2), (False, 5)):  # the CPU's uint8 path; a GPU's float path
        resized = _resize(x, (224, 224), in_uint8).permute(0, 2, 3, 1).numpy()
        assert np.abs(resized.astype(int) - pil).max() <= levels and np.array_equal(resized, resized.round())


@pytest.mark.slow
def test_243_conditions_keep_the_writer_queue_bounded(workdir, monkeypatch):
    """A 3^5 full factorial: never more than the queue's depth of raw dumps on disk."""
    import qeuopt.run.condition as condition

    seen, real = [], condition.dump_pending

    def counting(job, pixels):
        path = real(job, pixels)
        seen.append(len(list(path.parent.glob("*.pending"))))
        return path

    monkeypatch.setattr(condition, "dump_pending", counting)
    study = make_study(
        name="big",
        factors={
            "style_a": ["a", "b", "c"],
            "style_b": ["d", "e", "f"],
            "strength": [0.35, 0.45, 0.75],
            "guidance": [6.0, 8.0, 10.0],
            "steps": [4, 5, 6],
        },
        design={"kind": "full"},
    )
    assert study.run(FakeGenerator(), FakeScorer(), progress=False).total == 243
    # the writer's two slots, plus each lane's dump waiting for a slot: bounded, not growing
    assert len(seen) == 243 and max(seen) <= 2 + LANES
    assert not list((workdir / "outputs" / "big").glob("*.pending"))
