"""The job as a user would script it without qeuopt: one pipeline, batched grids,
sentence-transformers CLIP, PNGs with A1111-style metadata, one MLflow run per condition
with its params, scores and PNGs.

    python user_script.py job.json      # in an empty folder: writes mlflow.db, outputs/
"""

import json
import os
import sys

import mlflow
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sentence_transformers import SentenceTransformer

with open(sys.argv[1]) as file:
    job = json.load(file)
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(job["model"], safety_checker=None)
pipe.set_progress_bar_config(disable=True)
clip = SentenceTransformer(job["clip"])
init = Image.open(job["init_image"]).convert("RGB").resize((job["width"], job["height"]))
mlflow.set_tracking_uri("sqlite:///mlflow.db")
mlflow.set_experiment("plain-user-script")

for number, condition in enumerate(job["conditions"]):
    prompt, seeds = condition["prompt"], condition["seeds"]
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    with torch.inference_mode():
        images = pipe(
            prompt=prompt,
            negative_prompt=job["negative"],
            image=init,
            strength=condition["strength"],
            guidance_scale=condition["guidance"],
            num_inference_steps=job["steps"],
            num_images_per_prompt=len(seeds),
            generator=generators,
        ).images
    scores = clip.encode(images, normalize_embeddings=True) @ clip.encode([prompt], normalize_embeddings=True)[0]
    folder = f"outputs/c{number:03d}"
    os.makedirs(folder, exist_ok=True)
    for k, (image, seed) in enumerate(zip(images, seeds)):
        info = PngInfo()
        info.add_text(
            "parameters",
            f"{prompt}\nNegative prompt: {job['negative']}\nSteps: {job['steps']}, "
            f"CFG scale: {condition['guidance']}, Seed: {seed}, "
            f"Denoising strength: {condition['strength']}",
        )
        image.save(f"{folder}/{k:02d}_seed{seed}.png", pnginfo=info)
    with mlflow.start_run(run_name=f"c{number:03d}"):
        mlflow.log_params({"prompt": prompt, "strength": condition["strength"], "guidance": condition["guidance"]})
        mlflow.log_metrics(
            {"clip_mean": float(scores.mean()), **{f"clip_image_{k:02d}": float(s) for k, s in enumerate(scores)}}
        )
        mlflow.log_artifacts(folder, "png")
print(f"{len(job['conditions'])} runs")
