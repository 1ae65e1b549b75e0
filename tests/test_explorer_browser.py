"""The GraphQL explorer works in a real browser, offline, with a token from `login`.

Drives Debian's headless Chromium (not a Playwright-downloaded browser) against
the real app under uvicorn: a manager logs in over HTTP, pastes the access
token into GraphiQL's headers editor, runs `{ me { email role } }` with the run
button and sees their own email.  Every request that would leave the machine is
aborted and recorded, and the test fails if the page tried any: the explorer's
assets must all be served by the app itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian chromium not installed (apt-get install chromium); .ci/run installs it",
    ),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

LOGIN = """
mutation Login($e: String!, $p: String!) {
  login(email: $e, password: $p) {
    __typename
    ... on LoginSuccess { accessToken refreshToken }
    ... on AuthError { code message }
  }
}
"""
ME_QUERY = "{ me { email role } }"

# GraphiQL 3.x (CodeMirror 5) selectors, checked against graphiql 3.8.3.
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_TAB = '.graphiql-editor-tools button[data-name="headers"]'
HEADERS_EDITOR = (
    'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror'
)
RUN_BUTTON = ".graphiql-execute-button"
RESPONSE = ".graphiql-response .CodeMirror"


async def _login(base_url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": LOGIN, "variables": {"e": email, "p": password}}
        )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    result = body["data"]["login"]
    assert result["__typename"] == "LoginSuccess", result
    token: str = result["accessToken"]
    return token


async def _replace_editor_text(page: Page, selector: str, text: str) -> None:
    await page.click(f"{selector} .CodeMirror-lines")
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.insert_text(text)
    assert await page.eval_on_selector(selector, "el => el.CodeMirror.getValue()") == text


async def test_manager_runs_me_query_in_offline_explorer(
    live_server, manager_credentials, tmp_path: Path
) -> None:
    from playwright.async_api import ConsoleMessage, Request, Response, Route, async_playwright

    email, password = manager_credentials
    base_url = live_server.url.rstrip("/")
    token = await _login(base_url, email, password)

    external: list[str] = []  # requests for anything off this machine (aborted)
    broken: list[str] = []  # local requests that failed or got an HTTP error
    page_errors: list[str] = []  # uncaught exceptions and console errors

    async def only_loopback(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in {"data", "blob"} or url.hostname in LOOPBACK_HOSTS:
            await route.continue_()
        else:
            external.append(route.request.url)
            await route.abort("blockedbyclient")

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            page_errors.append(f"console: {msg.text}")

    def on_request_failed(request: Request) -> None:
        if request.url not in external:
            broken.append(f"{request.url}: {request.failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            broken.append(f"{response.url}: HTTP {response.status}")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(20_000)
            await page.route("**/*", only_loopback)
            page.on("pageerror", lambda exc: page_errors.append(f"pageerror: {exc}"))
            page.on("console", on_console)
            page.on("requestfailed", on_request_failed)
            page.on("response", on_response)

            try:
                await page.goto(f"{base_url}/graphql", wait_until="load")
                await page.wait_for_selector(QUERY_EDITOR)

                # The headers editor is enabled, and shows where the token goes.
                await page.click(HEADERS_TAB)
                await page.wait_for_selector(HEADERS_EDITOR, state="visible")
                default_headers = await page.eval_on_selector(
                    HEADERS_EDITOR, "el => el.CodeMirror.getValue()"
                )
                assert "Authorization" in default_headers

                # Paste the token and the query the way a person would: focus
                # the editor, select all, insert the text through the keyboard.
                headers = json.dumps({"Authorization": f"Bearer {token}"})
                await _replace_editor_text(page, HEADERS_EDITOR, headers)
                await _replace_editor_text(page, QUERY_EDITOR, ME_QUERY)
                # GraphiQL takes in an edit after a debounce; until then the run
                # button would still send the default query's operation name.
                await page.wait_for_function(
                    """query => {
                        const state = JSON.parse(localStorage.getItem("graphiql:tabState"));
                        const tab = state && state.tabs[state.activeTabIndex];
                        return tab && tab.query === query && !tab.operationName;
                    }""",
                    arg=ME_QUERY,
                )
                await page.click(RUN_BUTTON)
                await page.wait_for_function(
                    """([selector, email]) => {
                        const el = document.querySelector(selector);
                        return el !== null && el.CodeMirror.getValue().includes(email);
                    }""",
                    arg=[RESPONSE, email],
                )
                shown = await page.eval_on_selector(RESPONSE, "el => el.CodeMirror.getValue()")
            except Exception as exc:
                # Say why the page did not work, not just which wait timed out.
                pane = await page.evaluate(
                    "s => document.querySelector(s)?.CodeMirror.getValue() ?? null", RESPONSE
                )
                raise AssertionError(
                    f"explorer flow failed: {exc}\nresponse pane: {pane}\n"
                    f"external requests (aborted): {external}\n"
                    f"failed app requests: {broken}\npage errors: {page_errors}\n"
                    f"screenshot: {tmp_path / 'explorer.png'}"
                ) from exc
            finally:
                await page.screenshot(path=str(tmp_path / "explorer.png"))
        finally:
            await browser.close()

    result = json.loads(shown)
    assert "errors" not in result, result
    assert result["data"]["me"]["email"] == email
    assert "MANAGER" in str(result["data"]["me"]["role"]).upper()
    assert external == [], f"the explorer tried to reach outside the machine: {external}"
    assert broken == [], f"requests to the app failed: {broken}"
    assert page_errors == [], f"the explorer page reported errors: {page_errors}"
