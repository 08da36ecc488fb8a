"""Launch a study through the Python API instead of a study file.

    python experiments/artist_pairs_api.py            # tiny offline models: seconds on a CPU
    python experiments/artist_pairs_api.py --real     # SD 1.5 + clip-ViT-L-14 (a GPU, the hub)

An L9 over two artist slots, strength and guidance (img2img from studies/sketch.png), then the
best settings by Taguchi analysis and the models' top recommendations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import qeuopt

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def build_study(real: bool) -> qeuopt.Study:
    generation = {"mode": "img2img", "init_image": "sketch.png", "grid": [2, 3], "seed": 1234}
    if real:
        generation.update(model="stable-diffusion-v1-5/stable-diffusion-v1-5", steps=30, width=512, height=512)
        scoring = {"clip_model": "clip-ViT-L-14"}
    else:
        generation.update(model="qeuopt-tiny:sd", steps=12, width=64, height=64)
        scoring = {"clip_model": "qeuopt-tiny:clip"}
    return qeuopt.Study(
        "artist_pairs_api" + ("" if real else "_tiny"),
        prompt={
            "template": "portrait in the style of {style_a}, beach in the style of {style_b}, high quality",
            "negative": "low quality, BW, bad anatomy, deformed, signature",
        },
        factors={
            "style_a": ["Tatsunoko Production", "Richard Dadd", "Milton Caniff"],
            "style_b": ["Rinko Kawauchi", "Hokusai", "Stephan Martiniere"],
            "strength": [0.35, 0.45, 0.75],
            "guidance": [6.0, 8.0, 10.0],
        },
        design={"kind": "L9"},
        generation=generation,
        scoring=scoring,
        base_dir=STUDIES,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", action="store_true", help="Stable Diffusion 1.5 and clip-ViT-L-14")
    study = build_study(parser.parse_args().real)
    summary = study.run()
    print(
        f"{summary.total} conditions complete; best mean CLIP cosine {summary.best_value:.4f} "
        f"at {summary.best_condition}"
    )
    analysis = qeuopt.analyze_study(study, confirmation=False)
    print("Taguchi optimum:", analysis.taguchi.optimum)
    from qeuopt.recommend.export import ranked_settings

    ranked, response = ranked_settings(study, top=5)
    print(f"top 5 by predicted {response} (observed = generated in the study):")
    print(ranked.to_string(index=False))
    from qeuopt.recommend.report import write_report

    print("study report (open it in a browser):", write_report(study))


if __name__ == "__main__":
    main()
