"""``mnv3 serve --api-key-file``'s web page in a real browser (Debian's chromium driven by Playwright):
the page asks for the key when the server answers 401, sends it, and classifies; a wrong key is
asked again. Skips when chromium is not installed.
"""

from __future__ import annotations

import pytest

from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (.[test])")
expect = sync_api.expect
KEY = "browser-test-key-0123456789"


def test_the_page_asks_for_the_key_and_then_classifies(browser, bundled_weights, cat_photo, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    with ServerProcess("--weights", bundled_weights, "--api-key-file", keys) as server:
        page = browser.new_page()
        answers = iter(["wrong-key-but-long-enough", KEY])
        prompts: list[str] = []

        def answer(dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept(next(answers, ""))

        page.on("dialog", answer)
        page.goto(server.url + "/")
        expect(page.locator("#model")).to_have_text("mobilenetv3_small_100: 1000 classes, onnxruntime backend")
        assert prompts == ["This server needs an API key:"] * 2  # the wrong key was asked again
        page.set_input_files("#files", [str(cat_photo)])
        expect(page.locator(".result.done")).to_have_count(1)
        expect(page.locator(".result .row").first.locator(".label")).to_have_text("Egyptian cat")
        assert len(prompts) == 2  # the key was kept
        page.close()
