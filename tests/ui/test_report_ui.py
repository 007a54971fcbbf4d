"""The report and `dvc plots show`, in a real headless chromium with the network blocked (issue 24's acceptance).

`dvc plots show` used to write a page whose Vega scripts came from a public CDN: 0 SVG elements offline. The
project's template (.dvc/plots/offline.html, `plots.html_template` in .dvc/config) carries them inline. The report
of the session smoke pipeline must say how it was made (hand-run, the commit, the smoke preset) and give every
headline row a verdict. Needs the `ui` extra and the distribution's chromium (skips with the reason otherwise);
screenshots go to the test's tmp dir and are copied to $GINN_UI_SCREENSHOTS, else to outputs/ui/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.stages.report import VERDICTS
from tests.conftest import ROOT
from tests.ui.conftest import CHROMIUM_ARGS, save_screenshot

PLOT_STAGES = ("theory", "mlp_sweep", "lyapunov", "gauge_scan", "ginn_train")  # stages with a `plots:` entry
pytestmark = [pytest.mark.ui, pytest.mark.timeout(900)]


def _offline_page(browser, url: str, screenshot: Path):
    """Open url with every http(s) request refused; return (page, the refused urls)."""
    refused: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            return r.continue_()
        refused.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, refused, errors


def test_dvc_plots_show_renders_offline_and_the_report_shows_provenance_and_verdicts(
    smoke_pipeline, browser_exe, tmp_path
):
    from playwright.sync_api import sync_playwright

    # a checkout of this commit with the smoke outputs in place: `dvc plots show` as a user runs it
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    for stage in PLOT_STAGES:
        shutil.copytree(smoke_pipeline[stage], repo / "outputs" / stage, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("jobs"))  # fmt: skip
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = Path(sys.executable).with_name("dvc")
    p = subprocess.run([str(dvc), "plots", "show", "-o", str(tmp_path / "plots")], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    page_html = (tmp_path / "plots" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page_html  # the offline template, not DVC's CDN page
    n_plots = page_html.count("vegaEmbed(")
    assert n_plots >= len(PLOT_STAGES)

    # the control: DVC's own page (its scripts from a public CDN), which drew nothing offline
    from dvc_render.html import PAGE_HTML

    (tmp_path / "cdn.html").write_text(PAGE_HTML)
    cdn = [str(dvc), "plots", "show", "--html-template", str(tmp_path / "cdn.html"), "-o", str(tmp_path / "cdn_plots")]
    p = subprocess.run(cdn, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "cdn.jsdelivr" in (tmp_path / "cdn_plots" / "index.html").read_text(), p.stderr

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_exe, args=CHROMIUM_ARGS)
        try:
            page, refused, errors = _offline_page(browser, (tmp_path / "plots" / "index.html").as_uri(), tmp_path)
            # vega's renderer output (canvas or svg) carries the class "marks"; vega-embed's menu icon does not
            page.wait_for_function(f"document.querySelectorAll('.vega-embed .marks').length >= {n_plots}",
                                   timeout=60_000)  # fmt: skip
            drawn = page.evaluate(
                "Array.from(document.querySelectorAll('.vega-embed .marks'))"
                ".filter(m => m.tagName === 'svg' ? m.querySelectorAll('path').length > 0 : m.width > 100).length"
            )
            save_screenshot(page, tmp_path / "dvc_plots_offline.png")
            assert drawn == n_plots, (drawn, n_plots, errors)  # every chart drawn, none blank
            assert not errors, errors
            assert not [u for u in refused if "vega" in u], refused  # nothing needed from the network

            page, refused, _ = _offline_page(browser, (tmp_path / "cdn_plots" / "index.html").as_uri(), tmp_path)
            page.wait_for_timeout(3000)
            save_screenshot(page, tmp_path / "dvc_plots_cdn_offline_blank.png")
            assert page.evaluate("document.querySelectorAll('.vega-embed .marks').length") == 0  # the old blank page
            assert any("cdn.jsdelivr" in u for u in refused), refused

            page, refused, errors = _offline_page(browser, (smoke_pipeline["report"] / "report.html").as_uri(),
                                                  tmp_path)  # fmt: skip
            header = page.locator("#provenance")
            assert header.is_visible()
            text = header.inner_text()
            assert "Hand-run" in text and commit[:12] in text and "md5" in text, text
            assert "smoke" in text  # the per-stage preset table
            banner = page.locator("#smoke-banner")
            assert banner.is_visible() and "SMOKE PRESET" in banner.inner_text()
            heads = page.locator("#headline tr").first.locator("th").all_inner_texts()
            assert "z" in heads and "verdict" in heads, heads
            verdicts = page.locator("#headline td.verdict").all_inner_texts()
            assert verdicts and set(verdicts) <= set(VERDICTS), set(verdicts)
            assert page.locator("p.verdicts[data-section]").count() >= 5  # every section says what agreed
            page.locator("#headline").scroll_into_view_if_needed()
            save_screenshot(page, tmp_path / "report_provenance_verdicts.png")
        finally:
            browser.close()
    print(f"ui test: {drawn} charts offline, {len(verdicts)} verdicts; screenshots in {tmp_path}")
