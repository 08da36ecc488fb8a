"""The first hour, as the README tells it: its commands run as written, its settings table
matches the loader, its links resolve, and its screenshots come from here.

The browser tests open the study report and MLflow's UI in headless Chromium (Debian's
chromium and chromedriver; skipped when absent). Set ``QEUOPT_SCREENSHOTS`` to a folder
(``make screenshots`` sets docs/) to keep the screenshots the README shows.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from qeuopt.cli.main import build_parser, main
from qeuopt.config.spec import SECTIONS
from tests.browser import needs_browser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO = ROOT / "qeuopt" / "data"
SHOTS = Path(os.environ["QEUOPT_SCREENSHOTS"]).resolve() if os.environ.get("QEUOPT_SCREENSHOTS") else None


def newcomer_commands() -> list[str]:
    """The code block under the README's `<!-- newcomer -->` mark, comments removed."""
    block = README.split("<!-- newcomer", 1)[1].split("```", 2)[1]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines() if line.split("#", 1)[0].strip()]


def code_lines() -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


# ------------------------------------------------------------------------------ quick
def test_readme_has_one_command_form_and_every_command_exists():
    commands = build_parser()._subparsers._group_actions[0].choices
    lines = code_lines()
    assert not [line for line in lines if line.startswith(".venv/bin/qeuopt")]
    used = {line.split()[1] for line in lines if line.startswith("qeuopt ")}
    assert used <= set(commands), used - set(commands)
    assert {"analyze", "recommend", "report", "ui", "rate"} <= used
    assert "source .venv/bin/activate" in newcomer_commands()


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert "docs/report.png" in local and "docs/mlflow-runs.png" in local
    assert [t for t in local if not (ROOT / t).exists()] == []


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def test_readme_settings_table_lists_every_setting_with_its_default():
    documented = {}
    for names, default in re.findall(r"^\| (`[a-z_.]+`(?:, `[a-z_.]+`)*) \| ([^|]+) \|", README, flags=re.M):
        keys = re.findall(r"`([a-z_.]+)`", names)
        values = (
            [v.strip().strip("`") for v in default.split("`, `")] if len(keys) > 1 else [default.strip().strip("`")]
        )
        documented.update(zip(keys, values))
    for section, cls in SECTIONS.items():
        for field in fields(cls):
            key = f"{section}.{field.name}"
            assert key in documented, f"{key} is missing from the README's settings table"
            if field.default is not MISSING:
                assert documented[key] == _toml(field.default), key
            elif field.default_factory is not MISSING:
                assert documented[key] == _toml(field.default_factory()), key


# ------------------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """A fresh folder where the README's newcomer commands ran, in order, as written."""
    folder = tmp_path_factory.mktemp("newcomer")
    (folder / "demo").mkdir()
    # the demo keeps a study file that is already there: the same demo, smaller and quicker
    text = (DEMO / "demo_tiny_l9.toml").read_text().replace("grid = [2, 3]", "grid = [1, 2]")
    (folder / "demo" / "demo_tiny_l9.toml").write_text(text.replace("steps = 20", "steps = 4"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for line in newcomer_commands():
            if line == "make demo":  # what `make demo` runs once the venv is there
                line = "qeuopt demo"
            words = shlex.split(line)
            if words[0] != "qeuopt" or words[1] in ("ui", "rate"):  # servers: tested below
                continue
            assert main(words[1:]) == 0, line
        yield folder


@pytest.mark.slow
def test_the_newcomer_path_reaches_a_recommendation_and_the_report(newcomer, capsys):
    study = newcomer / "demo" / "demo_tiny_l9.toml"
    report = newcomer / "outputs" / "demo_tiny_l9" / "report.html"
    assert report.is_file() and len(list((newcomer / "outputs" / "demo_tiny_l9").glob("c00*/grid.png"))) == 9
    page = report.read_text()
    for section in (
        "Recommended settings",
        "Best and worst conditions",
        "Design and scores",
        "Response graphs",
        "ANOVA",
        "What to do next",
    ):
        assert f">{section}</h2>" in page
    assert "http" not in page.split("<body>", 1)[1].split("demo_tiny_l9")[0]  # nothing fetched
    assert (study.parent / "demo_tiny_l9_confirm.toml").is_file()  # the report's first next step
    # the end of a run: where things are, and the next commands with this study's path
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(newcomer)
        assert main(["run", "demo/demo_tiny_l9.toml", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 condition(s) generated this run, 9 complete in all" in out
    assert "images: outputs/demo_tiny_l9/c*/" in out and "study report: outputs/demo_tiny_l9/report.html" in out
    for command in ("ui --study", "rate", "analyze", "recommend"):
        assert f"qeuopt {command} demo/demo_tiny_l9.toml" in out


@needs_browser
@pytest.mark.slow
def test_the_report_opens_in_a_browser_with_every_image(newcomer, browser):
    report = newcomer / "outputs" / "demo_tiny_l9" / "report.html"
    browser.set_window_size(1300, 2400)
    browser.get(report.as_uri())
    images = browser.execute_script("return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) == 4  # best grid, worst grid, response graph, SN plot
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []
    headings = [h.text for h in browser.find_elements("css selector", "h2")]
    assert headings[:3] == ["Recommended settings", "Best and worst conditions", "Design and scores"]
    _keep(browser, "report.png")


@needs_browser
@pytest.mark.slow
def test_mlflow_opens_on_the_condition_runs_and_ui_stops_on_sigterm(newcomer, browser):
    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "qeuopt", "ui", "--study", "demo/demo_tiny_l9.toml", "--port", str(port)],
        cwd=newcomer,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = ui.stdout.readline().split()[3]
        assert "workflowType=machine_learning" in url and "viewStateShareKey=qeuopt-demo_tiny_l9" in url
        _wait_until(lambda: _answers(port), 300, "MLflow's server")
        browser.set_window_size(1900, 900)
        browser.get(url)
        body = lambda d: d.find_element("tag name", "body").text  # noqa: E731
        _wait_until(lambda: "c000" in body(browser) and "clip_mean" in body(browser), 120, "the runs")
        _click(browser, "mlflow.assistant.chat_panel.close", "mlflow.experiment_page.shared_view.dismiss")
        text = body(browser)
        assert "Model training" in text and "9 matching runs" in text and "No data" not in text
        names = [text.index(f"c00{k}") for k in range(9)]
        assert names == sorted(names)  # the conditions in design order
        headers = browser.execute_script(
            "return [...document.querySelectorAll('[role=columnheader]')].map(e => e.textContent.trim())"
        )
        assert {
            "clip_mean",
            "clip_std",
            "factor.style_a",
            "factor.style_b",
            "factor.strength",
            "factor.guidance",
        } <= set(headers)
        _keep(browser, "mlflow-runs.png")
    finally:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(60) == 0
    _wait_until(lambda: not _answers(port), 20, "the server to stop")


# ---------------------------------------------------------------------------- helpers
def _keep(browser, name: str) -> None:
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG")
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(png)


def _click(browser, *component_ids: str) -> None:
    """Click MLflow's buttons by their component id: the assistant panel MLflow 3.17 opens
    beside the table, and the shared-view banner, would hide the runs in the screenshot."""
    for component in component_ids:
        for button in browser.find_elements("css selector", f"button[data-component-id='{component}']"):
            button.click()
    time.sleep(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        return True
    except OSError:
        return False


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
