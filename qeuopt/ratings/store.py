"""Human ratings: a durable store, per-rater normalization, the combined score, CSV files.

SQLite is the source of truth. A rating is committed (WAL journal, ``synchronous=FULL``)
before the rating server acknowledges it, in the same transaction as an *outbox* row
naming the condition whose MLflow run is now out of date; ``qeuopt.ratings.sync`` copies
the condition's aggregates to MLflow and deletes the outbox row only after MLflow took
them, so a killed server loses nothing it acknowledged and MLflow catches up later.

One row per (study, condition, image, rater): rating again replaces, raters stay apart.
A *skip* is a row whose rating is NULL. Every change is also appended to
``rating_events``, whose counter is the revision that orders MLflow updates.

Normalization: people use the scale differently, so each rater's ratings become z-scores
over everything that rater rated in the study (a rater who gives one value everywhere
says nothing about differences and gets z = 0). ``rating_z`` is a condition's mean z.
The combined score standardizes ``rating_z`` and the CLIP mean across conditions, then
blends them with :data:`WEIGHTS` (rating 0.7, CLIP 0.3): human judgement leads, CLIP
breaks ties. Conditions nobody rated have no combined score (NaN).
"""

from __future__ import annotations

import csv
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from qeuopt.errors import RatingError

SCALE = (1, 5)
SKIP = "skip"
WEIGHTS = {"rating": 0.7, "clip": 0.3}
# The CSV of `qeuopt ratings export/import`: rating is 1..5 or "skip"; updated_at is ISO 8601.
CSV_COLUMNS = ("study", "condition", "image", "rater", "rating", "updated_at")
RATER_RULE = re.compile(r"^\w[\w .@-]{0,63}$")  # no commas: raters are listed comma-joined in a tag

SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    study TEXT NOT NULL, condition INTEGER NOT NULL, image INTEGER NOT NULL, rater TEXT NOT NULL,
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    updated_at TEXT NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (study, condition, image, rater));
CREATE TABLE IF NOT EXISTS rating_events (
    revision INTEGER PRIMARY KEY AUTOINCREMENT, study TEXT NOT NULL, condition INTEGER NOT NULL,
    image INTEGER NOT NULL, rater TEXT NOT NULL, rating INTEGER, action TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mlflow_outbox (
    study TEXT NOT NULL, condition INTEGER NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (study, condition));
"""
UPSERT = """INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (study, condition, image, rater) DO UPDATE SET
    rating = excluded.rating, updated_at = excluded.updated_at, revision = excluded.revision"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def check_rating(value: Any) -> int | None:
    """A rating as stored: an int in the scale, or None for a skip."""
    if value == SKIP:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not SCALE[0] <= value <= SCALE[1]:
        raise RatingError(f"`rating`: an integer {SCALE[0]}..{SCALE[1]} or {SKIP!r} is allowed; given {value!r}")
    return value


def check_rater(name: Any) -> str:
    if not isinstance(name, str) or not RATER_RULE.match(name.strip()):
        raise RatingError(
            "`rater`: a name of 1-64 letters, digits, spaces or . _ - @ (starting with a letter "
            f"or digit) is allowed; given {name!r}"
        )
    return name.strip()


def check_position(condition: Any, image: Any, known: Mapping[int, int]) -> tuple[int, int]:
    """``known`` maps each condition (trial number) to its number of images."""
    if isinstance(condition, bool) or not isinstance(condition, int) or condition not in known:
        allowed = ", ".join(map(str, sorted(known))) or "none yet"
        raise RatingError(f"`condition`: a condition of this study is allowed ({allowed}); given {condition!r}")
    count = known[condition]
    if isinstance(image, bool) or not isinstance(image, int) or not 0 <= image < count:
        raise RatingError(f"`image`: an index 0..{count - 1} of condition {condition} is allowed; given {image!r}")
    return condition, image


class RatingStore:
    """The ratings of every study that shares one SQLite file; safe across threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, one writer at a time in this process
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not only a crash
        self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    @staticmethod
    def _event(db, study, condition, image, rater, rating, action, at) -> int:
        cursor = db.execute(
            "INSERT INTO rating_events (study, condition, image, rater, rating, action, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (study, condition, image, rater, rating, action, at),
        )
        revision = cursor.lastrowid
        db.execute(
            "INSERT INTO mlflow_outbox VALUES (?, ?, ?) ON CONFLICT (study, condition) DO UPDATE SET"
            " revision = excluded.revision",
            (study, condition, revision),
        )
        return revision

    def put(self, study: str, condition: int, image: int, rater: str, rating: int | str) -> int:
        """Store (replace) one rater's rating of one image; returns the revision."""
        value, rater, at = check_rating(rating), check_rater(rater), now_iso()
        with self._transaction() as db:
            revision = self._event(db, study, condition, image, rater, value, "skip" if value is None else "rate", at)
            db.execute(UPSERT, (study, condition, image, rater, value, at, revision))
        return revision

    def remove(self, study: str, condition: int, image: int, rater: str) -> int | None:
        """Forget one rater's rating of one image (undo); returns the revision, None if absent."""
        rater = check_rater(rater)
        key = (study, condition, image, rater)
        with self._transaction() as db:
            gone = db.execute("DELETE FROM ratings WHERE study = ? AND condition = ? AND image = ? AND rater = ?", key)
            if not gone.rowcount:
                return None
            return self._event(db, *key, None, "remove", now_iso())

    def import_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Checked rows in one transaction; a row older than the stored rating loses."""
        count = 0
        with self._transaction() as db:
            for r in rows:
                key = (r["study"], r["condition"], r["image"], r["rater"])
                revision = self._event(db, *key, r["rating"], "import", r["updated_at"])
                count += db.execute(
                    UPSERT + " WHERE excluded.updated_at >= ratings.updated_at",
                    (*key, r["rating"], r["updated_at"], revision),
                ).rowcount
        return count

    def rows(self, study: str, rater: str | None = None, condition: int | None = None) -> list[dict]:
        sql, args = "SELECT * FROM ratings WHERE study = ?", [study]
        for column, value in (("rater", rater), ("condition", condition)):
            if value is not None:
                sql, args = sql + f" AND {column} = ?", args + [value]
        return self._query(sql + " ORDER BY condition, image, rater", tuple(args))

    def frame(self, study: str):
        """The ratings of a study as pandas: one row per (condition, image, rater)."""
        import pandas as pd

        return pd.DataFrame(
            self.rows(study), columns=["study", "condition", "image", "rater", "rating", "updated_at", "revision"]
        )

    def revision(self, study: str) -> int:
        """Grows with every change of the study's ratings (for pollers)."""
        found = self._query("SELECT MAX(revision) AS r FROM rating_events WHERE study = ?", (study,))
        return found[0]["r"] or 0

    def outbox(self, study: str) -> list[tuple[int, int]]:
        return [
            (r["condition"], r["revision"])
            for r in self._query(
                "SELECT condition, revision FROM mlflow_outbox WHERE study = ? ORDER BY revision", (study,)
            )
        ]

    def mark_synced(self, study: str, condition: int, revision: int) -> None:
        """Clear the outbox row unless a newer change arrived while MLflow was written."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM mlflow_outbox WHERE study = ? AND condition = ? AND revision <= ?",
                (study, condition, revision),
            )

    def forget_study(self, study: str) -> None:
        """Remove every rating, event and pending MLflow copy of a study (``run --fresh``)."""
        with self._transaction() as db:
            for table in ("ratings", "rating_events", "mlflow_outbox"):
                db.execute(f"DELETE FROM {table} WHERE study = ?", (study,))  # table names are ours

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def store_for(spec) -> RatingStore:
    """The store named by a study's ``tracking.ratings_db`` (relative to the current folder)."""
    return RatingStore(Path(spec.tracking.ratings_db).resolve())


def ratings_frame(study):
    """The ratings of a :class:`qeuopt.Study` as pandas: one row per (condition, image, rater)."""
    with store_for(study.spec) as store:
        return store.frame(study.name)


def _standardize(series):
    spread = series.std(ddof=0)
    return (series - series.mean()) / spread if spread > 0 else series * 0.0


def normalize_per_rater(frame):
    """Rated rows (skips dropped) with a ``z`` column: the rating as a z-score of its rater."""
    rated = frame.dropna(subset=["rating"]).copy()
    rated["rating"] = rated["rating"].astype(float)
    rated["z"] = rated.groupby("rater")["rating"].transform(_standardize)
    return rated


def condition_scores(frame, clip: Mapping[int, float], weights: Mapping[str, float] = WEIGHTS):
    """One row per condition: rating_mean, rating_count, rating_z, clip_mean, combined.

    ``frame`` is :meth:`RatingStore.frame`; ``clip`` maps condition to its CLIP mean."""
    import pandas as pd

    unknown = set(weights) - set(WEIGHTS)
    if unknown:
        raise RatingError(f"`weights`: keys {', '.join(WEIGHTS)} are allowed; given {sorted(unknown)}")
    rated = normalize_per_rater(frame)
    grouped = rated.groupby("condition")
    scores = pd.DataFrame(
        {
            "rating_mean": grouped["rating"].mean(),
            "rating_count": grouped["rating"].size(),
            "rating_z": grouped["z"].mean(),
        }
    )
    scores = scores.join(pd.Series(clip, name="clip_mean", dtype=float), how="outer")
    scores["rating_count"] = scores["rating_count"].fillna(0).astype(int)
    blend = weights.get("rating", 0.0) * _standardize(scores["rating_z"].dropna()) + weights.get(
        "clip", 0.0
    ) * _standardize(scores["clip_mean"].dropna())
    scores["combined"] = blend.reindex(scores.index)
    scores.index.name = "condition"
    return scores


def write_ratings_csv(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for r in rows:
        writer.writerow(
            [
                r["study"],
                r["condition"],
                r["image"],
                r["rater"],
                SKIP if r["rating"] is None else r["rating"],
                r["updated_at"],
            ]
        )
        count += 1
    return count


def read_csv(source: TextIO, study: str, known: Mapping[int, int]) -> list[dict[str, Any]]:
    """Checked rows of a ratings CSV; every bad row is reported with its line number."""
    reader = csv.DictReader(source)
    missing = [c for c in ("condition", "image", "rater", "rating") if c not in (reader.fieldnames or [])]
    if missing:
        raise RatingError(
            f"ratings CSV: columns {', '.join(CSV_COLUMNS)} are expected (study and updated_at "
            f"optional); missing {', '.join(missing)}"
        )
    rows, problems = [], []
    for row in reader:
        try:
            _check_cells(row, len(reader.fieldnames))
            rows.append(_checked_row(row, study, known))
        except (RatingError, ValueError) as err:
            problems.append(f"line {reader.line_num}: {err}")
    if problems:
        raise RatingError(f"{len(problems)} bad row(s), nothing imported:\n  " + "\n  ".join(problems))
    return rows


def _check_cells(row: Mapping[str | None, Any], columns: int) -> None:
    """csv.DictReader files surplus cells under None and fills missing ones with None."""
    extra, given = row.get(None), sum(v is not None for k, v in row.items() if k is not None)
    if extra is not None or given < columns:
        raise RatingError(f"row: {columns} cells (one per header column) are allowed; given {given + len(extra or [])}")


def _checked_row(row: Mapping[str, str], study: str, known: Mapping[int, int]) -> dict[str, Any]:
    if row.get("study") not in (None, "", study):
        raise RatingError(f"`study`: {study!r} (or empty) is allowed; given {row['study']!r}")
    condition, image = (_integer(row, name) for name in ("condition", "image"))
    check_position(condition, image, known)
    text = (row.get("rating") or "").strip()
    rating = check_rating(int(text) if text.isdigit() else text)
    stamp = (row.get("updated_at") or "").strip()
    try:
        when = datetime.fromisoformat(stamp) if stamp else datetime.now(UTC)
    except ValueError:
        raise RatingError(f"`updated_at`: an ISO 8601 time (or empty) is allowed; given {stamp!r}") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return {
        "study": study,
        "condition": condition,
        "image": image,
        "rater": check_rater(row.get("rater")),
        "rating": rating,
        "updated_at": when.astimezone(UTC).isoformat(timespec="microseconds"),
    }


def _integer(row: Mapping[str, str], name: str) -> int:
    text = (row.get(name) or "").strip()
    if not text.lstrip("-").isdigit():
        raise RatingError(f"`{name}`: an integer is allowed; given {text!r}")
    return int(text)
