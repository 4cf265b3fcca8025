"""``mnv3 serve`` against hostile and careless clients, over raw sockets: slow headers and bodies,
refusals before the body, a stop signal under keep-alive load, a low open-files limit, protocol
garbage and disconnects. Every wait is bounded (socket timeouts), every server is stopped.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from server_process import ServerProcess

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")

POST = b"POST /v1/predict HTTP/1.1\r\nHost: test\r\n"
STARTUP_NOTES = ("web page ", "building ONNX cache ")  # what serve writes on stderr before any request


class Raw:
    """One raw TCP connection to the server, read with a deadline."""

    def __init__(self, server: ServerProcess, timeout: float = 10) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict, bytes]:
        """The next response's status, headers (lower-case names) and body."""
        reader = self.sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.strip().decode()
        body = reader.read(int(headers.get("content-length", 0)))
        return status, headers, body

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection (EOF or reset) within ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()


def test_slowloris_connections_are_closed_and_normal_requests_stay_fast(bundled_weights, cat_photo):
    cat = cat_photo.read_bytes()
    with ServerProcess("--weights", bundled_weights, "--header-timeout", "3") as server:
        slow = [Raw(server) for _ in range(40)]
        for conn in slow:
            conn.send(b"POST /v1/predict HTTP/1.1\r\n")
        latencies, stop = [], time.monotonic() + 5
        while time.monotonic() < stop:  # normal traffic while the 40 trickle a header line each
            for number, conn in enumerate(slow):
                try:
                    conn.send(f"X-Slow-{number}: {time.monotonic()}\r\n".encode())
                except OSError:
                    pass  # closed by the server already
            start = time.perf_counter()
            assert server.predict(cat)[0] == 200
            latencies.append(time.perf_counter() - start)
        assert statistics.quantiles(latencies, n=100)[98] < 1.0, [round(x, 2) for x in latencies]
        closed = [conn.closed_within(2) for conn in slow]
        assert all(closed), f"{closed.count(False)} of 40 slow connections still open after the header timeout"
        assert server.metric('mnv3_connections_closed_total{reason="header_timeout"}') == 40
        for conn in slow:
            conn.close()
        assert server.stop(signal.SIGTERM)[0] == 0


def test_a_half_sent_body_is_answered_408_and_closed_after_the_body_timeout(bundled_weights):
    with ServerProcess("--weights", bundled_weights, "--body-timeout", "2") as server:
        conn = Raw(server)
        conn.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n" + b"\xff" * 50_000)
        start = time.monotonic()
        status, headers, body = conn.response()
        assert (status, headers["connection"]) == (408, "close")
        assert "did not arrive in time" in json.loads(body)["error"]
        assert 1.5 < time.monotonic() - start < 6
        assert conn.closed_within(2)
        assert server.stop(signal.SIGTERM)[0] == 0


def test_refusals_before_the_body_are_sent_at_once_and_close_the_connection(bundled_weights):
    with ServerProcess("--weights", bundled_weights, "--max-upload-mb", "1") as server:
        declared = Raw(server, timeout=3)  # declares 30 MB and sends none of it: the 413 comes anyway
        declared.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 30000000\r\n\r\n")
        status, headers, body = declared.response()
        assert (status, headers["connection"]) == (413, "close") and b"over the limit" in body
        assert declared.closed_within(3)

        for length, kind, expected in ((1000, b"text/plain", 415), (30_000_000, b"image/png", 413)):
            expecting = Raw(server, timeout=3)  # refused before any 100 Continue, then closed
            expecting.send(
                POST + b"Content-Type: " + kind + b"\r\nExpect: 100-continue\r\n"
                b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
            )
            status, headers, _ = expecting.response()
            assert (status, headers["connection"]) == (expected, "close")
            assert expecting.closed_within(3)

        streaming = Raw(server)  # keeps streaming a huge declared body: read and dropped, then cut
        streaming.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 100000000000\r\n\r\n")
        sent, start, chunk = 0, time.monotonic(), b"\0" * 2**20
        with pytest.raises(OSError):
            while time.monotonic() - start < 30:
                streaming.send(chunk)
                sent += len(chunk)
        assert sent < 200 * 2**20, f"the server read {sent} bytes of a refused body"
        assert server.request("GET", "/healthz")[0] == 200
        assert server.stop(signal.SIGTERM)[0] == 0


