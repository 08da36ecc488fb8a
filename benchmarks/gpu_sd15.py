"""On a GPU: an SD 1.5-architecture model with random weights, qeuopt against a plain loop.

    python benchmarks/gpu_sd15.py                               # CUDA, fp16, 512x512, 30 steps
    python benchmarks/gpu_sd15.py --arch tiny --device cpu --dtype float32 --size 64 --steps 4

The model is built from diffusers' classes with SD 1.5's shapes (UNet 320-640-1280-1280,
cross-attention 768, VAE 128-256-512-512, CLIP ViT-L/14 text tower) and random weights,
so nothing is downloaded; its images are noise, its cost is SD 1.5's. ``--arch tiny``
shrinks it to test this script on a CPU. Printed, side by side in one run:

1. a plain script (no qeuopt import): one pipeline, one batched call per 2x3 grid;
2. ``qeuopt run`` of an L9 study on the same model folder (whole process);
3. the same study in-process with the generator timed around each grid (CUDA synchronized):
   generator-busy time / wall time, and the GPU utilization nvidia-smi samples meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN_LOOP = r"""
import json, sys, time, torch
from diffusers import StableDiffusionPipeline
job = json.load(open(sys.argv[1]))
pipe = StableDiffusionPipeline.from_pretrained(job["model"], dtype=getattr(torch, job["dtype"]),
                                               safety_checker=None, requires_safety_checker=False).to(job["device"])
pipe.set_progress_bar_config(disable=True)
start = None
for k, prompt in enumerate(job["prompts"]):
    if k == 1:  # the first grid warms kernels up
        torch.cuda.synchronize() if job["device"].startswith("cuda") else None
        start = time.perf_counter()
    gens = [torch.Generator("cpu").manual_seed(1234 + i) for i in range(6)]
    with torch.inference_mode():
        pipe(prompt=prompt, num_images_per_prompt=6, generator=gens, num_inference_steps=job["steps"],
             width=job["size"], height=job["size"], guidance_scale=7.5)
torch.cuda.synchronize() if job["device"].startswith("cuda") else None
print(json.dumps({"steady_images_per_s": 6 * (len(job["prompts"]) - 1) / (time.perf_counter() - start)}))
"""


def build_model(folder: Path, arch: str, dtype: str) -> Path:
    """SD 1.5's architecture (or a tiny one) with random weights, saved as a diffusers folder."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from qeuopt.testing.tiny import SD15_SCHEDULER, resolve_model

    torch.manual_seed(0)
    big = arch == "sd15"
    blocks = (320, 640, 1280, 1280) if big else (32, 64)
    unet = UNet2DConditionModel(
        sample_size=64 if big else 8,
        block_out_channels=blocks,
        layers_per_block=2 if big else 1,
        down_block_types=("CrossAttnDownBlock2D",) * (len(blocks) - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(blocks) - 1),
        cross_attention_dim=768 if big else 32,
        attention_head_dim=8 if big else 2,
    )
    vae_blocks = (128, 256, 512, 512) if big else (32, 64)
    vae = AutoencoderKL(
        block_out_channels=vae_blocks,
        down_block_types=("DownEncoderBlock2D",) * len(vae_blocks),
        up_block_types=("UpDecoderBlock2D",) * len(vae_blocks),
        latent_channels=4,
        layers_per_block=2 if big else 1,
        sample_size=512 if big else 64,
    )
    # the tiny model's tokenizer (built offline); its ids fit any vocabulary at least as large
    tokenizer = CLIPTokenizer.from_pretrained(Path(resolve_model("qeuopt-tiny:sd")) / "tokenizer")
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768 if big else 32,
            intermediate_size=3072 if big else 64,
            num_hidden_layers=12 if big else 2,
            num_attention_heads=12 if big else 2,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(getattr(torch, dtype)).save_pretrained(folder)
    return folder


STYLES = (["Richard Dadd", "Hokusai", "Frank Cho"], ["Rinko Kawauchi", "Todd Hido", "Claude Monet"])


def write_study(folder: Path, model: Path, args) -> Path:
    study = f'''name = "gpu_sd15"
[prompt]
template = "portrait in the style of {{style_a}}, beach in the style of {{style_b}}, high quality"
[factors]
style_a = {json.dumps(STYLES[0])}
style_b = {json.dumps(STYLES[1])}
guidance = [6.0, 7.5, 9.0]
[design]
kind = "L9"
[generation]
model = "{model}"
steps = {args.steps}
width = {args.size}
height = {args.size}
grid = [2, 3]
device = "{args.device}"
dtype = "{args.dtype}"
[scoring]
clip_model = "qeuopt-tiny:clip"
'''
    path = folder / "study.toml"
    path.write_text(study)
    return path


