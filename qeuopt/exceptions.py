"""The errors qeuopt raises, in one small tree rooted in :class:`QeuoptError`."""

from __future__ import annotations


class QeuoptError(Exception):
    """Base class of every error qeuopt raises on purpose."""


class StudyError(QeuoptError):
    """A study is invalid. ``problems`` lists every problem found in one pass."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s){where}:\n{lines}")


class UnsafeCheckpointError(QeuoptError):
    """A pickle checkpoint was given without the user allowing pickle loading."""


class ModelLoadError(QeuoptError):
    """A model could not be loaded from the given id or path."""


class NotFittedError(QeuoptError, ValueError, AttributeError):
    """A model was used before ``fit``; compatible with scikit-learn's check."""


class RatingError(QeuoptError, ValueError):
    """A rating or a ratings file row is invalid."""


class DesignError(QeuoptError, ValueError):
    """Factors do not fit the requested design (array too small, too many levels...)."""


class PromptSyntaxError(QeuoptError, ValueError):
    """A prompt uses A1111 syntax that qeuopt cannot run as A1111 would (validation reports it)."""
