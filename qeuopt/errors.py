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

Messages name the field in backticks, what is allowed and what was given. Errors from
outside the tree are read through their chain of causes (:func:`causes`):
:func:`failure_message` turns a failing disk or store into the one line the command prints.
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


# the modules whose errors are a failing store, not a bug: one line, not a traceback
STORE_ERRORS = ("sqlite3", "sqlalchemy", "mlflow", "optuna.exceptions", "optuna.storages")


def causes(error: BaseException | None) -> list[BaseException]:
    """``error`` and what it was raised from or during, outermost first (cycles cut)."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def interrupted(error: BaseException) -> bool:
    """Ctrl-C somewhere in the chain (inside Optuna's bookkeeping it surfaces as another error)."""
    return any(isinstance(e, KeyboardInterrupt) for e in causes(error))


def failure_message(error: BaseException) -> str | None:
    """One line for a failure of the machine rather than of qeuopt (a full disk, a read-only
    database, a store that went away), found anywhere in the chain of causes; None otherwise."""
    for seen in causes(error):
        if isinstance(seen, OSError) and (seen.strerror or seen.filename):
            where = f": {seen.filename}" if seen.filename else ""
            return f"{seen.strerror or type(seen).__name__}{where}"
        if type(seen).__module__.startswith(STORE_ERRORS):
            first = (str(seen).strip().splitlines() or [type(seen).__name__])[0][:300]
            return f"a database or tracking store failed ({type(seen).__name__}): {first}"
    return None
