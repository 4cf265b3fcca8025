"""``mnv3 serve`` as the clients of other servers see it: Triton's own Python client
(``tritonclient[http]``) over the Open Inference Protocol, with an API key, gets the answers
``/v1/predict`` gives; and a hot reload under 8-client load (SIGHUP, then a corrupt file) loses no
request, switches the version, and keeps the old model when the new file is bad.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
httpclient = pytest.importorskip("tritonclient.http", reason="the protocol test needs tritonclient[http] (.[test])")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "mobilenetv3_small_100"
KEY = "protocol-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def v1(server: ServerProcess, image: bytes, headers: dict) -> dict:
    status, body = server.request("POST", "/v1/predict", image, {"Content-Type": "image/jpeg", **headers})
    assert status == 200, body
    return json.loads(body)


def test_tritonclient_with_an_api_key_gets_predicts_answers(bundled_weights, cat_photo, coffee_photo, tmp_path):
    from mnv3cli.data.preprocess import load_and_preprocess
    from mnv3cli.registry import Preprocess

    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    photos = [cat_photo.read_bytes(), coffee_photo.read_bytes()]
    with ServerProcess("--weights", bundled_weights, "--api-key-file", keys) as server:
        client = httpclient.InferenceServerClient(f"{server.host}:{server.port}", network_timeout=60)
        try:
            assert client.is_server_live() and client.is_server_ready()
            with pytest.raises(InferenceServerException, match="needs an API key"):
                client.get_model_metadata(MODEL)
            meta = client.get_model_metadata(MODEL, headers=AUTH)
            assert meta["inputs"][0] == {"name": "images", "datatype": "BYTES", "shape": [-1]}
            assert client.is_model_ready(MODEL)
            expected = [v1(server, image, AUTH) for image in photos]

            images = httpclient.InferInput("images", [2], "BYTES")
            images.set_data_from_numpy(np.array(photos, dtype=np.object_), binary_data=True)
            result = client.infer(MODEL, [images], headers=AUTH)
            probs = result.as_numpy("probabilities")
            assert probs.shape == (2, 1000) and probs.dtype == np.float32
            assert result.get_response()["model_version"] == expected[0]["model_version"]
            for row, answer in zip(probs, expected, strict=True):
                assert [int(i) for i in np.argsort(-row)[:5]] == [p["index"] for p in answer["predictions"]]

            top = httpclient.InferRequestedOutput("probabilities", class_count=2)
            strings = client.infer(MODEL, [images], outputs=[top], headers=AUTH).as_numpy("probabilities")
            assert [[s.decode().split(":", 1)[1] for s in row] for row in strings] == [
                [f"{p['index']}:{p['label']}" for p in answer["predictions"][:2]] for answer in expected
            ]

            card = json.loads(server.request("GET", "/v1/model", headers=AUTH)[1])
            pixels = load_and_preprocess(str(cat_photo), Preprocess.from_dict(card["preprocess"]))[None]
            fp32 = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
            fp32.set_data_from_numpy(pixels.astype(np.float32), binary_data=True)
            row = client.infer(MODEL, [fp32], headers=AUTH).as_numpy("probabilities")[0]
            assert int(row.argmax()) == expected[0]["predictions"][0]["index"]
            with pytest.raises(InferenceServerException, match="wrong API key"):
                client.infer(MODEL, [fp32], headers={"Authorization": "Bearer nope"})
        finally:
            client.close()
        assert server.stop(signal.SIGTERM)[0] == 0


def test_reload_under_load_loses_nothing_and_a_corrupt_file_keeps_the_old_model(
    bundled_weights, other_weights, cat_photo, tmp_path, run_cli
):
    assert run_cli("-q", "predict", cat_photo, "--weights", other_weights).returncode == 0  # its ONNX cache
    weights = tmp_path / "model.safetensors"
    shutil.copyfile(bundled_weights, weights)
    old, new = (hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in (bundled_weights, other_weights))
    cat = cat_photo.read_bytes()
    with ServerProcess("--weights", weights) as server:
        stop, lock = threading.Event(), threading.Lock()
        seen: list[tuple[int, str]] = []  # (status, model_version) in answer order, all clients
        problems: list[str] = []

        def client() -> None:
            while not stop.is_set():
                try:
                    status, body = server.predict(cat)
                except Exception as exc:  # a failed request is what this test looks for
                    problems.append(repr(exc))
                    continue
                with lock:
                    seen.append((status, body.get("model_version", "")))
                if status != 200 or body["predictions"][0]["label"] != "Egyptian cat":
                    problems.append(f"{status} {body}")

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            shutil.copyfile(other_weights, weights)
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 120
            while (
                time.monotonic() < deadline
                and json.loads(server.request("GET", "/v1/model")[1])["model_version"] != new
            ):
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not problems, problems[:5]
        versions = [version for _, version in seen]
        assert versions[0] == old and versions[-1] == new, (versions[0], versions[-1])
        switch = versions.index(new)
        assert len(versions) - switch >= 8 and switch >= 8  # load on both sides of the swap

        weights.write_bytes(b"TFL3" + b"\0" * 64)  # corrupt
        status, body = server.request("POST", "/v1/admin/reload?wait=true")
        assert status == 422 and json.loads(body)["model_version"] == new
        card = json.loads(server.request("GET", "/v1/model")[1])
        assert card["model_version"] == new and card["reload"]["state"] == "failed" and card["reload"]["error"]
        status, answer = server.predict(cat)
        assert status == 200 and answer["model_version"] == new
        status, stderr = server.stop(signal.SIGTERM)
    assert status == 0 and "Traceback" not in stderr, stderr
