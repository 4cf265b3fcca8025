"""``mnv3 serve`` speaking other servers' protocols, in-process on the real int8 model: the Open
Inference Protocol v2 (JSON and binary tensors, BYTES images and FP32 pixels, Triton's
classification strings), TorchServe's ``/predictions`` and ``/ping``, API keys, and hot reload.
Every answer is compared with ``/v1/predict``'s on the same image. The real clients (tritonclient)
against a real process are in tests/cli/test_serve_protocols.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from mnv3cli.serving import ServeSettings, create_app  # noqa: E402

MODEL = "mobilenetv3_small_100"
INFER = f"/v2/models/{MODEL}/infer"
KEY = "k" * 12 + "-secret-key"


@pytest.fixture(scope="module")
def runtime(int8_tflite):
    from mnv3cli.inference import open_runtime

    return open_runtime(str(int8_tflite), pipelined=True)


@pytest.fixture(scope="module")
def client(runtime):
    with TestClient(create_app(runtime, ServeSettings(max_wait_ms=1, max_files=4))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photos(cat_photo, coffee_photo) -> list[bytes]:
    return [cat_photo.read_bytes(), coffee_photo.read_bytes()]


def v1(client, image: bytes, top_k: int = 5) -> list[dict]:
    response = client.post(
        "/v1/predict", content=image, headers={"Content-Type": "image/jpeg"}, params={"top_k": top_k}
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def bytes_input(images: list[bytes]) -> dict:
    return {
        "name": "images",
        "datatype": "BYTES",
        "shape": [len(images)],
        "data": [base64.b64encode(i).decode() for i in images],
    }


def binary_body(header: dict, blob: bytes) -> tuple[bytes, dict]:
    text = json.dumps(header).encode()
    return text + blob, {"Inference-Header-Content-Length": str(len(text)), "Content-Type": "application/octet-stream"}


def test_v2_server_and_model_metadata(client, int8_tflite):
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "classification"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    version = hashlib.sha256(int8_tflite.read_bytes()).hexdigest()[:12]
    for path in (f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/{version}"):
        meta = client.get(path).json()
        assert meta["name"] == MODEL and meta["versions"] == [version]
        assert meta["inputs"] == [
            {"name": "images", "datatype": "BYTES", "shape": [-1]},
            {"name": "pixels", "datatype": "FP32", "shape": [-1, 3, 224, 224]},
        ]
        assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]}]
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    assert client.get("/v2/models/resnet50").json()["error"].startswith("model 'resnet50' is not served here")
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready").status_code == 404


def test_v2_json_bytes_equal_v1_and_classification_strings(client, photos):
    response = client.post(INFER, json={"id": "r1", "inputs": [bytes_input(photos)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "r1" and body["model_name"] == MODEL and len(body["model_version"]) == 12
    (output,) = body["outputs"]
    assert output["name"] == "probabilities" and output["datatype"] == "FP32" and output["shape"] == [2, 1000]
    probs = np.array(output["data"], np.float32).reshape(2, 1000)
    for row, image in zip(probs, photos, strict=True):
        expected = v1(client, image)
        assert [int(i) for i in np.argsort(-row)[:5]] == [p["index"] for p in expected]
        assert row[expected[0]["index"]] == pytest.approx(expected[0]["probability"], rel=1e-5)
    wanted = [{"name": "probabilities", "parameters": {"classification": 3}}]
    strings = client.post(INFER, json={"inputs": [bytes_input(photos[:1])], "outputs": wanted}).json()["outputs"][0]
    assert strings["datatype"] == "BYTES" and strings["shape"] == [1, 3]
    top = v1(client, photos[0], 3)
    assert [s.split(":", 1)[1] for s in strings["data"]] == [f"{p['index']}:{p['label']}" for p in top]
    assert [float(s.split(":")[0]) for s in strings["data"]] == pytest.approx([p["probability"] for p in top], rel=1e-4)


def test_v2_binary_fp32_pixels_equal_v1(client, runtime, photos, cat_photo):
    from mnv3cli.data.preprocess import load_and_preprocess

    pixels = load_and_preprocess(str(cat_photo), runtime.preprocess)[None].astype("<f4")
    header = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "FP32",
                "shape": list(pixels.shape),
                "parameters": {"binary_data_size": pixels.nbytes},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    content, headers = binary_body(header, pixels.tobytes())
    response = client.post(INFER, content=content, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["Inference-Header-Content-Length"])
    answer = json.loads(response.content[:length])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 4000
    probs = np.frombuffer(response.content[length:], "<f4")
    expected = v1(client, photos[0])
    assert [int(i) for i in np.argsort(-probs)[:5]] == [p["index"] for p in expected]


def test_v2_binary_bytes_tensor(client, photos):
    blob = b"".join(struct.pack("<I", len(image)) + image for image in photos)
    header = {
        "inputs": [
            {"name": "images", "datatype": "BYTES", "shape": [2, 1], "parameters": {"binary_data_size": len(blob)}}
        ]
    }
    content, headers = binary_body(header, blob)
    answer = client.post(INFER, content=content, headers=headers).json()
    probs = np.array(answer["outputs"][0]["data"]).reshape(2, -1)
    assert [int(row.argmax()) for row in probs] == [v1(client, image)[0]["index"] for image in photos]


BAD_V2 = {  # name -> (json body or raw bytes, words of the error)
    "not json": (b"{nope", "not JSON"),
    "no inputs": ({"outputs": []}, "'inputs' list"),
    "two inputs": ({"inputs": [{}, {}]}, "2 inputs: send exactly one"),
    "unknown input": ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}, "input 'x': this model takes"),
    "wrong datatype": (
        {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1], "data": [1]}]},
        "expected BYTES",
    ),
    "bad shape": (
        {"inputs": [{"name": "images", "datatype": "BYTES", "shape": "1", "data": []}]},
        "not a list of sizes",
    ),
    "count": (
        {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2], "data": ["AAAA"]}]},
        "holds 2 elements, 1 sent",
    ),
    "not base64": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["%%"]}]}, "not base64"),
    "not an image": (
        {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]},
        "images[0]: not an image",
    ),
    "too many": (
        {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [5], "data": ["AA=="] * 5}]},
        "at most 4",
    ),
    "pixels shape": (
        {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [0.0] * 12}]},
        "expected [N, 3, 224, 224]",
    ),
    "pixels text": ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": ["a"]}]}, "not 1 numbers"),
    "binary too short": (
        {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]},
        "binary_data_size 9",
    ),
    "classification 0": (
        {
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 224, 224], "data": [0.0] * 150528}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 0}}],
        },
        "classification must be a positive integer",
    ),
    "unknown output": (
        {
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 224, 224], "data": [0.0] * 150528}],
            "outputs": [{"name": "logits"}],
        },
        "output 'logits'",
    ),
}


@pytest.mark.parametrize("kind", BAD_V2)
def test_v2_refusals_are_400_json_naming_the_problem(client, kind):
    body, needle = BAD_V2[kind]
    response = client.post(INFER, content=body if isinstance(body, bytes) else json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"], response.json()


def test_v2_header_length_beyond_the_body(client):
    response = client.post(INFER, content=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert response.status_code == 400 and "Inference-Header-Content-Length '99'" in response.json()["error"]


def test_torchserve_predictions_equal_v1(client, photos):
    expected = {p["label"]: p["probability"] for p in v1(client, photos[0])}
    raw = client.post(f"/predictions/{MODEL}", content=photos[0])
    assert raw.status_code == 200 and raw.json() == expected
    assert list(raw.json()) == list(expected)  # most probable first
    assert len(raw.headers["X-Model-Version"]) == 12
    form = client.post(f"/predictions/{MODEL}", files={"data": ("cat.jpg", photos[0], "image/jpeg")})
    assert form.json() == expected
    assert client.put(f"/predictions/{MODEL}/1.0", content=photos[0]).json() == expected  # curl -T
    assert client.get("/ping").json() == {"status": "Healthy"}


def test_torchserve_refusals(client):
    missing = client.post("/predictions/resnet-18", content=b"x")
    assert missing.status_code == 404
    body = missing.json()
    assert body["code"] == 404 and body["type"] == "ModelNotFoundException"
    assert body["message"] == body["error"] and body["message"].startswith("Model not found: resnet-18")
    bad = client.post(f"/predictions/{MODEL}", content=b"hello")
    assert bad.status_code == 400 and "not an image" in bad.json()["message"]


@pytest.fixture(scope="module")
def keyed(runtime):
    settings = ServeSettings(max_wait_ms=1, api_keys=(KEY, "another-key-0123456789"), protect_metrics=True)
    with TestClient(create_app(runtime, settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v1/predict"),
        ("POST", INFER),
        ("POST", f"/predictions/{MODEL}"),
        ("GET", "/v1/model"),
        ("GET", f"/v2/models/{MODEL}"),
        ("POST", "/v1/admin/reload"),
        ("GET", "/metrics"),
    ],
)
def test_api_key_needed_on_every_classifying_route(keyed, photos, method, path):
    for headers, problem in (
        ({}, "this server needs an API key"),
        ({"Authorization": "Bearer " + KEY[:-1] + "X"}, "wrong API key"),
        ({"Authorization": "Basic " + KEY}, "wrong API key"),
    ):
        response = keyed.request(method, path, content=photos[0], headers={"Content-Type": "image/jpeg", **headers})
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"].startswith(problem) and response.headers["www-authenticate"].startswith(
            "Bearer"
        )
    ok = keyed.request(
        method, path, content=photos[0], headers={"Content-Type": "image/jpeg", "Authorization": f"bearer {KEY}"}
    )
    assert ok.status_code != 401


def test_health_and_page_stay_open(keyed):
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready", "/ping", "/"):
        assert keyed.get(path).status_code == 200, path
    page = keyed.get("/").text
    assert "window.prompt" in page and "Authorization: `Bearer" in page


def test_predict_with_either_key(keyed, photos):
    for key in (KEY, "another-key-0123456789"):
        response = keyed.post(
            "/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200 and response.json()["predictions"][0]["label"] == "Egyptian cat"


def test_api_keys_from_a_file_and_the_environment(tmp_path):
    from mnv3cli.errors import UserError
    from mnv3cli.serving.auth import load_keys

    keys = tmp_path / "keys"
    keys.write_text(f"# ops\n\n{KEY}\n  second-key-abcdefghijk  \n")
    assert load_keys(str(keys), {"MNV3_API_KEY": "third-key-abcdefghijkl"}) == (
        KEY,
        "second-key-abcdefghijk",
        "third-key-abcdefghijkl",
    )
    assert load_keys(None, {}) == ()
    keys.write_text("short\n")
    with pytest.raises(UserError, match="line 1: not a usable API key"):
        load_keys(str(keys), {})
    with pytest.raises(UserError, match=r"\$MNV3_API_KEY: not a usable API key"):
        load_keys(None, {"MNV3_API_KEY": "has space in it, long enough"})
    with pytest.raises(UserError, match="cannot read it"):
        load_keys(str(tmp_path / "none"), {})
    keys.write_text("# nothing\n")
    with pytest.raises(UserError, match="no key in it"):
        load_keys(str(keys), {})


def test_hot_reload_swaps_the_version_and_a_failure_keeps_the_old_model(runtime, uint8_tflite, photos):
    from mnv3cli.inference import open_runtime

    loads = iter(
        [
            lambda: open_runtime(str(uint8_tflite), pipelined=True),
            lambda: (_ for _ in ()).throw(ValueError("model.tflite: not a TFLite flatbuffer")),
        ]
    )
    settings = ServeSettings(max_wait_ms=1, reload=lambda: next(loads)())
    old, new = runtime.card.sha256[:12], hashlib.sha256(uint8_tflite.read_bytes()).hexdigest()[:12]
    with TestClient(create_app(runtime, settings)) as client:
        assert client.get("/v1/model").json()["model_version"] == old
        assert client.get("/v1/model").json()["reload"] == {"state": "none"}
        response = client.post("/v1/admin/reload", params={"wait": True})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == new != old
        answer = client.post("/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg"}).json()
        assert answer["model_version"] == new and answer["predictions"][0]["label"] == "Egyptian cat"
        failed = client.post("/v1/admin/reload", params={"wait": True})
        assert failed.status_code == 422 and "not a TFLite flatbuffer" in failed.json()["error"]
        card = client.get("/v1/model").json()
        assert card["model_version"] == new and card["reload"]["state"] == "failed"
        assert "not a TFLite flatbuffer" in card["reload"]["error"]
        still = client.post("/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg"})
        assert still.status_code == 200 and still.json()["model_version"] == new


def test_reload_refuses_weights_expecting_other_input_and_a_server_without_a_loader(runtime, client):
    from dataclasses import replace

    other = replace(runtime, card=replace(runtime.card, preprocess=replace(runtime.preprocess, input_size=192)))
    with TestClient(create_app(runtime, ServeSettings(max_wait_ms=1, reload=lambda: other))) as keyless:
        refused = keyless.post("/v1/admin/reload", params={"wait": True})
        assert refused.status_code == 422 and "expect other input" in refused.json()["error"]
        assert keyless.get("/v1/model").json()["model_version"] == runtime.card.sha256[:12]
    response = client.post("/v1/admin/reload")
    assert response.status_code == 409 and "not started with weights it can reload" in response.json()["error"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--protect-metrics"], {}, "--protect-metrics needs an API key (--api-key-file or $MNV3_API_KEY)"),
        (["--api-key-file", "no-such-keys"], {}, "--api-key-file no-such-keys: cannot read it (No such file"),
        ([], {"MNV3_API_KEY": "short"}, "$MNV3_API_KEY: not a usable API key"),
    ],
)
def test_key_options_fail_before_the_model_loads(monkeypatch, tmp_path, args, env, message):
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNV3_API_KEY", raising=False)
    result = CliRunner(env=env).invoke(cli, ["serve", "--port", "0", "--weights", "no-such.tflite", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mnv3: error: {message}"), result.stderr


def test_a_reload_asked_for_while_one_runs_runs_again_after_it(runtime):
    import threading

    from mnv3cli.serving.reload import ModelSlot

    started, release, calls = threading.Event(), threading.Event(), []

    def load():
        calls.append(len(calls))
        started.set()
        release.wait(30)
        if len(calls) == 1:
            raise SystemExit(2)  # even this keeps the old model
        return runtime

    slot = ModelSlot(runtime, load)
    assert slot.reload() is True
    started.wait(30)
    assert slot.reload() is False and slot.status["state"] == "loading"  # queued behind the running one
    release.set()
    assert slot.wait(30)
    assert calls == [0, 1] and slot.status["state"] == "loaded"
