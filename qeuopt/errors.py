"""The errors qeuopt raises, in one small tree rooted in :class:`QeuoptError`.

    QeuoptError
    ├── StudyError           a study file or dict is invalid (every problem at once; exit 2)
    ├── InputError           a bad argument to a function or command (also a ValueError)
    │   ├── DesignError      factors do not fit the requested design
    │   ├── RatingError      a rating or a ratings file row is invalid
    │   └── PromptSyntaxError  A1111 prompt syntax qeuopt cannot run as A1111 would
    ├── NoDataError          nothing to work on yet (no complete condition, no ratings)
    ├── EvaluationError      an evaluator or a run returned something unusable (NaN, inf)
    ├── ModelLoadError       a model could not be loaded
    │   └── UnsafeCheckpointError   a pickle checkpoint without ``allow_pickle``
    ├── StoreError           a database or tracking server failed (URI shown, password masked)
    └── NotFittedError       a model was used before ``fit`` (scikit-learn compatible)

Messages name the field in backticks, what is allowed and what was given.
"""

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


class InputError(QeuoptError, ValueError):
    """An argument is invalid: the message names it, what is allowed and what was given."""


class DesignError(InputError):
    """Factors do not fit the requested design (array too small, too many levels...)."""


class RatingError(InputError):
    """A rating or a ratings file row is invalid."""


class NoDataError(QeuoptError):
    """There is nothing to analyse, rank or export yet (no complete condition, no ratings)."""


class EvaluationError(QeuoptError):
    """An evaluator or a condition produced an unusable value (NaN, infinite, not a number)."""


class ModelLoadError(QeuoptError):
    """A model could not be loaded from the given id or path."""


class UnsafeCheckpointError(ModelLoadError):
    """A pickle checkpoint was given without the user allowing pickle loading."""


class StoreError(QeuoptError):
    """A database or tracking server could not be opened or written."""


def __getattr__(name: str):
    """``NotFittedError`` is built on first use: it must also be scikit-learn's
    ``NotFittedError`` (its estimator checks demand that class), and importing scikit-learn
    here would make ``import qeuopt`` slow."""
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(QeuoptError, SklearnNotFittedError):
        """A model was used before ``fit`` (also a ValueError and an AttributeError)."""

    NotFittedError.__module__ = __name__
    globals()["NotFittedError"] = NotFittedError
    return NotFittedError


class PromptSyntaxError(InputError):
    """A prompt uses A1111 syntax that qeuopt cannot run as A1111 would (validation reports it)."""