def child(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """Wall and CPU seconds of a whole child process, and its stdout."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{cmd} failed:\n{done.stderr[-3000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, done.stdout


class TimedGenerator:
    """Wraps qeuopt's generator: busy time per grid, the device synchronized."""

    def __init__(self, inner, device: str):
        self.inner, self.device, self.busy, self.grids, self.first = inner, device, [], 0, None
        self.model = inner.model

    def generate_pixels(self, *args, **kwargs):  # what qeuopt's runner calls: 8-bit pixels from the GPU
        return self._timed(self.inner.generate_pixels, *args, **kwargs)

    def generate(self, *args, **kwargs):
        return self._timed(self.inner.generate, *args, **kwargs)

    def _timed(self, make, *args, **kwargs):
        import torch

        start = time.perf_counter()
        self.first = self.first or start
        images = make(*args, **kwargs)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.busy.append(time.perf_counter() - start)
        return images

    def sampler_label(self, scheduler: str) -> str:
        return self.inner.sampler_label(scheduler)


def gpu_sampler(folder: Path):
    """nvidia-smi sampling GPU utilization every 100 ms, or None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = open(folder / "smi.csv", "w")  # noqa: SIM115 - nvidia-smi writes to it until terminated
    return subprocess.Popen(
        ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
        stdout=out,
        stderr=subprocess.DEVNULL,
    )


def in_process(study_file: Path, folder: Path, device: str) -> dict:
    from qeuopt.run.study import Study

    os.chdir(folder)
    study = Study.from_file(study_file)
    generator = TimedGenerator(study.default_generator(), device)
    sampler = gpu_sampler(folder)
    summary = study.run(generator, progress=False)
    end = time.perf_counter()
    if sampler is not None:
        sampler.terminate()
        sampler.wait()
    samples = [int(x) for x in (folder / "smi.csv").read_text().split() if x.isdigit()] if sampler else []
    steady = generator.busy[1:]  # the first grid loads and warms up
    steady_wall = end - (generator.first + generator.busy[0])
    return {
        "busy_fraction": sum(steady) / steady_wall,
        "images_per_s": 6 * len(steady) / steady_wall,
        "gpu_util_mean": sum(samples) / len(samples) if samples else None,
        "grids": summary.ran,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("sd15", "tiny"), default="sd15")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qeuopt-gpu-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    model = build_model(work / "model", args.arch, args.dtype)
    prompts = [
        f"portrait in the style of {a}, beach in the style of {b}, high quality" for a in STYLES[0] for b in STYLES[1]
    ]  # the nine pairs of the study's L9
    job = work / "job.json"
    job.write_text(
        json.dumps(
            {
                "model": str(model),
                "dtype": args.dtype,
                "device": args.device,
                "steps": args.steps,
                "size": args.size,
                "prompts": prompts,
            }
        )
    )
    (work / "plain.py").write_text(PLAIN_LOOP)
    rows = {}
    plain_wall, plain_cpu, out = child([sys.executable, str(work / "plain.py"), str(job)], work, env)
    rows["plain script (generation only)"] = (plain_wall, plain_cpu, json.loads(out.splitlines()[-1]))
    for name in ("run-cli", "run-inproc"):
        (work / name).mkdir()
    study_cli = write_study(work / "run-cli", model, args)
    wall, cpu, _ = child([sys.executable, "-m", "qeuopt", "run", str(study_cli), "--quiet"], work / "run-cli", env)
    rows["qeuopt run (whole process)"] = (wall, cpu, {})
    inproc = in_process(write_study(work / "run-inproc", model, args), work / "run-inproc", args.device)
    print(
        f"SD 1.5 architecture ({args.arch}), random weights, {args.size}x{args.size}, {args.steps} steps, "
        f"2x3 grid, {args.dtype} on {args.device}"
    )
    for name, (wall, cpu, extra) in rows.items():
        print(f"  {name:<34} wall {wall:7.1f} s  CPU {cpu:7.1f} s  {json.dumps(extra)}")
    print(
        f"  qeuopt / plain: wall {rows['qeuopt run (whole process)'][0] / plain_wall:.2f}, "
        f"CPU {rows['qeuopt run (whole process)'][1] / plain_cpu:.2f} (qeuopt also scores, writes and logs)"
    )
    print(
        f"  qeuopt in-process after the first grid: {inproc['images_per_s']:.2f} images/s, generator busy "
        f"{inproc['busy_fraction']:.3f} of the wall time, nvidia-smi mean utilization {inproc['gpu_util_mean']}"
    )
    print(
        f"  plain loop after the first grid: {rows['plain script (generation only)'][2]['steady_images_per_s']:.2f} "
        f"images/s"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