def _keep_alive_client(server: ServerProcess, image: bytes, outcomes: list, stop: threading.Event) -> None:
    """Post ``image`` over one keep-alive connection (reopened when the server closes it) until
    the server is gone. A failure after the whole request was sent is recorded as "reset", with
    the number of answers received on that connection before."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    answered = 0  # on this connection
    while not stop.is_set():
        try:
            conn.request("POST", "/v1/predict", body=image, headers={"Content-Type": "image/jpeg"})
        except OSError:  # refused or cut while sending: the request never reached the server whole
            conn.close()
            answered = 0
            time.sleep(0.01)
            continue
        try:
            response = conn.getresponse()
            response.read()
            outcomes.append((response.status, response.getheader("connection")))
            answered += 1
            if response.getheader("connection") == "close":
                conn.close()
                answered = 0
        except (OSError, http.client.HTTPException) as exc:
            outcomes.append(("reset", type(exc).__name__, answered))
            conn.close()
            answered = 0
    conn.close()


def test_sigterm_answers_every_fully_sent_request_of_keep_alive_clients(bundled_weights, cat_photo):
    cat = cat_photo.read_bytes()
    with ServerProcess("--weights", bundled_weights, "--max-wait-ms", "20") as server:
        outcomes: list = []
        stop = threading.Event()
        clients = [threading.Thread(target=_keep_alive_client, args=(server, cat, outcomes, stop)) for _ in range(8)]
        for client in clients:
            client.start()
        time.sleep(3)
        stalled = Raw(server)  # an upload that stops halfway: cut at once, not after the 30 s grace
        stalled.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n" + b"\xff" * 1000)
        time.sleep(0.5)
        answered_before = len(outcomes)
        start = time.monotonic()
        status, stderr = server.stop(signal.SIGTERM, timeout=20)
        took = time.monotonic() - start
        stop.set()
        for client in clients:
            client.join(30)
        assert status == 0 and "Traceback" not in stderr and "ERROR" not in stderr, stderr
        assert took < 8, f"the stalled upload held the shutdown {took:.1f} s"
        # a connection that was answered before is one the server accepted: never reset. A new
        # one the kernel completes in the instant the listening socket closes is reset without a
        # byte reaching the server (the connections already queued are taken in first, see
        # mnv3cli/serving/server.py): rare, and safe for the client to retry
        assert [o for o in outcomes if o[0] != 200 and o[2] > 0] == [], outcomes
        assert len([o for o in outcomes if o[0] != 200]) <= 1, outcomes
        assert answered_before > 16 and len(outcomes) > answered_before  # load before and during the stop
        assert outcomes[-1][1] == "close"
        assert stalled.response()[0] == 503
        stalled.close()


def test_a_low_open_files_limit_refuses_connections_quietly_and_keeps_serving(bundled_weights):
    with ServerProcess("--weights", bundled_weights, "--header-timeout", "3", open_files=96) as server:
        held = []
        for _ in range(120):  # half-sent requests, more than the descriptors left
            try:
                conn = Raw(server, timeout=3)
                conn.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 1000\r\n")
                held.append(conn)
            except OSError:
                break
        time.sleep(1)
        status, body = server.request("GET", "/healthz", timeout=5)  # answered, not left in the queue
        assert (status, json.loads(body)) == (503, {"error": "the server has too many connections open; retry later"})
        notes = [line for line in server.stderr_lines if not line.startswith(STARTUP_NOTES)]
        assert len(notes) <= 2 and any("refusing connections beyond" in line for line in notes), notes[:10]
        for conn in held:
            conn.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.request("GET", "/healthz", timeout=5)[0] != 200:
            time.sleep(0.2)
        assert server.request("GET", "/healthz", timeout=5)[0] == 200
        assert server.metric('mnv3_connections_closed_total{reason="over_limit"}') > 0
        status, stderr = server.stop(signal.SIGTERM)
    assert status == 0 and "Traceback" not in stderr, stderr


def test_the_soft_open_files_limit_is_raised_to_the_hard_one_at_start(bundled_weights):
    with ServerProcess("--weights", bundled_weights, open_files=(64, 4096)) as server:
        limits = Path(f"/proc/{server.proc.pid}/limits")
        if not limits.exists():
            pytest.skip("no /proc on this system")
        line = next(line for line in limits.read_text().splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == ["4096", "4096"], line
        assert server.stop(signal.SIGTERM)[0] == 0


def test_protocol_garbage_and_bad_multipart_are_json_and_do_not_write_stderr(bundled_weights):
    with ServerProcess("--weights", bundled_weights) as server:
        garbage = Raw(server)
        garbage.send(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = garbage.response()
        assert (status, headers["content-type"]) == (400, "application/json") and json.loads(body)["error"]
        multipart = [
            b"--wrong\r\nContent-Disposition: form-data; name=file; filename=a.jpg\r\n\r\nxx\r\n--b--\r\n",
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nxx',  # cut short
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a.jpg\r\n\r\nxx\r\n--b--\r\n",
        ]
        for body in multipart:
            status, answer = server.request(
                "POST", "/v1/predict", body, {"Content-Type": "multipart/form-data; boundary=b"}
            )
            assert status == 400, answer
            assert "no fields found" not in json.loads(answer)["error"], answer
        gone = Raw(server)  # sends half a body and hangs up: a disconnect, not a 400
        gone.send(POST + b"Content-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n" + b"\xff" * 100)
        time.sleep(0.3)
        gone.close()
        time.sleep(0.5)
        assert server.metric('mnv3_client_disconnects_total{route="/v1/predict"}') == 1
        assert server.metric('mnv3_requests_total{route="/v1/predict",status="400"}') == len(multipart)
        assert [line for line in server.stderr_lines if not line.startswith(STARTUP_NOTES)] == []
        assert server.stop(signal.SIGTERM)[0] == 0
