"""The real MLflow UI, in a headless chromium, on a fresh smoke sweep (issue 16's acceptance).

A two-job `mlp_sweep` writes into a temp SQLite store; `mlflow server` serves it on loopback; Playwright
opens the experiment's runs list (all runs shown, nested children expanded) and the compare page of the
two child runs. Checked: the run link a job prints opens the UI in Model training mode (not GenAI) and the
experiment is tagged a model-training one; every run name on the page is non-empty and distinct; the compare page's
Metrics table lists the headline metrics (agreement z-scores included); the Sort menu orders the children by
`crossing_z_one_loop` both ways, as their metrics say; the chart view draws one `q_hat` line per child in one chart
(curves by layer, overlaid with no artifact download).

Needs the `ui` extra (`pip install -e ".[ui]"`) and the distribution's chromium (`apt-get install
chromium`): Playwright's own browser download (`playwright install`) is blocked here, so the system
binary is its executable_path (tests/ui/conftest.py). Skips with the reason when either is missing. Screenshots go
to the test's tmp dir and are copied to $GINN_UI_SCREENSHOTS, else to outputs/ui/.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.ui.conftest import CHROMIUM_ARGS, save_screenshot

EXPERIMENT = "mlp_sweep"
HEADLINE = ("crossing_measured", "crossing_measured_se", "crossing_mean_field", "chi_rel_err_median",
            "crossing_z_mean_field", "crossing_z_one_loop")  # fmt: skip
ML = "workflowType=machine_learning"  # the UI's Model training mode (README: "Compare in MLflow")
LINK = re.compile(r"http://127\.0\.0\.1:5000/(#/experiments/\d+/runs/\w+\?workflowType=machine_learning)")
SWEEP_TIMEOUT_S = 150
SERVER_START_TIMEOUT_S = 90
PAGE_TIMEOUT_MS = 30_000

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(store: str) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "TQDM_DISABLE": "1",
        "HYDRA_FULL_ERROR": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (mlflow server forks uvicorn and a job runner)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:  # the leader exited: still end the children it left in its group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _run_names(page, expected: int) -> list[str]:
    """Names in the runs table's Run Name column, once `expected` rows are shown."""
    cells = page.locator('[role="gridcell"][col-id="attributes.`Run Name`"]')
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while cells.count() < expected and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    # the cell also holds the run colour swatch (a hidden label); the name is the link's text. Rows in screen order:
    # the grid moves re-sorted rows on screen and may leave their DOM order as it was
    shown = cells.evaluate_all(
        "cs => cs.map(c => [c.getBoundingClientRect().top, (c.querySelector('a') || c).innerText.trim()])"
    )
    return [name for _, name in sorted(shown, key=lambda t: t[0])]


def _metric_names(page) -> list[str]:
    """Row names of the compare page's Metrics table, scrolling its virtualised grid to the end."""
    section = page.locator('[class*="-collapse-item"]', has=page.get_by_text("Metrics", exact=True)).first
    grid = section.locator('[role="grid"]').first
    grid.locator("a").first.wait_for()
    seen: list[str] = []
    for _ in range(200):  # bounded: 200 scroll steps of one grid height
        for name in grid.locator("a").all_inner_texts():
            if name.strip() and name.strip() not in seen:
                seen.append(name.strip())
        at_end = grid.evaluate(
            "g => { const top = g.scrollTop; g.scrollTop = top + g.clientHeight; return g.scrollTop === top; }"
        )
        if at_end:
            break
        page.wait_for_timeout(100)
    grid.evaluate("g => { g.scrollTop = 0; }")
    return seen


