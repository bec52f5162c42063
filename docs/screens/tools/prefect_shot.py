"""Screenshot the Prefect flow run page (a fresh browser profile) and its artifact."""
import sys
import tempfile

from playwright.sync_api import sync_playwright

url, out = sys.argv[1], sys.argv[2]
with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
    ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True,
                                               viewport={"width": 1600, "height": 1100}, args=["--no-sandbox"])
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_timeout(8000)
    page.screenshot(path=out, full_page=True)
    for tab in ("Task Runs", "Artifacts"):
        loc = page.get_by_role("tab", name=tab)
        if not loc.count():
            loc = page.get_by_text(tab, exact=True)
        print(tab, loc.count())
        if loc.count():
            loc.first.click()
            page.wait_for_timeout(4000)
            page.screenshot(path=out.replace(".png", f"-{tab.lower().replace(' ', '-')}.png"), full_page=True)
    ctx.close()
