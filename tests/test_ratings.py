"""The rating store, per-rater normalization, the combined score and the CSV format."""

import io
import threading

import pandas as pd
import pytest

from qeuopt.errors import RatingError
from qeuopt.ratings.csvfile import read_csv, write_ratings_csv
from qeuopt.ratings.store import (
    RatingStore,
    check_position,
    check_rater,
    check_rating,
    condition_scores,
    normalize_per_rater,
)
from qeuopt.ratings.sync import summarize_condition

KNOWN = {0: 2, 1: 2, 2: 2}  # three conditions of two images


@pytest.fixture
def store(tmp_path):
    store = RatingStore(tmp_path / "ratings.db")
    yield store
    store.close()


def test_rating_again_replaces_and_raters_stay_apart(store):
    store.put("s", 0, 1, "ann", 2)
    store.put("s", 0, 1, "ann", 5)
    store.put("s", 0, 1, "bob", 1)
    store.put("s", 0, 0, "bob", "skip")
    rows = {(r["image"], r["rater"]): r["rating"] for r in store.rows("s")}
    assert rows == {(1, "ann"): 5, (1, "bob"): 1, (0, "bob"): None}
    assert [r["rating"] for r in store.rows("s", rater="ann")] == [5]
    summary = summarize_condition(store.rows("s", condition=0))
    assert summary == {"per_image": {1: 3.0}, "mean": 3.0, "count": 2, "skips": 1, "raters": ["ann", "bob"]}
    assert store.rows("other") == []


def test_withdrawing_and_the_outbox(store):
    first = store.put("s", 1, 0, "ann", 4)
    assert store.outbox("s") == [(1, first)]
    second = store.put("s", 1, 1, "ann", 3)
    store.mark_synced("s", 1, first)  # a change arrived after `first` was copied: still pending
    assert store.outbox("s") == [(1, second)]
    assert store.remove("s", 1, 0, "ann") > second
    assert store.remove("s", 1, 0, "ann") is None  # nothing left to withdraw
    assert [r["image"] for r in store.rows("s")] == [1]
    store.mark_synced("s", 1, store.revision("s"))
    assert store.outbox("s") == []


def test_a_committed_rating_is_on_disk_for_another_connection(store, tmp_path):
    store.put("s", 2, 1, "ann", 4)
    other = RatingStore(tmp_path / "ratings.db")  # as a restarted server would open it
    assert [(r["condition"], r["rating"]) for r in other.rows("s")] == [(2, 4)]
    other.close()


