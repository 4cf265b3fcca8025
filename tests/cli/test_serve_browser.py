"""``mnv3 serve``'s web page in a real browser (Debian's chromium driven by Playwright): a person picks
or drops images and sees each one's top-5 as labelled bars, or its error; the page loads nothing
from anywhere but the server. Skips when chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import signal

import pytest

from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the browser test needs playwright (pip install '.[test]'; it drives the system chromium, no download)",
)
expect = sync_api.expect


DROP = """async ([name, data]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
  const zone = document.getElementById("drop");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
  }
}"""


def test_a_person_picks_and_drops_images_and_sees_top5_bars_or_the_error(
    browser, bundled_weights, cat_photo, coffee_photo, tmp_path
):
    bad = tmp_path / "notes.jpg"
    bad.write_text("a shopping list, not a photo")
    with ServerProcess("--weights", bundled_weights) as server:
        page = browser.new_page()
        elsewhere, page_errors = [], []
        page.on(
            "request", lambda r: None if r.url.startswith((server.url, "blob:", "data:")) else elsewhere.append(r.url)
        )
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(server.url + "/")
        expect(page.locator("#model")).to_have_text("mobilenetv3_small_100: 1000 classes, onnxruntime backend")

        page.set_input_files("#files", [str(cat_photo), str(bad)])  # "choose files"
        expect(page.locator(".result.done")).to_have_count(2)
        expect(page.locator(".result .name")).to_have_text([cat_photo.name, "notes.jpg"])  # as given
        cat = page.locator(".result", has_text=cat_photo.name)
        rows = cat.locator(".row")
        expect(rows).to_have_count(5)
        api = server.predict(cat_photo.read_bytes())[1]["predictions"]  # what the page must show
        assert api[0]["label"] == "Egyptian cat"
        expect(rows.locator(".label")).to_have_text([p["label"] for p in api])
        expect(rows.locator(".percent")).to_have_text([f"{100 * p['probability']:.1f} %" for p in api])
        expect(cat.locator("img")).to_be_visible()
        track = rows.first.locator(".track").bounding_box()["width"]
        widths = [rows.nth(i).locator(".bar").bounding_box()["width"] for i in range(5)]
        assert abs(widths[0] / track - api[0]["probability"]) < 0.01, (widths, track)  # bar = probability
        assert widths == sorted(widths, reverse=True), widths
        failed = page.locator(".result", has_text="notes.jpg")
        expect(failed.locator(".error")).to_have_text("notes.jpg: not an image Pillow can read")
        expect(failed.locator(".row")).to_have_count(0)

        page.evaluate(DROP, ["dropped-coffee.jpg", base64.b64encode(coffee_photo.read_bytes()).decode()])
        coffee = page.locator(".result", has_text="dropped-coffee.jpg")
        expect(coffee.locator(".row")).to_have_count(5)
        expect(coffee.locator(".row .label").first).to_have_text("espresso")
        expect(page.locator(".result .name")).to_have_text(["dropped-coffee.jpg", cat_photo.name, "notes.jpg"])
        assert elsewhere == [] and page_errors == []
        page.close()
        status, stderr = server.stop(signal.SIGTERM)
    assert status == 0, stderr


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
def test_the_page_fits_a_phone_and_a_desktop(browser, bundled_weights, cat_photo, width, height):
    """At 390x844 the bars used to vanish (a 0 px track), the cards overflowed so the page scrolled
    sideways and "choose files" was an 89x18 px target; /favicon.ico was a 404 on every load."""
    with ServerProcess("--weights", bundled_weights) as server:
        mobile = width < 600
        page = browser.new_page(viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile)
        failed = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(server.url + "/")
        page.set_input_files("#files", [str(cat_photo)])
        rows = page.locator(".result.done .row")
        expect(rows).to_have_count(5)
        probabilities = server.predict(cat_photo.read_bytes())[1]["predictions"]
        for i, prediction in enumerate(probabilities):
            track = rows.nth(i).locator(".track").bounding_box()["width"]
            bar = rows.nth(i).locator(".bar").bounding_box()["width"]
            assert track >= 40, f"row {i}: the bar's track is {track} px wide"
            assert abs(bar / track - max(prediction["probability"], 0.005)) < 0.02, (i, bar, track)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
        target = page.locator("label[for=files]").bounding_box()
        assert target["width"] >= 44 and target["height"] >= 44, target
        status, _ = server.request("GET", "/favicon.ico")
        assert status < 400 and failed == [], (status, failed)
        page.close()
        assert server.stop(signal.SIGTERM)[0] == 0
