"""Generators turn a condition into images: the diffusers backend (``diffusion``), model
references (``models``), text conditioning from the A1111 prompt language through compel
(``conditioning``), PNG metadata in AUTOMATIC1111's format (``infotext``), file names
(``files``), grids (``grid``) and A1111's "prompts from file" lines (``prompts_file``)."""
