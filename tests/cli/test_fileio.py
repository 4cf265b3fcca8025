"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

Atomic writes: all or nothing, with the usual file mode.
"""

from __future__ import annotations

import os


def _limited_file_size(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_file_size_limit_is_a_one_line_user_error_and_keeps_the_old_file(tmp_path):
    """EFBIG (like ENOSPC on a full disk) is the user's environment, not a bug: exit 2, one line
    naming the file, the previous file intact, no temporary left (run in a child process whose
    file-size limit is 1 kB; Python ignores SIGXFSZ, so the write raises)."""
    import subprocess
    import sys

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    code = (
        "import sys\nfrom mnv3cli.fileio import atomic_write\nfrom mnv3cli.errors import UserError\n"
        "try:\n    with atomic_write(sys.argv[1], 'wb') as fh:\n        fh.write(b'x' * 100_000)\n"
        "except UserError as exc:\n    print(exc); sys.exit(exc.exit_code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, preexec_fn=_limited_file_size(1024)
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == f"cannot write {target}: File too large"
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_predict_refuses_a_fifo_or_read_only_output_in_one_line(run_cli, cat_photo, tmp_path):
    """Issue 24 item 1 through a command: exit 2, one line naming the output, the target untouched."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    read_only = tmp_path / "old.csv"
    read_only.write_text("old")
    read_only.chmod(0o444)
    for target, problem in ((fifo, "not a regular file"), (read_only, "the file is read-only")):
        proc = run_cli("predict", cat_photo, "-o", target.name, timeout=300)
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"mnv3: error: --output {target.name}: cannot write ({problem};"), last
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
    assert fifo.is_fifo() and read_only.read_text() == "old"
