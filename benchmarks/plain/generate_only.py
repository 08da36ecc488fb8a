"""Plain diffusers, generation only: one pipeline, one batched call per grid, nothing saved.

    python generate_only.py job.json [--gc-tuned] [--job-libraries]

``--gc-tuned``: the garbage-collector settings the ``qeuopt`` command uses (thresholds
raised while it imports and loads, the heap frozen after loading and before exit), written
out here in plain Python, to show what they give a plain script.

``--job-libraries``: also import the libraries the whole job needs and the generation does
not (MLflow, sentence-transformers, Optuna), and use none of them: the floor of any tool
that does the job with those libraries, so the import cost is not counted as the tool's.

No qeuopt import: this is the floor any tool around the pipeline is compared with.
``job.json`` (written by benchmarks/overhead.py) names the model, the init image and
each condition's prompt, strength, guidance and seeds.
"""

import gc
import json
import sys

GC_TUNED = "--gc-tuned" in sys.argv
if GC_TUNED:
    gc.set_threshold(100_000, 50, 1000)

import torch  # noqa: E402 - after the collector is set, as the imports are what it is set for
from diffusers import StableDiffusionImg2ImgPipeline  # noqa: E402
from PIL import Image  # noqa: E402

if "--job-libraries" in sys.argv:
    import mlflow  # noqa: F401
    import optuna  # noqa: F401
    import sentence_transformers  # noqa: F401

with open(sys.argv[1]) as file:
    job = json.load(file)
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(job["model"], safety_checker=None)
pipe.set_progress_bar_config(disable=True)
if GC_TUNED:
    gc.freeze()
    gc.set_threshold(700, 10, 10)
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
if GC_TUNED:
    gc.freeze()