def _close_assistant(page) -> None:
    """MLflow 3.17 opens its Assistant panel on a browser's first visit (a third of the screen): close it, as a
    user does once (the browser remembers)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count() and close.first.is_visible():
        close.first.click()


def _expand(page, parents, expected: int) -> None:
    """Expand every sweep parent of the runs table (its children are nested under it) until `expected` rows show."""
    cells = page.locator('[role="gridcell"][col-id="attributes.`Run Name`"]')
    cells.first.wait_for()
    if cells.count() >= expected:
        return
    for parent_id in parents:
        row = page.locator(f'[role="row"][row-id="{parent_id}"]').first
        row.locator('button[data-component-id*="runnamecellrenderer"]').first.click()


def _sort_by(page, metric: str, ascending: bool) -> None:
    """The runs table's Sort menu, as a user picks a metric in it: search, pick, then the direction."""
    page.get_by_text("Sort:").first.click()
    menu = page.get_by_role("menu")
    menu.locator('input[type="search"]').fill(metric)
    menu.get_by_role("menuitemcheckbox", name=metric, exact=True).click()
    if page.get_by_role("menu").count() == 0:
        page.get_by_text("Sort:").first.click()
    page.get_by_test_id("sort-select-asc" if ascending else "sort-select-desc").click()
    page.keyboard.press("Escape")
    order = "true" if ascending else "false"
    page.wait_for_url(re.compile(rf"orderByKey=metrics\.%60{metric}%60&orderByAsc={order}"))


def _drawn_lines(card) -> int:
    """Lines with data in a chart card's plotly figure (a run without the metric draws none)."""
    return card.evaluate(  # distinct paths: plotly may draw a line twice (its hover layer)
        "c => new Set([...c.querySelectorAll('.scatterlayer .trace path.js-line')]"
        ".map(p => p.getAttribute('d') || '').filter(d => d.length > 10)).size"
    )


def _children_in_order(page, names: set[str], expected: int, want: list[str]) -> list[str]:
    """The children's order in the runs table once the re-sorted rows are in (the table keeps the old rows while
    it fetches): polled until it is `want` or the page timeout passes."""
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    shown: list[str] = []
    while time.monotonic() < deadline:
        try:
            shown = [n for n in _run_names(page, expected) if n in names]
        except Exception:  # noqa: BLE001 - rows replaced while read: read again
            shown = []
        if shown == want:
            break
        page.wait_for_timeout(500)
    return shown


def _listed(name: str, rows: list[str]) -> bool:
    """`name` is a row, possibly under a prefix (`headline/crossing_mean_field`), never a longer key's stem."""
    return any(re.search(rf"(^|[./:\s-]){re.escape(name)}$", r) for r in rows)


