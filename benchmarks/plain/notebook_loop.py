"""A notebook loop: the pipeline loaded once, then one call per image, nothing saved.

python notebook_loop.py job.json
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
count = 0
for condition in job["conditions"]:
    for seed in condition["seeds"]:
        with torch.inference_mode():
            image = pipe(
                prompt=condition["prompt"],
                negative_prompt=job["negative"],
                image=init,
                strength=condition["strength"],
                guidance_scale=condition["guidance"],
                num_inference_steps=job["steps"],
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
        count += 1
print(f"{count} images")
