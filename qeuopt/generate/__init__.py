"""Generators turn a condition into images: the diffusers backend (``diffusion``), model
references (``models``), PNG metadata in AUTOMATIC1111's format and grids (``grid``)."""
