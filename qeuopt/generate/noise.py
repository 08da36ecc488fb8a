"""Keep third-party output to what a user can act on.

Loading a model prints things a qeuopt user can do nothing about: transformers warns
that image processors qeuopt never uses (SigLIP, SigLIP 2) fall back to PIL without
torchvision, huggingface_hub warns about an argument diffusers still passes, and
diffusers/transformers draw loading bars over the study's own progress bar. When a
trial fails for a reason qeuopt reports itself in one line (a model that cannot load),
Optuna would log the whole traceback first. This module silences exactly those, by
message or exception type, and leaves every other warning alone.
"""

from __future__ import annotations

import logging
import os
import warnings

# transformers: "`XImageProcessor` requires torchvision (not installed); falling back ..."
_TORCHVISION_FALLBACK = "requires torchvision (not installed)"
_TRANSFORMERS_IMPORTS = "transformers.utils.import_utils"
_OPTUNA_TRIALS = "optuna.study._optimize"  # where "Trial N failed ..." is logged
_installed = False
_bars_off = False


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class _DropReported(logging.Filter):
    """Optuna's two "Trial N failed ..." records when the error is one qeuopt prints itself:
    the first carries the exception, the second ("failed with value None") names the trial."""

    def __init__(self):
        super().__init__()
        self._follow_up = None

    def filter(self, record: logging.LogRecord) -> bool:
        from qeuopt.errors import ModelLoadError

        message = record.getMessage()
        if self._follow_up and message.startswith(self._follow_up):
            self._follow_up = None
            return False
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ModelLoadError):
            self._follow_up = message.split(" failed ", 1)[0] + " failed with value"
            return False
        return True


def third_party_noise_off(progress_bars: bool = True) -> None:
    """Install the filters once per process and turn off library loading bars.
    ``progress_bars=False``: the filters only, without importing diffusers and transformers
    (~5 s of CPU), for a command that may have nothing to load; the model loaders call this
    again with the bars before they import those libraries anyway."""
    global _installed, _bars_off
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by huggingface_hub on import
    if not _installed:
        _installed = True
        logging.getLogger(_TRANSFORMERS_IMPORTS).addFilter(_DropMessage(_TORCHVISION_FALLBACK))
        logging.getLogger(_OPTUNA_TRIALS).addFilter(_DropReported())
        warnings.filterwarnings(
            "ignore", message=r"The `local_dir_use_symlinks` argument is deprecated", category=UserWarning
        )
    if progress_bars and not _bars_off:
        _bars_off = True
        _progress_bars_off()


def _progress_bars_off() -> None:
    """diffusers' "Loading pipeline components" and the hub's download bars."""
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    disable_progress_bars()
