"""Tiny offline models: they load through the real diffusers / sentence-transformers paths."""

import os

# Prove nothing reaches the hub: must be set before huggingface_hub reads its constants.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qeuopt.testing import tiny
from qeuopt.testing import tokenizer as corpus
from qeuopt.testing.sketch import draw_sketch

REPO = Path(__file__).resolve().parents[1]
SEEDS = [11, 12, 13, 14, 15, 16]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run this module's tiny models on one thread, restoring the setting afterwards.

    On a small shared CI box, torch's default threads oversubscribe the cores and the
    tiny pipeline runs 10-25x slower; one thread keeps it well under a second.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("qeuopt-cache")


@pytest.fixture(scope="module")
def sd_pipe(cache):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny.tiny_model_path("sd", cache))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def clip_model(cache):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny.tiny_model_path("clip", cache)))


def demo_prompt(style_a="Hokusai", style_b="Claude Monet"):
    return corpus.PROMPT_TEMPLATE.format(style_a=style_a, style_b=style_b)


def generators():
    import torch

    return [torch.Generator().manual_seed(seed) for seed in SEEDS]


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# ---------------------------------------------------------------- references


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("QEUOPT_CACHE", str(tmp_path))
    assert tiny.cache_dir() == tmp_path
    monkeypatch.delenv("QEUOPT_CACHE")
    assert tiny.cache_dir() == Path.home() / ".cache" / "qeuopt"


def test_refs_resolve_to_built_folders(monkeypatch, cache):
    monkeypatch.setenv("QEUOPT_CACHE", str(cache))
    assert tiny.is_tiny(tiny.TINY_SD) and tiny.is_tiny(tiny.TINY_CLIP)
    assert not tiny.is_tiny("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert tiny.resolve_model("clip-ViT-L-14") == "clip-ViT-L-14"
    resolved = Path(tiny.resolve_model(tiny.TINY_SD))
    assert resolved.parent == cache and (resolved / "model_index.json").is_file()
    assert (Path(tiny.resolve_model(tiny.TINY_CLIP)) / "modules.json").is_file()


def test_unknown_tiny_kind_is_rejected_with_the_allowed_kinds(cache):
    with pytest.raises(ValueError, match="sd"):
        tiny.resolve_model("qeuopt-tiny:sdxl")
    assert not tiny.is_tiny("qeuopt-tiny:sdxl")


# ---------------------------------------------------------------- tokenizer


def test_demo_prompts_stay_well_under_77_tokens(sd_pipe):
    tokenizer = sd_pipe.tokenizer
    longest = max(len(tokenizer(demo_prompt(a, b)).input_ids) for a, b in itertools.permutations(corpus.ARTISTS, 2))
    assert longest <= 50
    assert len(tokenizer(corpus.NEGATIVE_PROMPT).input_ids) <= 20


def test_corpus_words_are_single_tokens_and_other_text_still_tokenizes(sd_pipe):
    tokenizer = sd_pipe.tokenizer
    for artist in corpus.ARTISTS:
        for word in artist.replace("-", " ").split():
            assert tokenizer.tokenize(word) == [word.lower() + "</w>"]
    ids = tokenizer("Zebra über café!").input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]  # byte fallback, never <unk>
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "zebraübercafé!"


def test_sd_and_clip_share_the_tokenizer_files(cache):
    sd_files = tiny.tiny_model_path("sd", cache) / "tokenizer"
    clip_files = tiny.tiny_model_path("clip", cache) / "0_CLIPModel"
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        assert (sd_files / name).read_bytes() == (clip_files / name).read_bytes()


# ---------------------------------------------------------------- generation


def test_txt2img_grid_matches_single_images(sd_pipe):
    kwargs = dict(negative_prompt=corpus.NEGATIVE_PROMPT, height=64, width=64, num_inference_steps=10, output_type="np")
    grid = sd_pipe(demo_prompt(), num_images_per_prompt=6, generator=generators(), **kwargs)
    assert grid.images.shape == (6, 64, 64, 3)
    assert grid.images.std() > 0.01  # noise, not a constant image
    for k in (0, 5):
        single = sd_pipe(demo_prompt(), generator=generators()[k], **kwargs).images[0]
        assert np.abs(grid.images[k] - single).max() < 1e-4


