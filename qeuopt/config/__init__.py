"""The study file: spec dataclasses (``spec``), the vocabulary a study may use
(``schedulers``), and TOML/dict -> spec with every problem reported at once (``load``).
Nothing here imports a heavy library."""
