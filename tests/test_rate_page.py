"""The real rating page in headless Chromium: rate 100 images with the keyboard, reload,
and find the ratings in MLflow.

Needs Debian's Chromium and its driver (``scripts/install-browser.sh`` installs both);
the test is skipped only when /usr/bin/chromium is absent. Set ``QEUOPT_SCREENSHOT`` to a
path (e.g. docs/rate-page.png) to keep the screenshot the test takes.
"""

import os
import time
from pathlib import Path

import pytest

from qeuopt.ratings.server import RatingServer
from tests.browser import needs_browser
from tests.test_ratings_support import L9_GRID, rated_template, study_copy

# resolved now: the test itself runs in a temporary folder
SCREENSHOT = Path(os.environ["QEUOPT_SCREENSHOT"]).resolve() if os.environ.get("QEUOPT_SCREENSHOT") else None

pytestmark = needs_browser


@pytest.fixture
def served(workdir, tmp_path_factory):
    study = study_copy(rated_template(tmp_path_factory.getbasetemp()), workdir, **L9_GRID)
    server = RatingServer(study, port=0).start()
    yield study, server
    server.stop()


def wait_for(driver, check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check(driver)
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(
        f"timed out waiting for {what}; page says: {driver.find_element('id', 'progress').text!r}, "
        f"{driver.find_element('id', 'status').text!r}"
    )


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def keys(driver, *sequence) -> None:
    from selenium.webdriver import ActionChains

    ActionChains(driver).send_keys(*sequence).perform()


def saved(count: int):
    return lambda d: text(d, "progress-text").startswith(f"{count} / 108") and text(d, "saved") == "all saved"


@pytest.mark.slow
def test_rate_100_images_with_the_keyboard_reload_and_find_them_in_mlflow(served, browser):
    from selenium.webdriver import Keys

    study, server = served
    browser.get(server.url)
    wait_for(browser, lambda d: text(d, "study") == "unit" and text(d, "title").startswith("Condition #0"), "page")
    keys(browser, "4")  # a rating key before any name: not typed into the name box
    assert browser.find_element("id", "rater").get_attribute("value") == ""
    assert "press r" in text(browser, "status") and text(browser, "progress-text").startswith("0 / 108")
    keys(browser, "r", "ann", Keys.ENTER)  # r opens the name box, Enter leaves it
    wait_for(browser, saved(0), "the rater")
    assert browser.find_element("id", "rater").get_attribute("value") == "ann"

    typed = [str(1 + (i * 3) % 5) for i in range(100)]
    typed[5] = "s"  # a skip
    start = time.perf_counter()
    keys(browser, "".join(typed))
    typed_in = time.perf_counter() - start
    wait_for(browser, saved(100), "100 ratings saved")
    seconds = time.perf_counter() - start
    keys(browser, "u", "2")  # undo the last rating and rate that image again
    keys(browser, Keys.ARROW_LEFT, Keys.ARROW_LEFT, "5")  # back two images and change a rating
    wait_for(browser, saved(100), "undo and change")
    typed[99], typed[98] = "2", "5"
    print(f"\n100 images rated by keyboard: keys sent in {typed_in:.2f} s, all acknowledged after {seconds:.2f} s")

    browser.refresh()
    wait_for(browser, saved(100), "ratings after the reload")
    assert text(browser, "title").startswith("Condition #8")  # the place is kept in the URL
    badges = [b.text for b in browser.find_elements("css selector", ".cell .badge")]
    assert badges[:5] == ["★ " + typed[96], "★ " + typed[97], "★ 5", "★ 2", ""]
    keys(browser, "f", "p")  # only unrated: every earlier condition is finished, so nowhere to go
    assert text(browser, "title").startswith("Condition #8") and "first condition" in text(browser, "status")
    _screenshot(browser)

    assert server.app.sync.flush(30)
    runs = study.runs().set_index("tags.optuna.trial_number").sort_index()
    expected = [[int(v) for v in typed[12 * c : 12 * c + 12] if v != "s"] for c in range(9)]
    assert runs["metrics.rating_count"].tolist() == [len(e) for e in expected]
    assert runs["metrics.rating_mean"].iloc[:8].tolist() == pytest.approx([sum(e) / len(e) for e in expected[:8]])
    assert runs.loc["0", "metrics.rating_skips"] == 1 and runs.loc["8", "metrics.rating_image_02"] == 5
    assert set(runs["tags.qeuopt.raters"]) == {"ann"}


def _screenshot(browser) -> None:
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG")
    if SCREENSHOT:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(png)
