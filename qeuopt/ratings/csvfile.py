"""Ratings as CSV: ``qeuopt ratings export`` writes it, ``import`` reads and checks it."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from qeuopt.errors import RatingError
from qeuopt.ratings.store import SKIP, check_position, check_rater, check_rating

# rating is 1..5 or "skip"; updated_at is ISO 8601
CSV_COLUMNS = ("study", "condition", "image", "rater", "rating", "updated_at")
CHOICE_COLUMNS = ("study", "rater", "left_condition", "right_condition", "choice", "at", "revision")


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


def write_choices_csv(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Pairwise choices as stored (for the record: they cannot be imported back)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CHOICE_COLUMNS)
    count = 0
    for r in rows:
        writer.writerow([r[column] for column in CHOICE_COLUMNS])
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
