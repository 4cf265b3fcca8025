"""``mnv3 serve`` as a user runs it: a real process on a free port, concurrent clients, batching seen
in its metrics, a stop signal in the middle of load (every accepted request answered, exit 0), and
the start-up errors (a busy port, an address not of this machine) as one-line user errors before the model loads.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_one_user_error
from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")


def concurrently(count: int, work) -> list:
    """``work(i)`` for ``i < count`` on as many threads released together; results in order."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # recorded, so the test can say which request failed and how
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_concurrent_requests_are_batched_and_sigterm_answers_those_in_flight(bundled_weights, cat_photo):
    cat = cat_photo.read_bytes()
    # A long batching window makes "in flight" last long enough to be seen from outside.
    with ServerProcess("--weights", bundled_weights, "--max-wait-ms", "1000", "--max-batch", "64") as server:
        assert server.request("GET", "/healthz") == (200, b'{"status":"ready","model":"mobilenetv3_small_100"}')
        first = concurrently(12, lambda i: server.predict(cat))
        assert all(status == 200 and body["predictions"][0]["label"] == "Egyptian cat" for status, body in first), first
        assert server.metric("mnv3_batch_size_sum") == 12
        assert server.metric("mnv3_batch_size_count") < 12  # images of concurrent requests ran together

        answers: list = []
        wave = threading.Thread(target=lambda: answers.extend(concurrently(8, lambda i: server.predict(cat))))
        wave.start()
        deadline = time.monotonic() + 30
        while server.metric("mnv3_requests_in_flight") < 9 and time.monotonic() < deadline:  # 8 + this one
            time.sleep(0.02)
        assert server.metric("mnv3_requests_in_flight") >= 9, "the second wave never reached the server"
        status, stderr = server.stop(signal.SIGTERM)
        wave.join(60)
        assert status == 0, stderr
        assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
        assert [a[0] if isinstance(a, tuple) else a for a in answers] == [200] * 8
        assert all(body["predictions"][0]["label"] == "Egyptian cat" for _, body in answers)
        with pytest.raises(ConnectionRefusedError):
            server.request("GET", "/healthz", timeout=5)


def test_a_warm_server_runs_without_torch_and_sigint_stops_it_with_status_0(bundled_weights, cat_photo, run_cli):
    assert run_cli("-q", "predict", cat_photo, "--weights", bundled_weights).returncode == 0  # the ONNX cache
    with ServerProcess("--weights", bundled_weights) as server:
        assert server.request("GET", "/healthz")[0] == 200
        maps = Path(f"/proc/{server.proc.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text(), "a warm mnv3 serve loaded torch"
        status, stderr = server.stop(signal.SIGINT)
    assert status == 0 and "Traceback" not in stderr, stderr


def test_a_busy_port_is_a_user_error_before_the_model_loads(run_cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", port, "--weights", "no-such-weights.tflite", timeout=120)
    assert_one_user_error(result, f"--host 127.0.0.1 --port {port}: cannot listen there")


def test_an_address_of_another_machine_is_a_user_error(run_cli):
    result = run_cli("serve", "--host", "203.0.113.7", "--port", "0", timeout=120)  # TEST-NET-3: no DNS
    assert_one_user_error(result, "--host 203.0.113.7 --port 0: cannot listen there (Cannot assign")


def test_refusals_of_large_bodies_reach_the_client(bundled_weights):
    """A refusal sent while the client is still uploading must still be read by it: the server
    reads and drops the rest of the body (closing with unread data would reset the connection)."""
    big = bytes(range(256)) * (6 * 2**20 // 256)  # 6 MiB: more than the socket buffers hold
    with ServerProcess("--weights", bundled_weights, "--max-upload-mb", "1") as server:
        for _ in range(3):
            assert server.predict(big)[0] == 413
            status, body = server.predict(big, "text/plain")
            assert status == 415 and "Content-Type 'text/plain'" in body["error"]
            chunked = server.request(
                "POST",
                "/v1/predict",
                iter([big[: 2**20], big[2**20 :]]),  # no length:
                {"Content-Type": "image/png"},
            )  # http.client sends it chunked
            assert chunked[0] == 413 and b"over the limit of 1048576 bytes" in chunked[1]
        assert server.request("GET", "/healthz")[0] == 200
        assert server.stop(signal.SIGTERM)[0] == 0
