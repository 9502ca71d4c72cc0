"""The web UI's shell on a real ``inhouse serve``: sign-in cookie, CSRF guard, security headers, the browser.

The API half checks the cookie the way a browser would be attacked (no
HttpOnly, no SameSite, a cross-site POST, the public ``/`` opening other
routes); the browser half signs in through the real form in Chromium.
"""

from __future__ import annotations

import pandas as pd
import pytest
from serverkit import Server, create_token
from uikit import assert_clean, open_page, shot


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-shell")
    tokens = {role: create_token(home, f"{role}-user", role) for role in ("admin", "editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def _sign_in(c, token):
    r = c.post("/session", json={"token": token})
    assert r.status_code == 200, r.text
    return r


def test_sign_in_sets_an_httponly_strict_cookie_and_the_cookie_signs_reads(served):
    server, tokens, _ = served
    with server.client() as c:
        r = _sign_in(c, tokens["editor"])
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert r.json() == {"name": "editor-user", "role": "editor", "expires_in": 43200}
        assert c.get("/me").json() == {"name": "editor-user", "role": "editor"}
        assert c.get("/datasets").status_code == 200
        out = c.delete("/session", headers={"X-Inhouse-Client": "t"})
        assert out.status_code == 200 and "inhouse_session=" in out.headers["set-cookie"]
        c.cookies.clear()
        assert c.get("/me").status_code == 401


def test_a_bad_token_is_refused_with_a_fix_and_no_cookie(served):
    server, _, _ = served
    with server.client() as c:
        r = c.post("/session", json={"token": "ih_nope"})
        assert r.status_code == 401 and "set-cookie" not in r.headers
        assert "unknown or revoked" in r.json()["message"] and "inhouse tokens create" in r.json()["fix"]
        assert c.post("/session", json={"token": ""}).status_code == 422
        assert c.post("/session", json={"token": "x", "role": "admin"}).status_code == 422


def test_a_cookie_signed_change_without_the_client_header_is_refused(served):
    """What a form on another site could send with the victim's cookie: refused before the route runs."""
    server, tokens, _ = served
    with server.client() as c:
        _sign_in(c, tokens["admin"])
        r = c.post("/tokens", json={"name": "evil", "role": "admin"})
        assert r.status_code == 403 and "X-Inhouse-Client" in r.json()["message"]
        names = [t["name"] for t in c.get("/tokens").json()["tokens"]]
        assert "evil" not in names
        r = c.post("/tokens", json={"name": "made-by-ui", "role": "viewer"}, headers={"X-Inhouse-Client": "web-ui"})
        assert r.status_code == 201
        assert c.delete("/tokens/made-by-ui", headers={"X-Inhouse-Client": "web-ui"}).status_code == 200


def test_the_cookie_keeps_the_role_of_its_token(served):
    server, tokens, _ = served
    with server.client() as c:
        _sign_in(c, tokens["viewer"])
        r = c.post("/datasets/x/labels", json={"label": "a", "doc_ids": [1]}, headers={"X-Inhouse-Client": "web-ui"})
        assert r.status_code == 403 and "viewer" in r.json()["message"]


def test_the_ui_files_are_public_but_nothing_else_is(served):
    """Regression: a public '/' was matched as a prefix, which opened every route without a token."""
    server, _, _ = served
    with server.client() as c:
        for path in ("/", "/ui/app.js", "/ui/style.css", "/ui/screens/home.js"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"
        for path in ("/me", "/datasets", "/models", "/jobs", "/audit", "/tokens", "/uix", "/ui"):
            assert c.get(path).status_code == 401, path
        for probe in ("/ui/../pyproject.toml", "/ui/..%2f..%2fpyproject.toml", "/ui/%2e%2e/app.py"):
            r = c.get(probe)
            assert r.status_code in (401, 404) and "[project]" not in r.text and "import" not in r.text, probe


@pytest.mark.browser
def test_sign_in_through_the_form_keeps_the_token_out_of_the_url_and_out_of_scripts(served, browser):
    server, tokens, _ = served
    page = open_page(browser, server.url)
    page.goto("/#/datasets")
    page.get_by_label("API token").wait_for()
    assert "#/signin" in page.url
    page.get_by_label("API token").fill("ih_wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="unknown or revoked").wait_for()
    assert "inhouse tokens create" in page.get_by_role("alert").inner_text()
    page.get_by_label("API token").fill(tokens["editor"])
    page.get_by_role("button", name="Sign in").click()
    page.locator(".topbar .user").filter(has_text="editor-user").wait_for()
    assert page.url.endswith("#/datasets")  # back where the user was going
    assert tokens["editor"] not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the token
    page.get_by_text("No datasets yet").wait_for()
    shot(page, "overview-empty")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").wait_for()
    assert page.context.cookies() == [] or all(c["name"] != "inhouse_session" for c in page.context.cookies())
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_explore_and_label_in_the_navigation_lead_to_the_dataset_last_worked_on(served, browser, tmp_path):
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["editor"])
    page.locator("nav a[data-nav=explore]").click()
    page.get_by_text("No datasets yet").wait_for()
    csv = tmp_path / "t.csv"
    csv.write_text("text\nmy card has not arrived\nhow do I reset my pin\n", encoding="utf-8")
    with server.client(tokens["editor"]) as c:
        for name in ("alpha", "beta"):
            with open(csv, "rb") as f:
                r = c.post("/datasets", files={"file": ("t.csv", f, "text/csv")}, data={"dataset": name})
            assert r.status_code == 200, r.text
    page.locator("nav a[data-nav=label]").click()
    page.get_by_role("heading", name="Label: choose a dataset").wait_for()
    page.get_by_role("link", name="beta").click()
    page.wait_for_url("**/#/datasets/beta/label")
    page.locator("nav a[data-nav=explore]").click()
    page.wait_for_url("**/#/datasets/beta")  # the dataset last worked on, not the choice again
    page.locator("main h1").first.wait_for()
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_markup_in_the_data_is_shown_as_text_never_run(served, browser, tmp_path):
    """An attacker's text, label and file name go through every screen as text: no element, no script."""
    server, tokens, _ = served
    evil = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    csv = tmp_path / "x.csv"
    pd.DataFrame({"text": [evil, "an ordinary message about my card"], "label": ["<b>bold</b>", "card"]}).to_csv(csv, index=False)
    with server.client(tokens["editor"]) as c, open(csv, "rb") as f:
        r = c.post("/datasets", files={"file": ('<svg onload=alert(1)>.csv', f, "text/csv")},
                   data={"dataset": "xss", "label_col": "label"})
        assert r.status_code == 200, r.text
        doc = next(d for d in c.get("/datasets/xss/documents").json()["documents"] if d["text"] == evil)
    page = open_page(browser, server.url, tokens["editor"])
    for screen in ("#/datasets/xss", f"#/datasets/xss/docs/{doc['doc_id']}", "#/datasets/xss/label", "#/"):
        page.goto("/" + screen)
        page.locator("main h1").first.wait_for()
        page.locator("main .loading").first.wait_for(state="detached")
        page.wait_for_timeout(200)
        assert page.locator("main img[src=x], main script, main b, main svg[onload]").count() == 0, screen
        assert page.title() == "inhouse", screen
    page.goto(f"/#/datasets/xss/docs/{doc['doc_id']}")
    page.get_by_text(evil).first.wait_for()  # the text itself, shown literally
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_keyboard_g_then_a_letter_goes_to_a_screen_and_question_mark_lists_the_keys(served, browser):
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["viewer"])
    page.locator("main h1").first.wait_for()
    page.keyboard.press("g")
    page.keyboard.press("t")
    page.wait_for_url("**/#/train")
    page.keyboard.press("g")
    page.keyboard.press("j")
    page.wait_for_url("**/#/jobs")
    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name="Keyboard shortcuts")
    keys.wait_for()
    assert "g then d" in keys.inner_text() and "Deploy" in keys.inner_text()
    page.keyboard.press("Escape")
    keys.wait_for(state="detached")
    page.keyboard.press("t")  # no "g" before it: stays
    page.wait_for_timeout(200)
    assert page.url.endswith("#/jobs")
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_a_slow_answer_to_an_old_navigation_does_not_paint_over_the_new_screen(served, browser):
    """Regression: after sign-in the page routed twice, and when the older /me answered last its spinner stayed."""
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["viewer"])
    page.locator("main h1").first.wait_for()
    held = []

    def me(route):
        if not held:
            held.append(route)  # the first navigation's /me: answered only after the second has drawn its screen
        else:
            route.continue_()

    page.route("**/me", me)
    page.evaluate("location.hash = '#/jobs'")
    page.wait_for_timeout(100)
    page.evaluate("location.hash = '#/train'")
    page.locator(".nav a.active", has_text="Train").wait_for()
    page.locator("main .loading").first.wait_for(state="detached")
    held[0].continue_()
    page.wait_for_timeout(500)
    assert page.locator(".nav a.active").inner_text() == "Train"
    assert page.locator("main .loading").count() == 0 and page.url.endswith("#/train")
    assert_clean(page)


@pytest.mark.browser
def test_a_token_revoked_while_its_page_is_open_sends_the_user_to_sign_in_and_back(served, browser):
    server, tokens, home = served
    temp = create_token(home, "temp-user", "editor")
    page = open_page(browser, server.url, temp)
    page.goto("/#/jobs")
    page.locator("main h1", has_text="Jobs").wait_for()
    with server.client(tokens["admin"]) as c:
        assert c.delete("/tokens/temp-user").status_code == 200
    page.wait_for_timeout(2500)  # the server trusts a verified token for 2 s
    page.locator("nav a[data-nav=train]").click()
    page.get_by_label("API token").wait_for()  # the next request was refused: back to sign-in
    assert "#/signin" in page.url
    page.get_by_label("API token").fill(tokens["editor"])
    page.get_by_role("button", name="Sign in").click()
    page.locator(".topbar .user").filter(has_text="editor-user").wait_for()
    page.wait_for_url("**/#/train")  # where the user was going
    assert_clean(page)
