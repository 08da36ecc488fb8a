"""Headless Chromium for the page tests (Debian's chromium and chromium-driver, which
``scripts/install-browser.sh`` installs); ``browser`` is a fixture of every test module
through conftest.py."""

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# As root on a closed network Chromium needs all of these, or it hangs on start.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)
needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: run scripts/install-browser.sh"
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert DRIVER.exists(), f"{DRIVER} is missing: run scripts/install-browser.sh"
    profile = tempfile.mkdtemp(prefix="qeuopt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
