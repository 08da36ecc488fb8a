"""The pairwise page in headless Chromium: judge pairs with the arrow keys, undo, reload,
and find every choice in the store, as shown. Skipped when /usr/bin/chromium is absent
(``scripts/install-browser.sh`` installs it)."""

from qeuopt.ratings.preferences import PreferenceStore
from tests.browser import needs_browser
from tests.test_rate_page import keys, served, text, wait_for  # noqa: F401 (a fixture)

pytestmark = needs_browser


def counted(mine: int):
    return lambda d: text(d, "counts").startswith(f"{mine} compared by you") and text(d, "saved") == "all saved"


def shown(driver) -> tuple[int, int]:
    sides = [driver.find_element("id", side).get_attribute("data-condition") for side in ("left", "right")]
    return tuple(int(s) for s in sides) if all(sides) else ()


def test_judge_pairs_with_the_keyboard_undo_and_reload(served, browser):  # noqa: F811 (served: a fixture)
    from selenium.webdriver import Keys

    study, server = served
    browser.get(server.url + "pairs")
    wait_for(browser, lambda d: text(d, "study") == "unit", "page")
    keys(browser, "ann", Keys.ENTER)
    wait_for(browser, counted(0), "the rater")
    judged = []
    for n in range(12):  # the higher condition number wins, every third a tie
        left, right = wait_for(browser, shown, "a pair")
        choice = "tie" if n % 3 == 2 else "left" if left > right else "right"
        keys(browser, {"left": Keys.ARROW_LEFT, "right": Keys.ARROW_RIGHT, "tie": Keys.ARROW_DOWN}[choice])
        judged.append((left, right, choice))
        wait_for(browser, counted(n + 1), f"choice {n + 1} saved")
    assert len({frozenset(p[:2]) for p in judged}) == 12  # no pair twice for one rater
    keys(browser, "u")
    wait_for(browser, counted(11), "undo")
    assert shown(browser) == judged[-1][:2] and "undone" in text(browser, "status")  # the same pair again
    browser.refresh()
    wait_for(browser, counted(11), "the count after a reload")
    assert browser.find_elements("css selector", "#left .tiles img")[0].get_attribute("naturalWidth") == "96"

    store = PreferenceStore(server.app.store.url)
    stored = [(r["left_condition"], r["right_condition"], r["choice"]) for r in store.choices(study.name, "ann")]
    store.close()
    assert stored == judged[:11]
