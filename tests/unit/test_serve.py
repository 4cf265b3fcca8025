"""``mnv3 serve``'s HTTP API in-process (FastAPI's TestClient, lifespan included) on the real int8
model: answers equal ``predict``'s, every kind of bad request is a 4xx ``{"error"}`` that leaves
the service ready, the model card, metrics, the page and the OpenAPI description.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import threading

import pytest
from click.testing import CliRunner

from helpers import png_bomb_bytes

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from mnv3cli.serving import ServeSettings, create_app  # noqa: E402

LIMIT = 200_000  # bytes: the test app's upload limit (the cat photo is about 60 kB)


@pytest.fixture(scope="module")
def runtime(bundled_weights):
    from mnv3cli.inference import open_runtime

    return open_runtime(str(bundled_weights), pipelined=True)


@pytest.fixture(scope="module")
def client(runtime):
    app = create_app(runtime, ServeSettings(max_upload_bytes=LIMIT, max_wait_ms=2, top_k=5))
    with TestClient(app) as test_client:  # runs the lifespan: warm-up, batcher, decoding pool
        yield test_client


@pytest.fixture(scope="module")
def cat_bytes(cat_photo) -> bytes:
    return cat_photo.read_bytes()


def post_image(client, data, content_type="image/jpeg", **params):
    return client.post("/v1/predict", content=data, headers={"Content-Type": content_type}, params=params)


def test_raw_image_gets_the_same_labels_as_predict(client, runtime, cat_photo, cat_bytes, bundled_weights):
    from mnv3cli.prediction import predict

    response = post_image(client, cat_bytes)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = next(
        predict([str(cat_photo)], runtime.backend, runtime.card.preprocess, runtime.card.class_names, top_k=5)
    ).to_dict()["predictions"]
    version = hashlib.sha256(bundled_weights.read_bytes()).hexdigest()[:12]
    assert body == {"predictions": expected, "model": "mobilenetv3_small_100", "model_version": version}
    assert body["predictions"][0]["label"] == "Egyptian cat"
    assert len(post_image(client, cat_bytes, top_k=2).json()["predictions"]) == 2
    assert len(post_image(client, cat_bytes, top_k=5000).json()["predictions"]) == len(runtime.card.class_names)


def test_multipart_answers_each_file_in_upload_order(client, cat_bytes, coffee_photo):
    files = [
        ("file", ("coffee.jpg", coffee_photo.read_bytes(), "image/jpeg")),
        ("file", ("notes.txt", b"just text", "text/plain")),
        ("file", ("cat.jpg", cat_bytes, "image/jpeg")),
    ]
    response = client.post("/v1/predict", files=files, params={"top_k": 1})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["coffee.jpg", "notes.txt", "cat.jpg"]
    assert results[0]["predictions"][0]["label"] == "espresso"
    assert results[1] == {"filename": "notes.txt", "error": "notes.txt: not an image Pillow can read"}
    assert [p["label"] for p in results[2]["predictions"]] == ["Egyptian cat"]


def test_multipart_where_every_file_fails_is_a_400_with_each_reason(client):
    files = [("file", ("a.png", b"", "image/png")), ("file", ("b.png", png_bomb_bytes(), "image/png"))]
    response = client.post("/v1/predict", files=files)
    assert response.status_code == 400
    body = response.json()
    assert "none of the 2 files" in body["error"]
    assert "empty" in body["results"][0]["error"] and "decompression bomb" in body["results"][1]["error"]


def _chunks(data: bytes):
    yield from (data[i : i + 8192] for i in range(0, len(data), 8192))


BAD_REQUESTS = {  # name -> (request kwargs from the cat photo's bytes, status, words the error holds)
    "empty body": (lambda cat: dict(content=b"", headers={"Content-Type": "image/jpeg"}), 400, "empty"),
    "not an image": (
        lambda cat: dict(content=b"hello " * 50, headers={"Content-Type": "image/png"}),
        400,
        "not an image",
    ),
    "truncated": (
        lambda cat: dict(content=cat[: len(cat) // 3], headers={"Content-Type": "image/jpeg"}),
        400,
        "truncated",
    ),
    "decompression bomb": (
        lambda cat: dict(content=png_bomb_bytes(), headers={"Content-Type": "image/png"}),
        400,
        "decompression bomb",
    ),
    "over the limit": (
        lambda cat: dict(content=cat * 4, headers={"Content-Type": "image/jpeg"}),
        413,
        "over the limit of 200000 bytes",
    ),
    "over the limit, chunked": (
        lambda cat: dict(content=_chunks(cat * 4), headers={"Content-Type": "image/jpeg"}),
        413,
        "over the limit",
    ),
    "wrong content type": (
        lambda cat: dict(content=cat, headers={"Content-Type": "text/plain"}),
        415,
        "Content-Type 'text/plain'",
    ),
    "no content type": (lambda cat: dict(content=cat), 415, "no Content-Type"),
    "multipart without files": (
        lambda cat: dict(data={"note": "cat"}, files=[("picture", ("c.jpg", cat))]),
        400,
        "without files: send each image as a file field named 'file' (fields found: note, picture)",
    ),
    "multipart, text field only": (
        lambda cat: dict(
            content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nhello\r\n--b--\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        400,
        "without files",
    ),
    "multipart cut short": (
        lambda cat: dict(
            content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n\r\n' + cat[:500],
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        400,
        "it ends before its closing boundary '--b--' (an upload cut short?)",
    ),
    "multipart, parts without the declared boundary": (
        lambda cat: dict(
            content=b'--x\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n\r\nxx\r\n--b--\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        400,
        "no part begins with its boundary '--b'",
    ),
    "multipart, file named with filename* only": (
        lambda cat: dict(
            content=b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''c.jpg\r\n\r\n"
            + cat
            + b"\r\n--b--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        400,
        'given only as filename*=..., which multipart/form-data does not use (RFC 7578): send filename="..."',
    ),
    "multipart, no boundary": (
        lambda cat: dict(content=b"garbage", headers={"Content-Type": "multipart/form-data"}),
        400,
        "multipart",
    ),
}


@pytest.mark.parametrize("kind", BAD_REQUESTS)
def test_bad_input_is_a_4xx_json_error_naming_the_problem(client, cat_bytes, kind):
    make, status, needle = BAD_REQUESTS[kind]
    response = client.post("/v1/predict", **make(cat_bytes))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"], response.json()
    assert client.get("/healthz").json()["status"] == "ready"


@pytest.mark.parametrize(
    "method, path, params, status, needle",
    [
        ("POST", "/v1/predict", {"top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
        ("POST", "/v1/predict", {"top_k": "many"}, 422, "top_k: Input should be a valid integer"),
        ("GET", "/v1/predict", {}, 405, "Method Not Allowed"),
        ("GET", "/v2/anything", {}, 404, "Not Found"),
    ],
)
def test_framework_refusals_use_the_same_error_shape(client, cat_bytes, method, path, params, status, needle):
    response = client.request(method, path, params=params, content=cat_bytes, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and body["error"].startswith(needle), body  # pydantic may add words


def test_model_card(client, runtime, bundled_weights):
    card = client.get("/v1/model").json()
    assert card["model_name"] == "mobilenetv3_small_100" and card["backend"] == "onnxruntime"
    assert card["sha256"] == hashlib.sha256(bundled_weights.read_bytes()).hexdigest()
    assert card["num_classes"] == len(card["class_names"]) == 1000
    assert card["class_names"][285] == "Egyptian cat" and card["wordnet_ids"][285] == "n02124075"
    assert card["preprocess"]["input_size"] == 224 and card["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert card["max_upload_bytes"] == LIMIT and card["top_k"] == 5


def _sample(text: str, name: str, **labels) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}{{{selector}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_by_status_and_batches(client, cat_bytes):
    before = client.get("/metrics").text
    post_image(client, cat_bytes)
    post_image(client, b"", "image/jpeg")
    client.get("/nowhere/../etc/passwd")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("mnv3_requests_total", route="/v1/predict", status="200") == 1
    assert grew("mnv3_requests_total", route="/v1/predict", status="400") == 1
    assert grew("mnv3_requests_total", route="other", status="404") == 1  # no label per probed URL
    assert grew("mnv3_batch_size_count") == 1 and grew("mnv3_batch_size_sum") == 1
    assert grew("mnv3_images_total", outcome="rejected") == 1
    assert grew("mnv3_request_seconds_count", route="/v1/predict") == 2


def test_concurrent_requests_share_model_calls(runtime, cat_bytes):
    app = create_app(runtime, ServeSettings(max_batch=8, max_wait_ms=300))
    answers = []
    with TestClient(app) as client:
        barrier = threading.Barrier(6)

        def one():
            barrier.wait()
            answers.append(post_image(client, cat_bytes).json()["predictions"][0]["label"])

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        text = client.get("/metrics").text
    assert answers == ["Egyptian cat"] * 6
    assert _sample(text, "mnv3_batch_size_sum") == 6
    assert _sample(text, "mnv3_batch_size_count") < 6  # some images ran together


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="drop"' in page and 'type="file"' in page and "v1/predict" in page
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"""(url\(|@import|fetch\()\s*["'`]?\s*(https?:)?//""", page, re.I)


def test_openapi_describes_both_request_bodies(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"image/*", "multipart/form-data"}
    assert {"/v1/model", "/healthz", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_serve_without_the_extra_says_how_to_install(monkeypatch):
    from mnv3cli.cli.app import cli

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails
    result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "mnv3: error: mnv3 serve needs uvicorn: pip install 'mnv3cli[serve]'"


def test_raw_upload_at_the_limit_is_accepted(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    data = buffer.getvalue() + b"\0" * (LIMIT - len(buffer.getvalue()))  # padding after IEND: ignored
    assert len(data) == LIMIT
    assert post_image(client, data, "image/png").status_code == 200
    assert post_image(client, data + b"\0", "image/png").status_code == 413


def test_bodies_arriving_at_once_are_bounded_together(runtime, cat_bytes):
    """Each body is bounded by the upload limit; many at once by max_buffered_mb (503 beyond),
    released as soon as a body is read."""
    app = create_app(runtime, ServeSettings(max_buffered_mb=0.1, max_wait_ms=2))  # 104,857 bytes
    with TestClient(app) as client:
        big = cat_bytes * (110_000 // len(cat_bytes) + 1)
        response = post_image(client, big)
        assert response.status_code == 503
        assert response.json() == {"error": "the server is receiving too many uploads at once; retry later"}
        assert post_image(client, cat_bytes).status_code == 200  # the refused body's bytes were given back
        assert app.state.service.bodies.used == 0


def test_the_favicon_is_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 204 and response.content == b""


def test_an_unexpected_failure_is_a_json_500(runtime):
    app = create_app(runtime, ServeSettings())

    @app.get("/fails")
    async def fails():
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/fails")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error (RuntimeError)"}
