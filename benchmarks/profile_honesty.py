"""Is the latency ``mnv3 profile`` reports honest? Time the same model with a plain torch loop.

In one run, alternating so that machine load hits both sides alike, this measures eager batch-1
latency (1) with the profile engine (the code behind ``mnv3 profile``), (2) with a plain
``model(x)`` loop under ``torch.inference_mode`` and the same thread count, and (3) through the
real command (``mnv3 profile --json`` in a subprocess, alternating with the plain loop), and
prints the medians and their ratios. The bar: every ratio within 25 % (0.8 .. 1.25); exit
status 1 when it is missed.

    python benchmarks/profile_honesty.py [--model small] [--runs 50] [--rounds 5] [--threads N]

Run it on a quiet machine: the bar is about the tool adding nothing, not about the machine's noise.
For information it also times the plain loop alone in a fresh process, where glibc's default malloc
thresholds cost page faults on every forward pass; ``mnv3 profile`` settles the allocator first (see
``mnv3cli.profiling.timing.settle_allocator``), as any long-running process ends up, so that number is
higher than all the others and is not part of the bar.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from mnv3cli.factory import create_model
from mnv3cli.profiling.timing import measure_latency, torch_threads
from mnv3cli.registry import get_entry

LOW, HIGH = 0.8, 1.25


def plain_loop(model: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return times


PAGE_FAULTS = """if True:
    import resource, torch
    from mnv3cli.profiling.timing import settle_allocator
    from mnv3cli.factory import create_model
    model, x = create_model("small").eval(), torch.randn(1, 3, 224, 224)
    def faults_per_pass():
        with torch.inference_mode():
            model(x)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(50):  # enough passes that a one-off burst (a new thread's stack) averages out
                model(x)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50
    unsettled = faults_per_pass()
    settle_allocator()
    faults_per_pass()
    print(unsettled, faults_per_pass())
"""


def page_faults() -> tuple[float, float]:
    """Minor page faults per forward pass in a fresh process, before and after ``settle_allocator``
    (glibc's malloc thresholds: a measure of the allocator, moved here from the tests because it
    depends on the libc and its version)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS], capture_output=True, text=True, env=env, check=True)
    unsettled, settled = map(float, out.stdout.split())
    return unsettled, settled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternations of tool and plain loop")
    parser.add_argument(
        "--cli-rounds", type=int, default=3, help="alternations of `mnv3 profile --json` (a subprocess) and plain loop"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--fresh-plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    name = get_entry(args.model).name
    model = create_model(name).eval()
    x = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(0))
    if args.fresh_plain:  # the child process of the information-only fresh-process measurement
        torch.set_num_threads(args.threads)
        print(statistics.median(plain_loop(model, x, args.runs, args.warmup)))
        return 0
    tool: list[float] = []  # per-round medians
    plain: list[float] = []
    with torch_threads(args.threads) as threads:
        for _ in range(args.rounds):
            stats = measure_latency(
                model,
                backends=["eager"],
                batch_sizes=[1],
                device=torch.device("cpu"),
                resolution=args.resolution,
                runs=args.runs,
                warmup=args.warmup,
                threads=threads,
            )[0]
            tool.append(stats.median)
            plain.append(statistics.median(plain_loop(model, x, args.runs, args.warmup)))

    command = [
        sys.executable,
        "-m",
        "mnv3cli",
        "profile",
        "--model",
        name,
        "--backend",
        "eager",
        "--device",
        "cpu",
        "--resolution",
        str(args.resolution),
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(threads),
        "--json",
    ]
    cli: list[float] = []
    plain_after_cli: list[float] = []
    with torch_threads(threads):
        for _ in range(args.cli_rounds):
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            cli.append(json.loads(out)["latency_ms"]["median"])
            plain_after_cli.append(statistics.median(plain_loop(model, x, args.runs, args.warmup)))
    cli_median, plain_cli_median = statistics.median(cli), statistics.median(plain_after_cli)
    fresh = float(
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--fresh-plain",
                "--model",
                name,
                "--resolution",
                str(args.resolution),
                "--runs",
                str(args.runs),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    tool_median, plain_median = statistics.median(tool), statistics.median(plain)
    ratios = {
        "engine / plain loop": tool_median / plain_median,
        "mnv3 profile / plain loop": cli_median / plain_cli_median,
    }
    print(
        f"{name}, {args.resolution}px, batch 1, eager, cpu, {threads} thread(s), {args.runs} runs "
        f"after {args.warmup} warm-up, {args.rounds} alternating rounds; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"  profile engine median : {tool_median:8.3f} ms   rounds: {', '.join(f'{t:.3f}' for t in tool)}")
    print(f"  plain torch loop      : {plain_median:8.3f} ms   rounds: {', '.join(f'{t:.3f}' for t in plain)}")
    print(f"  mnv3 profile --json   : {cli_median:8.3f} ms   rounds: {', '.join(f'{t:.3f}' for t in cli)}")
    print(
        f"  plain loop after each : {plain_cli_median:8.3f} ms   rounds: "
        f"{', '.join(f'{t:.3f}' for t in plain_after_cli)}"
    )
    print(
        f"  plain loop, fresh process, unsettled allocator (information, not gated): {fresh:.3f} ms "
        f"= {fresh / plain_median:.2f} x the settled plain loop"
    )
    unsettled, settled = page_faults()
    print(
        f"  minor page faults per forward pass (information): {unsettled:.0f} with glibc's default "
        f"thresholds, {settled:.1f} after settle_allocator"
    )
    ok = True
    for label, ratio in ratios.items():
        passed = LOW <= ratio <= HIGH
        ok &= passed
        print(f"  ratio {label:26s}: {ratio:.3f}  {'ok' if passed else 'FAIL'} (bar {LOW}..{HIGH})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
