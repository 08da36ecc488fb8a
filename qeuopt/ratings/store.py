"""Human ratings: a durable store, per-rater normalization, the combined score.

The database (:mod:`qeuopt.ratings.database`: a SQLite file on one machine, PostgreSQL
for a team) is the source of truth. A rating is committed before the rating server
acknowledges it, in the same transaction as an *outbox* row naming the condition whose MLflow run is now out of date; ``qeuopt.ratings.sync`` copies
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

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qeuopt.errors import RatingError
from qeuopt.ratings.database import Database, spec_ratings_url

SCALE = (1, 5)
SKIP = "skip"
WEIGHTS = {"rating": 0.7, "clip": 0.3}
RATER_RULE = re.compile(r"^\w[\w .@-]{0,63}$")  # no commas: raters are listed comma-joined in a tag

SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    study TEXT NOT NULL, condition INTEGER NOT NULL, image INTEGER NOT NULL, rater TEXT NOT NULL,
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    updated_at TEXT NOT NULL, revision BIGINT NOT NULL,
    PRIMARY KEY (study, condition, image, rater));
CREATE TABLE IF NOT EXISTS rating_events (
    revision {serial}, study TEXT NOT NULL, condition INTEGER NOT NULL,
    image INTEGER NOT NULL, rater TEXT NOT NULL, rating INTEGER, action TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mlflow_outbox (
    study TEXT NOT NULL, condition INTEGER NOT NULL, revision BIGINT NOT NULL,
    PRIMARY KEY (study, condition));
"""
UPSERT = """INSERT INTO ratings VALUES (:study, :condition, :image, :rater, :rating, :at, :revision)
    ON CONFLICT (study, condition, image, rater) DO UPDATE SET
    rating = excluded.rating, updated_at = excluded.updated_at, revision = excluded.revision"""
KEY = "study = :study AND condition = :condition AND image = :image AND rater = :rater"


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
    """The ratings of every study that shares one database (:mod:`qeuopt.ratings.database`:
    a SQLite file or a PostgreSQL URL); safe across threads and processes."""

    SCHEMAS = (SCHEMA,)

    def __init__(self, location: str | Path):
        self.db = Database(location, "".join(self.SCHEMAS))
        self.url = self.db.url

    def _event(self, connection, action: str, key: dict[str, Any], rating: int | None, at: str) -> int:
        row = {**key, "rating": rating, "action": action, "at": at}
        revision = self.db.execute(
            connection,
            "INSERT INTO rating_events (study, condition, image, rater, rating, action, at)"
            " VALUES (:study, :condition, :image, :rater, :rating, :action, :at) RETURNING revision",
            **row,
        ).scalar_one()
        self.db.execute(
            connection,
            "INSERT INTO mlflow_outbox VALUES (:study, :condition, :revision) ON CONFLICT (study, condition)"
            " DO UPDATE SET revision = excluded.revision",
            study=key["study"],
            condition=key["condition"],
            revision=revision,
        )
        return revision

    def put(self, study: str, condition: int, image: int, rater: str, rating: int | str) -> int:
        """Store (replace) one rater's rating of one image; returns the revision."""
        value, at = check_rating(rating), now_iso()
        key = {"study": study, "condition": condition, "image": image, "rater": check_rater(rater)}
        with self.db.transaction() as connection:
            revision = self._event(connection, "skip" if value is None else "rate", key, value, at)
            self.db.execute(connection, UPSERT, **key, rating=value, at=at, revision=revision)
        return revision

    def remove(self, study: str, condition: int, image: int, rater: str) -> int | None:
        """Forget one rater's rating of one image (undo); returns the revision, None if absent."""
        key = {"study": study, "condition": condition, "image": image, "rater": check_rater(rater)}
        with self.db.transaction() as connection:
            if not self.db.execute(connection, f"DELETE FROM ratings WHERE {KEY}", **key).rowcount:
                return None
            return self._event(connection, "remove", key, None, now_iso())

    def import_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Checked rows in one transaction; a row older than the stored rating loses."""
        count = 0
        with self.db.transaction() as connection:
            for r in rows:
                key = {name: r[name] for name in ("study", "condition", "image", "rater")}
                revision = self._event(connection, "import", key, r["rating"], r["updated_at"])
                count += self.db.execute(
                    connection,
                    UPSERT + " WHERE excluded.updated_at >= ratings.updated_at",
                    **key,
                    rating=r["rating"],
                    at=r["updated_at"],
                    revision=revision,
                ).rowcount
        return count

    def rows(self, study: str, rater: str | None = None, condition: int | None = None) -> list[dict]:
        sql, args = "SELECT * FROM ratings WHERE study = :study", {"study": study}
        for column, value in (("rater", rater), ("condition", condition)):
            if value is not None:
                sql, args = sql + f" AND {column} = :{column}", {**args, column: value}  # column names are ours
        return self.db.query(sql + " ORDER BY condition, image, rater", **args)

    def frame(self, study: str):
        """The ratings of a study as pandas: one row per (condition, image, rater)."""
        import pandas as pd

        return pd.DataFrame(
            self.rows(study), columns=["study", "condition", "image", "rater", "rating", "updated_at", "revision"]
        )

    def revision(self, study: str) -> int:
        """Grows with every change of the study's ratings (for pollers)."""
        found = self.db.query("SELECT MAX(revision) AS r FROM rating_events WHERE study = :study", study=study)
        return found[0]["r"] or 0

    def outbox(self, study: str) -> list[tuple[int, int]]:
        found = self.db.query(
            "SELECT condition, revision FROM mlflow_outbox WHERE study = :study ORDER BY revision", study=study
        )
        return [(r["condition"], r["revision"]) for r in found]

    def mark_synced(self, study: str, condition: int, revision: int) -> None:
        """Clear the outbox row unless a newer change arrived while MLflow was written."""
        self._clear_outbox("mlflow_outbox", revision, study=study, condition=condition)

    def _clear_outbox(self, table: str, revision: int, **key: Any) -> None:
        """Delete the outbox row of ``key`` (column -> value) if not newer than ``revision``."""
        where = " AND ".join(f"{column} = :{column}" for column in key)  # table and column names are ours
        with self.db.transaction() as connection:
            sql = f"DELETE FROM {table} WHERE {where} AND revision <= :revision"
            self.db.execute(connection, sql, **key, revision=revision)

    TABLES = ("ratings", "rating_events", "mlflow_outbox")

    def forget_study(self, study: str) -> None:
        """Remove every row of a study from :attr:`TABLES` (``run --fresh``): ratings, events,
        pending MLflow copies, and in a :class:`PreferenceStore` the choices too."""
        with self.db.transaction() as connection:
            for table in self.TABLES:
                self.db.execute(connection, f"DELETE FROM {table} WHERE study = :study", study=study)  # ours

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def store_for(spec) -> RatingStore:
    """The store of a study's ratings (:func:`qeuopt.ratings.database.spec_ratings_url`)."""
    return RatingStore(spec_ratings_url(spec))


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
