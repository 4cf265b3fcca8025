"""``mnv3 serve``'s API documentation page (``/docs``) in a real browser, offline: Swagger UI renders
from files the server itself serves (the ``fastapi-offline`` package), nothing is fetched from a
CDN, and the page stays open (with its assets) when API keys protect the rest. Runs on the model
inside the package, so it needs no ../shared. Skips when chromium is not installed."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright (pip install '.[test]')"
)
expect = sync_api.expect


def _soon(check, seconds: float = 10) -> bool:
    """``check()`` within ``seconds``: stderr is read by a thread, a moment after stdout."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_docs_page_renders_offline_from_the_servers_own_files(browser, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("k" * 32 + "\n")
    with ServerProcess("--api-key-file", keys) as server:
        assert _soon(lambda: f"API documentation {server.url}/docs" in "".join(server.stderr_lines))
        with pytest.raises(urllib.error.HTTPError) as refused:  # the API itself needs the key
            urllib.request.urlopen(server.url + "/v1/model", timeout=30)
        assert refused.value.code == 401
        html = urllib.request.urlopen(server.url + "/docs", timeout=30).read().decode()
        assert "/docs/assets/swagger-ui-bundle.js" in html and "cdn." not in html and "https://" not in html
        with urllib.request.urlopen(server.url + "/docs/assets/swagger-ui.css", timeout=30) as css:  # no key
            assert css.status == 200 and css.headers["content-type"].startswith("text/css")
        page = browser.new_page()
        elsewhere, failed, page_errors = [], [], []
        page.on("request", lambda r: None if r.url.startswith((server.url, "data:")) else elsewhere.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(server.url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("mnv3")
        expect(page.locator(".opblock-summary-path", has_text="/v1/predict")).to_be_visible()
        expect(page.locator(".opblock-summary-path", has_text="/healthz")).to_be_visible()
        assert elsewhere == [] and failed == [] and page_errors == []
        page.close()
