"""``mnv3 serve`` in a subprocess for tests: start it on a free port, read the address it prints,
talk to it over plain HTTP (a fresh connection per request, so that a refused connection and a
dropped request are told apart), stop it with a signal."""

from __future__ import annotations

import http.client
import json
import queue
import resource
import subprocess
import sys
import threading
import time
import urllib.parse

from helpers import cli_env, default_signals


class ServerProcess:
    """``python -m mnv3cli serve --port 0 ARGS``; ``url`` once it has printed its address."""

    def __init__(
        self, *args: str, cwd=None, timeout: float = 180, open_files: int | tuple[int, int] | None = None
    ) -> None:
        """``open_files``: the child's open-files limit (``ulimit -n``): one number for soft and
        hard, or ``(soft, hard)``."""

        def child_setup() -> None:  # in the child: default signal handling, whatever the suite's
            default_signals()
            if open_files is not None:
                limits = open_files if isinstance(open_files, tuple) else (open_files, open_files)
                resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnv3cli", "serve", "--port", "0", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=cwd,
            preexec_fn=child_setup,
        )
        lines: queue.Queue = queue.Queue()

        def pump() -> None:  # stdout is read all along, so the server never blocks on it
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.stderr_lines: list[str] = []  # read all along too: a flood must not block the server

        def pump_stderr() -> None:
            for line in self.proc.stderr:
                self.stderr_lines.append(line)

        self._stderr_pump = threading.Thread(target=pump_stderr, daemon=True)
        self._stderr_pump.start()
        self.stdout: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = None
            if line is None:
                self.proc.kill()
                self.proc.wait()
                self._stderr_pump.join(10)
                raise AssertionError(f"mnv3 serve did not print its address: {''.join(self.stderr_lines)}")
            self.stdout.append(line)
            if line.startswith("serving "):
                self.url = line.split(" at ", 1)[1].split()[0]
                break
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname, parsed.port

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 60
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def predict(self, image: bytes, content_type: str = "image/jpeg") -> tuple[int, dict]:
        status, body = self.request("POST", "/v1/predict", image, {"Content-Type": content_type})
        return status, json.loads(body)

    def metric(self, name: str) -> float:
        text = self.request("GET", "/metrics")[1].decode()
        values = [line.split()[-1] for line in text.splitlines() if line.split(" ")[0] == name]
        return float(values[0]) if values else 0.0

    def stop(self, signal_number: int, timeout: float = 60) -> tuple[int, str]:
        """Send the signal; the exit status and everything the server wrote on stderr."""
        self.proc.send_signal(signal_number)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"mnv3 serve still running {timeout} s after signal {signal_number}") from None
        self._stderr_pump.join(10)
        return self.proc.returncode, "".join(self.stderr_lines)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr_pump.join(10)
        self.proc.stderr.close()
