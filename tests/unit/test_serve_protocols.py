"""``mnv3 serve`` speaking other servers' protocols, in-process on the real int8 model: the Open
Inference Protocol v2 (JSON and binary tensors, BYTES images and FP32 pixels, Triton's
classification strings) and TorchServe's ``/predictions`` and ``/ping``. Every answer is compared
with ``/v1/predict``'s on the same image. The real client (tritonclient) against a real process is
in tests/cli/test_serve_protocols.py; API keys and hot reload in test_serve_keys_reload.py.
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


@pytest.fixture(scope="module")
def runtime(bundled_weights):
    from mnv3cli.inference import open_runtime

    return open_runtime(str(bundled_weights), pipelined=True)


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


def test_v2_server_and_model_metadata(client, bundled_weights):
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "classification"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    version = hashlib.sha256(bundled_weights.read_bytes()).hexdigest()[:12]
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

    pixels = load_and_preprocess(str(cat_photo), runtime.card.preprocess)[None].astype("<f4")
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
