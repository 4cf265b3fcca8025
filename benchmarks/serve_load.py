"""The ``mnv3 serve`` bars, each a ratio or a count from this one run.

1. Load: ``--clients`` concurrent clients (8) post the 500 dev images as raw bodies, over and over,
   for at least ``--seconds`` (20) and one full pass: no request may fail, top-1 over the first
   answer for each image must equal ``mnv3 evaluate``'s on the same images, and images/s must be at
   least 0.9 x ``mnv3 evaluate``'s in-loop images/s (the better of one run before and one after the
   load, so a busy moment cannot flatter the server). p50/p99 latency are reported, and again
   with ``--more-clients`` (32) for ``--seconds`` / 2.
2. Abuse: ``--bad`` (1,000) bad requests of every kind the API refuses (empty, not an image,
   truncated, decompression bomb, over the upload limit, wrong content type, multipart without
   files) interleaved with good ones, from the same clients: each bad one gets its 4xx, each good
   one its first-pass top-1, the server's RSS afterwards is within 10 % of before, /healthz ready.
3. SIGTERM: the server exits 0.

    python benchmarks/serve_load.py [--seconds 20] [--clients 8] [--bad 1000] [--weights W] [--data DIR]

The ONNX cache lives in a temporary directory; both sides use the same cached graph. The machine
should be otherwise quiet (clients, server and evaluate share its cores). Exit status 1 when a bar
is missed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DEV = SHARED / "data" / "imagenet-sample" / "dev"
MNV3 = [sys.executable, "-m", "mnv3cli"]
BARS = {"throughput": 0.9, "rss": 0.10}
LIMIT_MB = 2  # the server's --max-upload-mb here; dev images are far smaller


def evaluate(args, env: dict) -> dict:
    """``mnv3 evaluate --json``'s result, plus ``cpu``: the CPU seconds its whole process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [*MNV3, "-q", "evaluate", str(args.data), "--weights", str(args.weights), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {**json.loads(out), "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(args, env: dict) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen(
        [
            *MNV3,
            "serve",
            "--port",
            "0",
            "--weights",
            str(args.weights),
            "--max-upload-mb",
            str(LIMIT_MB),
            *shlex.split(args.serve_args),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "serving MODEL at URL (Ctrl-C to stop)"
    if " at " not in line:
        proc.kill()
        raise SystemExit(f"mnv3 serve did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    url = urllib.parse.urlsplit(line.split(" at ", 1)[1].split()[0])
    return proc, url.hostname, url.port


class Client:
    """One keep-alive connection; reconnects when the server closed it (after a refusal)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.conn = host, port, None

    def post(self, body: bytes, headers: dict) -> tuple[int, dict]:
        for attempt in (1, 2):
            self.conn = self.conn or http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("POST", "/v1/predict?top_k=1", body=body, headers=headers)
                response = self.conn.getresponse()
                status, data = response.status, response.read()
                if response.will_close:
                    self.close()
                return status, json.loads(data)
            except (ConnectionError, http.client.RemoteDisconnected):
                self.close()  # a keep-alive connection the server had closed: once more, fresh
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def bad_requests(cat: bytes) -> list[tuple[str, bytes, dict, int]]:
    """(kind, body, headers, expected status) for every refusal the API documents."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import png_bomb_bytes

    boundary = "mnv3bench"
    no_files = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--{boundary}--\r\n'
    ).encode()
    jpeg, png = {"Content-Type": "image/jpeg"}, {"Content-Type": "image/png"}
    return [
        ("empty", b"", jpeg, 400),
        ("not an image", b"hello " * 100, png, 400),
        ("truncated", cat[: len(cat) // 3], jpeg, 400),
        ("bomb", png_bomb_bytes(), png, 400),
        ("over the limit", os.urandom(LIMIT_MB * 2**20 + 4096), jpeg, 413),
        ("wrong content type", cat, {"Content-Type": "text/plain"}, 415),
        ("multipart without files", no_files, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, 400),
    ]


def run_clients(count: int, host: str, port: int, work) -> None:
    """``work(client)`` on ``count`` threads, each with its own connection."""

    def one() -> None:
        client = Client(host, port)
        try:
            work(client)
        finally:
            client.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--more-clients", type=int, default=32, help="latency under more clients (0: skip)")
    parser.add_argument("--bad", type=int, default=1000)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--serve-args", default="", help="more options for mnv3 serve, e.g. '--max-wait-ms 1'")
    args = parser.parse_args()
    images = sorted(p for p in args.data.rglob("*") if p.is_file())
    bodies = [p.read_bytes() for p in images]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MNV3_OFFLINE": "1",
        "MNV3_CACHE": tempfile.mkdtemp(prefix="mnv3-serve-bench-"),
    }
    evaluate(args, env)  # builds the ONNX cache both sides then use
    before = evaluate(args, env)
    proc, host, port = start_server(args, env)
    try:
        index_of = {wnid: i for i, wnid in enumerate(get_json(host, port, "/v1/model")["wordnet_ids"])}
        truth = [index_of[p.parent.name] for p in images]

        # 1. load
        first: dict[int, int] = {}
        latencies: list[float] = []
        failures: list[str] = []
        counter = itertools.count()
        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        start = time.perf_counter()
        deadline = start + args.seconds

        def load(client: Client) -> None:
            while True:
                i = next(counter)
                if i >= len(images) and time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                status, body = client.post(bodies[i % len(images)], {"Content-Type": "image/jpeg"})
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    failures.append(f"{images[i % len(images)]}: {status} {body}")
                elif i < len(images):
                    first[i] = body["predictions"][0]["index"]

        run_clients(args.clients, host, port, load)
        elapsed = time.perf_counter() - start
        server_cpu, client_cpu = cpu_seconds(proc.pid) - server_cpu, time.process_time() - client_cpu
        after = evaluate(args, env)
        served = len(latencies) / elapsed
        evaluated = max(before["images_per_sec"], after["images_per_sec"])
        correct = sum(first[i] == truth[i] for i in first)
        evaluate_correct = round(before["top1"] * before["images"] / 100)
        p50, p99 = percentiles(latencies)
        more = more_clients(args, host, port, bodies)

        # 2. abuse
        kinds = bad_requests(bodies[0])
        rss_before = rss_kib(proc.pid)
        plan = list(itertools.islice(itertools.cycle(range(len(kinds))), args.bad))
        goods = itertools.cycle(range(len(images)))
        steps = iter([step for k in plan for step in (("bad", k), ("good", next(goods)))])
        lock, wrong = threading.Lock(), []

        def abuse(client: Client) -> None:
            while True:
                with lock:
                    step = next(steps, None)
                if step is None:
                    return
                what, n = step
                if what == "bad":
                    kind, body, headers, expected = kinds[n]
                    status, answer = client.post(body, headers)
                    if status != expected or "error" not in answer:
                        wrong.append(f"{kind}: {status} {answer}")
                else:
                    status, answer = client.post(bodies[n], {"Content-Type": "image/jpeg"})
                    if status != 200 or answer["predictions"][0]["index"] != first[n]:
                        wrong.append(f"good {images[n].name}: {status} {answer}")

        run_clients(args.clients, host, port, abuse)
        rss_after = rss_kib(proc.pid)
        ready = get_json(host, port, "/healthz").get("status") == "ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_status = proc.wait(60)

    ratio, growth = served / evaluated, rss_after / rss_before - 1
    print(f"load: {args.clients} clients, {len(latencies)} requests in {elapsed:.1f} s, {len(failures)} failed")
    print(f"  mnv3 serve    : {served:6.1f} images/s, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  mnv3 evaluate : {evaluated:6.1f} images/s in the loop (runs: {before['images_per_sec']:.1f}, "
        f"{after['images_per_sec']:.1f})"
    )
    print(f"  ratio         : {ratio:.2f} (bar >= {BARS['throughput']})")
    if more:
        print(
            f"  {args.more_clients} clients    : {more[0]:6.1f} images/s, latency p50 {more[1]:.1f} ms, "
            f"p99 {more[2]:.1f} ms, {more[3]} failed"
        )
    print(
        f"  CPU per image : serve {1000 * server_cpu / len(latencies):.2f} ms (server process) + clients "
        f"{1000 * client_cpu / len(latencies):.2f} ms; evaluate {1000 * before['cpu'] / before['images']:.2f} ms "
        "(whole process)"
    )
    print(f"  top-1         : serve {correct}/{len(first)}, evaluate {evaluate_correct}/{before['images']}")
    print(
        f"abuse: {args.bad} bad requests interleaved with {args.bad} good: {len(wrong)} wrong answers; "
        f"RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB ({100 * growth:+.1f} %, "
        f"bar {100 * BARS['rss']:.0f} %); /healthz ready: {ready}"
    )
    print(f"SIGTERM: exit status {exit_status}")
    for line in (failures + wrong)[:10]:
        print("  " + line)
    ok = (
        not failures
        and not wrong
        and ratio >= BARS["throughput"]
        and correct == evaluate_correct
        and len(first) == len(images)
        and abs(growth) <= BARS["rss"]
        and ready
        and exit_status == 0
        and not (more and more[3])
    )
    print("all bars met" if ok else "BAR MISSED")
    return 0 if ok else 1


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def more_clients(args, host: str, port: int, bodies: list[bytes]) -> tuple[float, float, float, int] | None:
    """Images/s, p50, p99 (ms) and failures with ``--more-clients`` clients for ``--seconds`` / 2."""
    if not args.more_clients:
        return None
    counter, latencies, failed = itertools.count(), [], []
    deadline = time.perf_counter() + args.seconds / 2

    def load(client: Client) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, _ = client.post(bodies[next(counter) % len(bodies)], {"Content-Type": "image/jpeg"})
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                failed.append(status)

    start = time.perf_counter()
    run_clients(args.more_clients, host, port, load)
    return (len(latencies) / (time.perf_counter() - start), *percentiles(latencies), len(failed))


def get_json(host: str, port: int, path: str) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
