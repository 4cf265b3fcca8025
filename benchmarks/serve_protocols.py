"""The bars of ``mnv3 serve``'s other protocols, API keys and hot reload, each from this one run.

1. Keys: the server runs with ``MNV3_API_KEY``; ``/v1/predict``, the v2 ``infer`` and TorchServe's
   ``/predictions`` answer 401 without the key and 200 with it.
2. Protocols: every dev image (500) through Triton's own client (``tritonclient[http]``, the image
   as a binary BYTES tensor, 8 requests in flight), through TorchServe's route and through
   ``/v1/predict``: every answer 200, the three top-1 equal image by image, and the number right
   equal to ``mnv3 evaluate``'s on the same images.
3. Reload: 8 clients post images for ``--seconds``; a third of the way in the weights file is
   replaced (int8 -> uint8 TFLite) and the server gets SIGHUP: no request may fail, the answers'
   ``model_version`` switches once to the new weights' (the time it took is reported). Then a
   corrupt file and ``POST /v1/admin/reload?wait=true``: 422, the uint8 model still answers and
   ``/v1/model`` reports the failure. SIGTERM: exit status 0.

    python benchmarks/serve_protocols.py [--seconds 10] [--weights W] [--data DIR]

Exit status 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import serve_load as base  # this folder: the server start, evaluate, paths

UINT8 = base.SHARED / "weights" / "mobilenet_v3_small_1.0_224_uint8.tflite"


class Http:
    """Requests to the server on one keep-alive connection per thread."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key, self.local = host, port, key, threading.local()

    def __call__(self, method: str, path: str, body: bytes | None = None, headers=None, key=True):
        headers = {**(headers or {}), **({"Authorization": f"Bearer {self.key}"} if key else {})}
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None) or http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                    self.local.conn = None
                return response.status, json.loads(data) if data else None
            except (ConnectionError, http.client.RemoteDisconnected):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def check_keys(call: Http, model: str, image: bytes) -> list[str]:
    """Each classifying route: 401 without the key, 200 with it."""
    jpeg = {"Content-Type": "image/jpeg"}
    routes = {
        "/v1/predict": (image, jpeg),
        f"/v2/models/{model}/infer": (v2_json(image), {"Content-Type": "application/json"}),
        f"/predictions/{model}": (image, jpeg),
    }
    wrong = []
    for path, (body, headers) in routes.items():
        statuses = (call("POST", path, body, headers, key=False)[0], call("POST", path, body, headers)[0])
        if statuses != (401, 200):
            wrong.append(f"{path}: {statuses}, expected (401, 200)")
    return wrong


def v2_json(image: bytes) -> bytes:
    import base64

    tensor = {"name": "images", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(image).decode()]}
    return json.dumps({"inputs": [tensor]}).encode()


def triton_top1(host: str, port: int, key: str, model: str, bodies: list[bytes]) -> list[int]:
    """Top-1 index of every image through tritonclient (binary BYTES), 8 requests in flight."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"{host}:{port}", concurrency=8, network_timeout=120)
    try:
        pending = []
        for body in bodies:
            tensor = triton.InferInput("images", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([body], dtype=np.object_), binary_data=True)
            pending.append(client.async_infer(model, [tensor], headers={"Authorization": f"Bearer {key}"}))
        return [int(request.get_result().as_numpy("probabilities")[0].argmax()) for request in pending]
    finally:
        client.close()


def through_routes(call: Http, model: str, bodies: list[bytes]) -> tuple[list, list, list[str]]:
    """Top-1 (index, label) by /v1/predict and top-1 label by TorchServe's route, 8 threads."""
    jpeg, failures = {"Content-Type": "image/jpeg"}, []

    def one(body: bytes):
        (s1, v1), (s2, ts) = (
            call("POST", "/v1/predict?top_k=1", body, jpeg),
            call("POST", f"/predictions/{model}", body),
        )
        if (s1, s2) != (200, 200):
            failures.append(f"{s1} {v1} / {s2} {ts}")
            return (None, None), None
        return (v1["predictions"][0]["index"], v1["predictions"][0]["label"]), next(iter(ts))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, bodies))
    return [a for a, _ in answers], [b for _, b in answers], failures