def test_img2img_from_txt2img_components(sd_pipe, tmp_path):
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    img2img = StableDiffusionImg2ImgPipeline(**sd_pipe.components)
    img2img.set_progress_bar_config(disable=True)
    init = Image.open(draw_sketch(tmp_path / "sketch.png", size=(64, 64)))
    out = img2img(
        demo_prompt(), image=init, strength=0.5, num_inference_steps=10, num_images_per_prompt=6, generator=generators()
    )
    assert [image.size for image in out.images] == [(64, 64)] * 6


def test_grid_stays_fast(sd_pipe):
    """Guards the recipe's size: about 0.15-0.5 s here; the bound leaves room for slow CI."""
    sd_pipe(demo_prompt(), height=64, width=64, num_inference_steps=2)  # warm-up
    start = time.perf_counter()
    sd_pipe(demo_prompt(), height=64, width=64, num_inference_steps=10, num_images_per_prompt=6, generator=generators())
    assert time.perf_counter() - start < 10


# ---------------------------------------------------------------- scoring


def test_clip_encodes_images_and_text_to_the_same_space(clip_model):
    from PIL import Image

    images = [Image.new("RGB", (64, 48), (40 * i, 120, 200)) for i in range(3)]
    image_embeddings = clip_model.encode(images)
    text_embeddings = clip_model.encode([demo_prompt(), "a photo of a beach"])
    assert image_embeddings.shape == (3, 16) and text_embeddings.shape == (2, 16)
    assert np.isfinite(clip_model.similarity(image_embeddings, text_embeddings)).all()


def test_clip_truncates_long_prompts_instead_of_failing(clip_model):
    assert clip_model.encode(["beach " * 200]).shape == (1, 16)


# ---------------------------------------------------------------- build


def test_two_builds_are_byte_identical(cache, tmp_path):
    for kind in ("sd", "clip"):
        first = folder_digest(tiny.tiny_model_path(kind, cache))
        assert first == folder_digest(tiny.tiny_model_path(kind, tmp_path))


def test_build_leaves_no_temp_dirs(cache):
    tiny.tiny_model_path("sd", cache)
    tiny.tiny_model_path("clip", cache)
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]


def test_failed_build_leaves_nothing(tmp_path):
    def crash(folder):
        (folder / "half-written.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        tiny._build_atomically(tmp_path / "tiny-sd-v1", crash)
    assert list(tmp_path.iterdir()) == []


def test_losing_a_build_race_uses_the_winners_folder(tmp_path):
    target = tmp_path / "tiny-sd-v1"

    def other_builder_finishes_first(folder):
        (folder / "mine.txt").write_text("mine")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")

    tiny._build_atomically(target, other_builder_finishes_first)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-sd-v1"]
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]


def test_stale_temp_dirs_are_swept_and_live_ones_kept(tmp_path):
    stale, live = tmp_path / ".tiny-sd-v1.tmp-old", tmp_path / ".tiny-sd-v1.tmp-new"
    stale.mkdir()
    live.mkdir()
    os.utime(stale, (time.time() - 7200,) * 2)
    tiny._build_atomically(tmp_path / "tiny-sd-v1", lambda folder: None)
    assert not stale.exists() and live.exists() and (tmp_path / "tiny-sd-v1").is_dir()


@pytest.mark.slow
def test_concurrent_builders_do_not_collide(tmp_path):
    script = "import sys; from qeuopt.testing import tiny; print(tiny.tiny_model_path('sd', sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs == [str(tmp_path / "tiny-sd-v1")] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-sd-v1"]


# ---------------------------------------------------------------- sketch


def test_sketch_is_a_line_drawing_and_the_committed_copy_is_current(tmp_path):
    from PIL import Image

    drawn = Image.open(draw_sketch(tmp_path / "sketch.png"))
    assert drawn.size == (256, 256) and drawn.mode == "RGB"
    pixels = np.asarray(drawn)
    assert 0.02 < (pixels < 128).all(axis=2).mean() < 0.3  # some ink, mostly paper
    committed = np.asarray(Image.open(REPO / "studies" / "sketch.png").convert("RGB"))
    assert np.array_equal(pixels, committed)