def test_runs_list_and_compare_page_in_real_browser(browser_exe: str, tmp_path: Path) -> None:
    import mlflow
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    db = tmp_path / "mlflow.db"
    store = f"sqlite:///{db}"
    env = _env(store)

    # Initialise the fresh store once, before the server and the sweep touch it concurrently (several
    # processes migrating a fresh SQLite store break it), and keep its artifacts in tmp, not the repo.
    client = mlflow.MlflowClient(tracking_uri=store)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "server.log"
    with server_log.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
             "--artifacts-destination", str(tmp_path / "served-artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        sweep = subprocess.run(
            [sys.executable, "-m", "pipeline.mlp_sweep", "-m", "net.width=16,32", "experiment=smoke",
             f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path / 's'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S,
        )  # fmt: skip
        assert sweep.returncode == 0, f"smoke sweep failed:\n{sweep.stdout[-3000:]}\n{sweep.stderr[-3000:]}"
        t_sweep = time.monotonic() - t0

        exp = client.get_experiment_by_name(EXPERIMENT)
        all_runs = client.search_runs([exp.experiment_id])
        children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId")]
        parents = {r.data.tags["mlflow.parentRunId"] for r in children}
        assert len(children) == 2, f"expected 2 child runs, got {[r.info.run_name for r in all_runs]}"

        _wait_until_up(url, server, server_log)
        problems: list[str] = []
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=browser_exe,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1400},
            )
            try:
                ctx.set_default_timeout(PAGE_TIMEOUT_MS)
                page = ctx.new_page()

                # 0. the link a job prints opens its run in Model training mode (not GenAI), the Assistant closed
                links = LINK.findall(sweep.stdout + sweep.stderr)
                if len(links) != len(children):
                    problems.append(f"expected {len(children)} printed run links in Model training mode: {links}")
                page.goto(f"{url}/{links[0] if links else ''}")
                page.get_by_text("Model registry", exact=True).first.wait_for()  # the sidebar of Model training
                _close_assistant(page)
                save_screenshot(page, tmp_path / "mlflow_ui_run_link.png")
                if page.get_by_text("Sessions", exact=True).count():  # a GenAI sidebar entry
                    problems.append("the printed run link opened the UI in GenAI mode")
                if exp.tags.get("mlflow.experimentKind") != "custom_model_development":
                    problems.append(f"experiment tags {exp.tags}: no mlflow.experimentKind=custom_model_development")

                # 1. the experiment's runs list, every parent expanded so its children are listed
                page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs?{ML}")
                _expand(page, parents, len(all_runs))
                names = _run_names(page, expected=len(all_runs))
                save_screenshot(page, tmp_path / "mlflow_ui_runs.png")
                if len(names) != len(all_runs):
                    problems.append(f"runs list shows {names}, the store has {len(all_runs)} runs")
                if not all(names):
                    problems.append(f"empty run name in the runs list: {names}")
                if len(set(names)) != len(names):
                    problems.append(f"run names are not distinct in the MLflow UI: {names}")

                # 2. the compare page of the two children (mlflow 3.x route: /compare-runs?runs=[..]&experiments=[..])
                run_ids = json.dumps([r.info.run_id for r in children], separators=(",", ":"))
                exps = json.dumps([exp.experiment_id], separators=(",", ":"))
                compare = f"{url}/#/compare-runs?runs={run_ids}&experiments={exps}&{ML}"
                page.goto(compare)
                page.get_by_text(re.compile(r"Comparing 2 Runs")).first.wait_for()
                metrics = _metric_names(page)
                page.get_by_text("Metrics", exact=True).first.scroll_into_view_if_needed()
                save_screenshot(page, tmp_path / "mlflow_ui_compare.png")
                missing = [m for m in HEADLINE if not _listed(m, metrics)]
                if missing:
                    problems.append(f"compare page does not list {missing}; its Metrics table: {metrics}")

                # 3. the children sorted by their agreement with one loop, both ways (one of the two orders differs
                # from the default newest-first order, so a sort that did nothing fails)
                z = {r.info.run_name: r.data.metrics.get("crossing_z_one_loop") for r in children}
                if None in z.values():
                    problems.append(f"a child run lacks crossing_z_one_loop: {z}")
                page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs?{ML}")
                for ascending in (True, False):
                    _sort_by(page, "crossing_z_one_loop", ascending)
                    _expand(page, parents, len(all_runs))
                    want = sorted(z, key=lambda n: z[n] if z[n] is not None else math.inf, reverse=not ascending)
                    shown = _children_in_order(page, set(z), len(all_runs), want)
                    if shown != want:
                        problems.append(f"sorted by crossing_z_one_loop ({'asc' if ascending else 'desc'}): {shown}, "
                                        f"want {want} (z = {z})")  # fmt: skip
                save_screenshot(page, tmp_path / "mlflow_ui_sorted_by_z_one_loop.png")

                # 4. the chart view overlays the two children's q_hat curves (step = layer), no artifact download
                page.locator("label", has=page.locator('input[name="runs-view-mode"][value="CHART"]')).click(force=True)
                page.get_by_placeholder("Search metric charts").fill("q_hat")
                card = page.locator('[data-testid="draggable-chart-cards-grid"] > *', has_text="q_hat").first
                card.locator(".js-plotly-plot").first.wait_for()
                page.wait_for_timeout(1000)  # plotly draws after the figure element exists
                save_screenshot(page, tmp_path / "mlflow_ui_q_hat_overlay.png")
                legend = card.inner_text()
                lines = _drawn_lines(card)
                if lines != len(children) or not all(name in legend for name in z):
                    problems.append(f"q_hat chart: {lines} lines, legend {legend!r}: want one per child {list(z)}")
            finally:
                ctx.close()
    finally:
        _stop(server)
    print(f"ui test: sweep {t_sweep:.0f} s, total {time.monotonic() - t0:.0f} s; screenshots in {tmp_path}")
    # both pages are checked before failing, so one broken page does not hide the other
    assert not problems, "\n".join(problems) + f"\n(screenshots: {tmp_path})"
