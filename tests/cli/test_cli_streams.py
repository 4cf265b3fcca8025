"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

The CLI's shared rules, each kept once: the stream rule (results on stdout, -q never hides them),
the shared options, the one folder walk, the one class-label fallback and the one worker default.
"""

from __future__ import annotations

import json


def test_profile_tables_go_to_stdout_and_quiet_keeps_them(run_cli):
    loud = run_cli("profile", "--size", "small", "--runs", "0")
    quiet = run_cli("-q", "profile", "--size", "small", "--runs", "0")
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "Parameters and compute at 224x224" in loud.stdout and "per stage" in loud.stdout
    assert quiet.stdout == loud.stdout  # -q hides notes and progress, never the result
    assert "Parameters" not in loud.stderr + quiet.stderr


def test_profile_plot_line_is_a_result_but_not_inside_json(run_cli, tmp_path):
    plot = tmp_path / "p.png"
    args = (
        "profile",
        "--size",
        "small",
        "--resolution",
        "32",
        "--backend",
        "eager",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--plot",
        plot,
    )
    quiet = run_cli("-q", *args)
    assert quiet.returncode == 0, quiet.stderr
    assert f"wrote {plot}\n" in quiet.stdout
    as_json = run_cli(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    json.loads(as_json.stdout)  # stdout is the JSON and nothing else
    assert f"wrote {plot}" in as_json.stderr


def test_predict_wrote_line_on_stdout_even_with_q_and_on_stderr_with_json(
    run_cli, bundled_weights, cat_photo, tmp_path
):
    out = tmp_path / "labels.csv"
    quiet = run_cli("-q", "predict", cat_photo, "--weights", bundled_weights, "--output", out)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == f"wrote 1 result(s) to {out}\n"
    as_json = run_cli("predict", cat_photo, "--weights", bundled_weights, "--output", out, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line)["path"] for line in as_json.stdout.splitlines()] == [str(cat_photo)]
    assert f"wrote 1 result(s) to {out}" in as_json.stderr
