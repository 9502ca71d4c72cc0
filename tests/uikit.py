"""Helpers for the browser tests: Debian's Chromium driven by Playwright against a real ``inhouse serve``.

The browser is ``/usr/bin/chromium`` (``.ci/run`` installs it with apt); it is
never downloaded (no ``playwright install``). Without it the browser tests are
skipped, unless ``$INHOUSE_REQUIRE_BROWSER`` is set (CI sets it), when they fail.

Every page is watched: a request to anything but the server under test is
aborted and recorded, and :func:`open_page`'s ``outside`` list must stay empty
(the UI fetches nothing from a CDN, no web fonts, no telemetry). Uncaught
script errors are collected in ``page.errors``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("INHOUSE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
SCREENSHOTS = REPO / "docs" / "screenshots"  # the README's; written when $INHOUSE_UPDATE_SCREENSHOTS is set
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter", "--metrics-recording-only"]


def launch_browser():
    """Yields one headless Chromium; ``conftest.browser`` is the session's (one Playwright per process: a second
    sync Playwright started while the first is alive fails with 'Sync API inside the asyncio loop')."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("INHOUSE_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: install it with apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); set INHOUSE_REQUIRE_BROWSER=1 to fail instead")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("INHOUSE_REQUIRE_BROWSER"):
            raise
        pytest.skip("the playwright package is missing (pip install -r requirements-dev.txt)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def open_page(browser, base_url: str, token: str | None = None, *, width: int = 1360, height: int = 900):
    """A new browser context on ``base_url``, signed in with ``token`` through the sign-in form when given.

    Returns the page; ``page.outside`` lists requests to anywhere else (aborted), ``page.errors`` script errors.
    """
    ctx = browser.new_context(viewport={"width": width, "height": height}, base_url=base_url,
                              accept_downloads=True)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    page.outside, page.errors = [], []

    def gate(route):
        url = route.request.url
        if url.startswith(base_url + "/") or url == base_url or url.startswith(("data:", "blob:")):
            return route.continue_()
        page.outside.append(url)
        return route.abort()

    ctx.route("**/*", gate)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.console = []
    page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}"[:500]))
    OPEN_PAGES.append(page)
    if token is not None:
        sign_in(page, token)
    return page


OPEN_PAGES: list = []  # every page of the running test, for the picture and log kept when it fails


def keep_failure(name: str) -> None:
    """Screenshots, URL, text and console of the pages a failed test left open, under test-artifacts/ui/failed/."""
    out = ARTIFACTS / "failed"
    for i, page in enumerate(OPEN_PAGES):
        try:
            if page.is_closed():
                continue
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out / f"{name}-{i}.png"), full_page=True)
            (out / f"{name}-{i}.txt").write_text(f"{page.url}\n\n{page.locator('body').inner_text(timeout=2000)}\n\n"
                                                 + "\n".join(page.console[-50:]), encoding="utf-8")
        except Exception as e:  # the browser may be gone: keep what we can
            (out / f"{name}-{i}.txt").write_text(f"could not capture: {e}", encoding="utf-8")


def close_pages() -> None:
    for page in OPEN_PAGES:
        try:
            page.context.close()
        except Exception:  # already closed, or the browser is gone
            pass
    OPEN_PAGES.clear()


def sign_in(page, token: str) -> None:
    page.goto("/#/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator(".topbar .user").wait_for()


def shot(page, name: str, *, readme: bool = False) -> Path:
    """A screenshot under test-artifacts/ui/NAME.png (and docs/screenshots/ when asked and enabled)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(150)  # let transitions settle
    page.screenshot(path=str(path), full_page=False)
    if readme and os.environ.get("INHOUSE_UPDATE_SCREENSHOTS"):
        from PIL import (
            Image,  # small PNGs for the repository: 256 colours are plenty for a UI
        )

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            small.save(SCREENSHOTS / f"{name}.png", optimize=True)
    return path


def assert_clean(page) -> None:
    """No request left the server under test, and no script error happened."""
    assert page.outside == [], f"requests to outside the server: {page.outside[:5]}"
    assert page.errors == [], f"script errors in the page: {page.errors[:5]}"