def reload_under_load(args, call: Http, proc, weights: Path, bodies: list[bytes]) -> dict:
    """8 clients for ``--seconds``; the weights replaced and SIGHUP a third of the way in."""
    stop, lock = threading.Event(), threading.Lock()
    versions: list[str] = []
    failures: list[str] = []

    def client(n: int) -> None:
        i = n
        while not stop.is_set():
            try:
                status, body = call(
                    "POST", "/v1/predict?top_k=1", bodies[i % len(bodies)], {"Content-Type": "image/jpeg"}
                )
            except Exception as exc:  # a dropped connection is a failed request
                status, body = 0, repr(exc)
            i += 8
            with lock:
                if status != 200:
                    failures.append(f"{status} {body}")
                else:
                    versions.append(body["model_version"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds / 3)
    shutil.copyfile(UINT8, weights)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGHUP)
    new = hashlib.sha256(UINT8.read_bytes()).hexdigest()[:12]
    while time.perf_counter() - sent < 120 and call("GET", "/v1/model")[1]["model_version"] != new:
        time.sleep(0.05)
    switched = time.perf_counter() - sent
    time.sleep(max(args.seconds * 2 / 3 - switched, 1.0))
    stop.set()
    for thread in threads:
        thread.join()
    changes = sum(a != b for a, b in zip(versions, versions[1:], strict=False))
    weights.write_bytes(b"TFL3" + bytes(256))  # corrupt
    status, answer = call("POST", "/v1/admin/reload?wait=true")
    card = call("GET", "/v1/model")[1]
    after = call("POST", "/v1/predict", bodies[0], {"Content-Type": "image/jpeg"})
    return {
        "requests": len(versions) + len(failures),
        "failures": failures,
        "switched_s": switched,
        "ok": not failures
        and versions[-1] == new
        and versions[0] != new
        and changes == 1
        and status == 422
        and card["model_version"] == new
        and card["reload"]["state"] == "failed"
        and after[0] == 200
        and after[1]["model_version"] == new,
        "corrupt": f"{status} {answer.get('error', '')[:60]}; /v1/model reload {card['reload']['state']}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--weights", type=Path, default=base.WEIGHTS)
    parser.add_argument("--data", type=Path, default=base.DEV)
    args = parser.parse_args()
    images = sorted(p for p in args.data.rglob("*") if p.is_file())
    bodies = [p.read_bytes() for p in images]
    key, work = secrets.token_urlsafe(24), Path(tempfile.mkdtemp(prefix="mnv3-serve-protocols-"))
    env = {**os.environ, "PYTHONPATH": str(base.ROOT), "MNV3_OFFLINE": "1", "MNV3_CACHE": str(work / "cache")}
    evaluated = base.evaluate(args, env)  # builds the ONNX cache; the top-1 to match
    subprocess.run(
        [*base.MNV3, "-q", "predict", str(images[0]), "--weights", str(UINT8)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    weights = work / "model.tflite"
    shutil.copyfile(args.weights, weights)
    args.weights, args.serve_args = weights, ""
    proc, host, port = base.start_server(args, {**env, "MNV3_API_KEY": key})
    try:
        call = Http(host, port, key)
        card = call("GET", "/v1/model")[1]
        model, index_of = card["model_name"], {w: i for i, w in enumerate(card["wordnet_ids"])}
        truth = [index_of[p.parent.name] for p in images]
        keys = check_keys(call, model, bodies[0])
        start = time.perf_counter()
        triton = triton_top1(host, port, key, model, bodies)
        triton_s = time.perf_counter() - start
        v1, torchserve, failures = through_routes(call, model, bodies)
        reload = reload_under_load(args, call, proc, weights, bodies)
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_status = proc.wait(60)
    right = round(evaluated["top1"] * evaluated["images"] / 100)
    same = sum(t == i and ts == label for t, (i, label), ts in zip(triton, v1, torchserve, strict=True))
    triton_right = sum(t == y for t, y in zip(triton, truth, strict=True))
    print(f"keys: {'401 without, 200 with, on 3 routes' if not keys else '; '.join(keys)}")
    print(
        f"protocols: {len(bodies)} images; tritonclient {len(bodies) / triton_s:.1f} images/s; "
        f"top-1 equal on all three routes: {same}/{len(bodies)}; {len(failures)} failed"
    )
    print(f"  top-1 right: tritonclient {triton_right}, mnv3 evaluate {right} (of {len(bodies)})")
    print(
        f"reload: {reload['requests']} requests under 8 clients, {len(reload['failures'])} failed; "
        f"the version switched {reload['switched_s']:.1f} s after SIGHUP; corrupt file: {reload['corrupt']}"
    )
    print(f"SIGTERM: exit status {exit_status}")
    for line in (keys + failures + reload["failures"])[:10]:
        print("  " + line)
    ok = not keys and not failures and same == len(bodies) and triton_right == right and reload["ok"]
    ok = ok and exit_status == 0
    print("all bars met" if ok else "BAR MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
