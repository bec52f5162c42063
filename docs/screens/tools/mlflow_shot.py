"""Screenshot the MLflow chart view of the ablation runs as a new user reaches it: a fresh browser profile, the
experiment's Training runs page in chart mode, the sweep parent expanded (one click), the charts searched for a metric,
the first chart opened full screen."""
import sys
import tempfile

from playwright.sync_api import sync_playwright

base, out, metric = sys.argv[1], sys.argv[2], sys.argv[3]
with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
    ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True,
                                               viewport={"width": 1600, "height": 1000}, args=["--no-sandbox"])
    page = ctx.new_page()
    page.goto(f"{base}/#/experiments/1/runs?compareRunsMode=CHART")
    page.wait_for_timeout(6000)
    page.screenshot(path=out.replace(".png", "-landing.png"))
    page.locator("button[data-component-id*=runnamecellrenderer]").first.click()
    page.wait_for_timeout(3000)
    page.get_by_placeholder("Search metric charts").fill(metric)
    page.wait_for_timeout(3000)
    page.screenshot(path=out.replace(".png", "-grid.png"))
    full = page.locator("[aria-label*='ull screen'], [aria-label*='xpand'], [data-testid*='fullscreen']")
    print("fullscreen buttons", full.count())
    if full.count():
        full.first.click()
        page.wait_for_timeout(3000)
    page.screenshot(path=out)
    ctx.close()
