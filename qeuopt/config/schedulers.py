"""Scheduler names a study may use, as plain data so validation needs no diffusers.

Each name maps to the diffusers class, extra config for it, and the sampler name that
AUTOMATIC1111 writes in its PNG `parameters`, so our images read back there correctly.
"""

from __future__ import annotations

SCHEDULERS: dict[str, tuple[str, dict, str]] = {
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "pndm": ("PNDMScheduler", {}, "PLMS"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}, "DPM++ 2M"),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M Karras"),
    "dpmpp_sde": ("DPMSolverSinglestepScheduler", {}, "DPM++ SDE"),
}

DEFAULT = "default"  # keep the scheduler the model was saved with
SCHEDULER_NAMES = (DEFAULT, *SCHEDULERS)


def a1111_sampler_name(name: str, default_class: str = "") -> str:
    """The A1111 sampler label for a scheduler name (or for the model's own class)."""
    if name in SCHEDULERS:
        return SCHEDULERS[name][2]
    for class_name, _, label in SCHEDULERS.values():
        if class_name == default_class:
            return label
    return default_class or "Default"