def test_threads_share_one_store(store):
    def rate(rater):
        for i in range(30):
            store.put("s", i % 3, i % 2, rater, 1 + i % 5)

    threads = [threading.Thread(target=rate, args=(f"r{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frame = store.frame("s")
    assert len(frame) == 4 * 6 and frame.groupby("rater").size().eq(6).all()
    assert store.revision("s") == 4 * 30


@pytest.mark.parametrize("value", [0, 6, 2.5, "5", True, None, "SKIP"])
def test_bad_ratings_name_the_field(value):
    with pytest.raises(RatingError, match=r"`rating`: an integer 1\.\.5 or 'skip' is allowed; given"):
        check_rating(value)


@pytest.mark.parametrize("name", ["", " ", "a,b", "x" * 65, 3, None, "-lead", "a\nb"])
def test_bad_rater_names(name):
    with pytest.raises(RatingError, match="`rater`"):
        check_rater(name)


def test_positions_are_checked_against_the_study():
    assert check_position(1, 1, KNOWN) == (1, 1)
    with pytest.raises(RatingError, match=r"`condition`: .*\(0, 1, 2\); given 7"):
        check_position(7, 0, KNOWN)
    with pytest.raises(RatingError, match=r"`image`: an index 0\.\.1 of condition 1 is allowed; given 2"):
        check_position(1, 2, KNOWN)
    with pytest.raises(RatingError, match="`condition`"):
        check_position("1", 0, KNOWN)


def _frame(rows):
    return pd.DataFrame(rows, columns=["condition", "image", "rater", "rating"])


def test_per_rater_normalization_removes_how_people_use_the_scale():
    # ann is harsh (1-2), bob is generous (4-5): both prefer condition 1 to condition 0
    frame = _frame(
        [
            (0, 0, "ann", 1),
            (1, 0, "ann", 2),
            (0, 0, "bob", 4),
            (1, 0, "bob", 5),
            (2, 0, "cat", 3),
            (2, 1, "cat", 3),
            (2, 1, "ann", "skip"),
        ]
    )
    frame["rating"] = frame["rating"].replace("skip", None)
    z = normalize_per_rater(frame).set_index(["condition", "rater"])["z"]
    assert z[(0, "ann")] == pytest.approx(z[(0, "bob")]) == pytest.approx(-1.0)
    assert z[(1, "ann")] == pytest.approx(z[(1, "bob")]) == pytest.approx(1.0)
    assert z[(2, "cat")].tolist() == [0.0, 0.0]  # one value everywhere says nothing about differences
    assert len(normalize_per_rater(frame)) == 6  # the skip is not a rating


def test_combined_blends_standardized_rating_and_clip():
    frame = _frame([(0, 0, "ann", 1), (1, 0, "ann", 3), (2, 0, "ann", 5)])
    clip = {0: 0.30, 1: 0.20, 2: 0.25, 3: 0.5}
    scores = condition_scores(frame, clip)
    assert scores.loc[[0, 1, 2], "rating_mean"].tolist() == [1.0, 3.0, 5.0]
    rating_z = pd.Series([-1.0, 0.0, 1.0]) / pd.Series([-1.0, 0.0, 1.0]).std(ddof=0)
    clip_all = pd.Series([0.30, 0.20, 0.25, 0.5])
    clip_z = (clip_all - clip_all.mean()) / clip_all.std(ddof=0)
    expected = 0.7 * rating_z + 0.3 * clip_z[:3]
    assert scores.loc[[0, 1, 2], "combined"].tolist() == pytest.approx(expected.tolist())
    assert pd.isna(scores.at[3, "combined"]) and scores.at[3, "rating_count"] == 0  # nobody rated it
    only_rating = condition_scores(frame, clip, {"rating": 1.0})
    assert only_rating.loc[[0, 1, 2], "combined"].tolist() == pytest.approx(rating_z.tolist())
    with pytest.raises(RatingError, match="`weights`"):
        condition_scores(frame, clip, {"aesthetics": 1.0})


def test_csv_round_trip(store, tmp_path):
    store.put("s", 0, 0, "ann", 4)
    store.put("s", 0, 1, "ann", "skip")
    store.put("s", 2, 1, "bob smith", 1)
    text = io.StringIO()
    assert write_ratings_csv(store.rows("s"), text) == 3
    again = RatingStore(tmp_path / "again.db")
    assert again.import_rows(read_csv(io.StringIO(text.getvalue()), "s", KNOWN)) == 3
    columns = ["condition", "image", "rater", "rating", "updated_at"]
    assert again.frame("s")[columns].equals(store.frame("s")[columns])
    again.close()


def test_import_keeps_the_newer_rating(store):
    store.put("s", 0, 0, "ann", 4)
    old = "condition,image,rater,rating,updated_at\n0,0,ann,1,2001-01-01T00:00:00\n0,1,ann,2,\n"
    assert store.import_rows(read_csv(io.StringIO(old), "s", KNOWN)) == 1
    assert {r["image"]: r["rating"] for r in store.rows("s")} == {0: 4, 1: 2}


def test_bad_csv_rows_are_rejected_with_their_line_numbers():
    text = (
        "study,condition,image,rater,rating,updated_at\n"
        "s,0,0,ann,4,\n"
        "s,9,0,ann,4,\n"
        "s,0,5,ann,4,\n"
        "s,0,0,ann,six,\n"
        "other,0,0,ann,4,\n"
        "s,0,0,,4,\n"
        "s,0,0,ann,4,yesterday\n"
        "s,x,0,ann,4,\n"
    )
    with pytest.raises(RatingError) as err:
        read_csv(io.StringIO(text), "s", KNOWN)
    message = str(err.value)
    assert message.startswith("7 bad row(s), nothing imported")
    for line, field in [
        (3, "condition"),
        (4, "image"),
        (5, "rating"),
        (6, "study"),
        (7, "rater"),
        (8, "updated_at"),
        (9, "condition"),
    ]:
        assert f"line {line}: `{field}`" in message
    assert "line 2:" not in message
    with pytest.raises(RatingError, match="missing rating"):
        read_csv(io.StringIO("condition,image,rater\n0,0,ann\n"), "s", KNOWN)
