"""Plain diffusers, generation only: one pipeline, one batched call per grid, nothing saved.

    python generate_only.py job.json

No qeuopt import: this is the floor any tool around the pipeline is compared with.
``job.json`` (written by benchmarks/overhead.py) names the model, the init image and
each condition's prompt, strength, guidance and seeds.
"""

import json
import sys

import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

with open(sys.argv[1]) as file:
    job = json.load(file)
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(job["model"], safety_checker=None)
pipe.set_progress_bar_config(disable=True)
init = Image.open(job["init_image"]).convert("RGB").resize((job["width"], job["height"]))
for condition in job["conditions"]:
    generators = [torch.Generator("cpu").manual_seed(s) for s in condition["seeds"]]
    with torch.inference_mode():
        images = pipe(
            prompt=condition["prompt"],
            negative_prompt=job["negative"],
            image=init,
            strength=condition["strength"],
            guidance_scale=condition["guidance"],
            num_inference_steps=job["steps"],
            num_images_per_prompt=len(generators),
            generator=generators,
        ).images
print(f"{len(job['conditions'])} grids")
