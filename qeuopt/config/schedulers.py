"""Scheduler names a study may use, as plain data so validation needs no diffusers.

Each name maps to the diffusers class, extra config for it, and how AUTOMATIC1111 names
the same setting: from A1111 1.9 on, a sampler (``DPM++ 2M``) and a separate schedule type
(``Karras``); before 1.9, one combined sampler name (``DPM++ 2M Karras``). Our PNGs carry
the 1.9+ pair, so they paste back as the setting we ran. diffusers' default spacing of
sigmas (``linspace``) is nearest to A1111's ``Uniform``; DDIM, PLMS and UniPC take no
schedule type in A1111 (``Automatic``).
"""

from __future__ import annotations

# name: (diffusers class, extra config, A1111 1.9+ sampler, A1111 1.9+ schedule type, A1111 < 1.9 sampler)
SCHEDULERS: dict[str, tuple[str, dict, str, str, str]] = {
    "euler": ("EulerDiscreteScheduler", {}, "Euler", "Uniform", "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a", "Uniform", "Euler a"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun", "Uniform", "Heun"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS", "Uniform", "LMS"),
    "ddim": ("DDIMScheduler", {}, "DDIM", "Automatic", "DDIM"),
    "pndm": ("PNDMScheduler", {}, "PLMS", "Automatic", "PLMS"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC", "Automatic", "UniPC"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}, "DPM++ 2M", "Uniform", "DPM++ 2M"),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True},
        "DPM++ 2M",
        "Karras",
        "DPM++ 2M Karras",
    ),
    "dpmpp_sde": ("DPMSolverSinglestepScheduler", {}, "DPM++ SDE", "Uniform", "DPM++ SDE"),
}

DEFAULT = "default"  # keep the scheduler the model was saved with
SCHEDULER_NAMES = (DEFAULT, *SCHEDULERS)

# A1111 1.9+: the schedule "Automatic" means, for these samplers (else the model's own sigmas)
A1111_AUTOMATIC = {"DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2S a": "Karras"}
A1111_SCHEDULE_TYPES = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)


def scheduler_for_class(class_name: str, config: dict | None = None) -> str | None:
    """Our name for a model's own scheduler (``default``), or None when we have none."""
    config = config or {}
    for name, (cls, extra, *_) in SCHEDULERS.items():
        if (
            cls == class_name
            and all(config.get(k) == v for k, v in extra.items())
            and (extra or not config.get("use_karras_sigmas"))
        ):
            return name
    return None


def a1111_sampler(name: str, default_class: str = "", default_config: dict | None = None) -> tuple[str, str]:
    """(sampler, schedule type) as A1111 1.9+ writes them, for a scheduler name."""
    if name == DEFAULT:
        name = scheduler_for_class(default_class, default_config) or ""
    if name in SCHEDULERS:
        return SCHEDULERS[name][2], SCHEDULERS[name][3]
    return default_class or "Default", "Automatic"


def a1111_sampler_name(name: str, default_class: str = "") -> str:
    """The A1111 sampler label for a scheduler name (or for the model's own class)."""
    return a1111_sampler(name, default_class)[0]


def legacy_sampler_name(name: str) -> str:
    """The one sampler name A1111 before 1.9 takes (schedule included), or ""."""
    return SCHEDULERS[name][4] if name in SCHEDULERS else ""


def _effective(sampler: str, schedule: str) -> str:
    """The sigmas A1111 1.9+ uses: "Automatic" is the sampler's preference, else uniform."""
    return A1111_AUTOMATIC.get(sampler, "Uniform") if schedule == "Automatic" else schedule


def from_a1111(sampler: str, schedule: str = "Automatic") -> str | None:
    """Our scheduler name for what A1111 reads: a 1.9+ pair, or a pre-1.9 combined name
    (A1111's own rule: a trailing schedule label is split off the sampler name)."""
    for label in A1111_SCHEDULE_TYPES[1:]:
        if sampler.endswith(" " + label):
            sampler, schedule = sampler[: -len(label) - 1], label
    wanted = (sampler, _effective(sampler, schedule))
    for name, (_, _, a_sampler, a_schedule, _) in SCHEDULERS.items():
        if (a_sampler, _effective(a_sampler, a_schedule)) == wanted:
            return name
    return None
