"""``predict --output``: the streamed file, ``--resume``'s reading of it, and file names that are not
valid UTF-8. In-process, with made-up results (no model): the format and the bookkeeping only."""

from __future__ import annotations

import codecs
import csv
import json
import os

import pytest

from mnv3cli.errors import UserError
from mnv3cli.fileio import PartFile
from mnv3cli.prediction import InputResult, Label, ResultsFile
from mnv3cli.printable import display_path

# awkward but valid names: a comma, a quote, a line break, a non-ASCII letter, a backslash
NAMES = [
    "a.jpg",
    "b, c.jpg",
    'say "cheese".jpg',
    "line\nbreak.jpg",
    "größe.jpg",
    "back\\slash.jpg",
    os.fsdecode(b"caf\xe9.jpg"),
    os.fsdecode(b"dir\\x/\xff\xfe.png"),
]


def _result(i: int, name: str, top_k: int = 2) -> InputResult:
    if i % 3 == 2:
        return InputResult(name, error=f"{name}: not an image Pillow can read")
    return InputResult(name, tuple(Label(c, f"class {c}", 1 / (c + 2 + i)) for c in range(top_k)))


def _write(path, names, top_k: int = 2, upto: int | None = None) -> None:
    """A finished run (``upto`` None), or one stopped after ``upto`` results (``path.part``)."""
    with ResultsFile(path, top_k) as out:
        out.start()
        for i, name in enumerate(names[:upto]):
            out.write(_result(i, name, top_k))
        if upto is None:
            out.finish()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_file_cut_at_any_byte_resumes_to_the_uninterrupted_bytes(tmp_path, suffix):
    """kill -9 may cut the file anywhere: every whole record is kept, a torn one is written again,
    and the end result is byte for byte the uninterrupted file."""
    full = tmp_path / f"full{suffix}"
    _write(full, NAMES)
    data = full.read_bytes()
    assert data.decode("utf-8")  # every byte valid UTF-8, the undecodable names included
    with ResultsFile(tmp_path / f"x{suffix}", 2) as fmt_only:
        sizes = [len(fmt_only.format.header())] + [
            len(fmt_only.format.line(_result(i, n))) for i, n in enumerate(NAMES)
        ]
    bounds = [sum(sizes[: i + 1]) for i in range(len(sizes))]  # header, then after each record
    assert bounds[-1] == len(data)
    out = tmp_path / f"out{suffix}"
    part = tmp_path / f"out{suffix}.part"
    for cut in range(len(data) + 1):
        part.write_bytes(data[:cut])
        with ResultsFile(out, 2) as results:
            resumed = results.resume(NAMES)
            whole = [b for b in bounds if b <= cut]
            assert resumed.keep == (whole[-1] if whole else 0), cut
            assert resumed.done == max(len(whole) - 1, 0), cut
            assert resumed.failed == sum(i % 3 == 2 for i in range(resumed.done))
            if cut % 401 and cut not in (len(data) - 1, len(data)):
                continue  # finishing the file (two fsyncs): for a sample of the cuts
            results.start(resumed)
            for i in range(resumed.done, len(NAMES)):
                results.write(_result(i, NAMES[i]))
            results.finish()
        assert out.read_bytes() == data, cut
        assert not part.exists()
        out.unlink()


def test_records_are_kept_whole_and_torn_ones_dropped(tmp_path):
    full = tmp_path / "full.jsonl"
    _write(full, NAMES)
    lines = full.read_bytes().splitlines(keepends=True)
    part = tmp_path / "out.jsonl.part"
    part.write_bytes(b"".join(lines[:3]) + lines[3][:-1])  # the 4th is missing its last byte
    with ResultsFile(tmp_path / "out.jsonl", 2) as results:
        resumed = results.resume(NAMES)
    assert (resumed.done, resumed.failed, resumed.complete) == (3, 1, False)
    assert resumed.keep == sum(map(len, lines[:3]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda names: names[1:], "result 1 in"),  # other inputs
        (lambda names: names[::-1], "result 1 in"),  # another order
        (lambda names: names[:3], "more results than there are inputs"),
    ],
)
def test_resume_refuses_a_file_of_other_inputs(tmp_path, change, message):
    _write(tmp_path / "out.csv", NAMES, upto=5)
    with ResultsFile(tmp_path / "out.csv", 2) as results, pytest.raises(UserError, match=message):
        results.resume(change(NAMES))
    assert (tmp_path / "out.csv.part").stat().st_size > 0  # nothing lost by asking


@pytest.mark.parametrize("suffix, message", [(".csv", "other columns"), (".jsonl", "another --top-k")])
def test_resume_refuses_another_top_k(tmp_path, suffix, message):
    _write(tmp_path / f"out{suffix}", NAMES, upto=2)
    with ResultsFile(tmp_path / f"out{suffix}", 3) as results, pytest.raises(UserError, match=message):
        results.resume(NAMES)


def test_a_line_in_the_middle_that_predict_does_not_write_is_refused(tmp_path):
    _write(tmp_path / "out.jsonl", NAMES, upto=4)
    part = tmp_path / "out.jsonl.part"
    lines = part.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"path"', b'"path" ')  # same JSON, other bytes: not ours
    part.write_bytes(b"".join(lines))
    with (
        ResultsFile(tmp_path / "out.jsonl", 2) as results,
        pytest.raises(UserError, match="does not write after 1 result"),
    ):
        results.resume(NAMES)


def test_resume_of_a_finished_file_has_nothing_to_do_and_leaves_no_part(tmp_path):
    out = tmp_path / "out.csv"
    _write(out, NAMES)
    before = out.read_bytes()
    with ResultsFile(out, 2) as results:
        resumed = results.resume(NAMES)
    assert resumed.complete and resumed.done == len(NAMES) and resumed.failed == 2
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["out.csv"]
    with ResultsFile(out, 2) as results, pytest.raises(UserError, match="finished file of other"):
        results.resume(NAMES + ["more.jpg"])


def test_without_resume_an_unfinished_part_is_replaced_and_the_old_file_kept_until_done(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    _write(out, NAMES, upto=4)
    with ResultsFile(out, 2) as results:
        assert results.unfinished() > 0
        results.start()
        results.write(_result(0, "z.jpg"))
        assert out.read_text() == "old\n"  # the previous complete file stays until this one is
        results.finish()
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["z.jpg"]


def test_a_second_writer_of_the_same_output_is_refused(tmp_path):
    with ResultsFile(tmp_path / "out.csv", 2) as first:
        first.start()
        with pytest.raises(UserError, match="being written by another running process"):
            ResultsFile(tmp_path / "out.csv", 2).__enter__()
    with ResultsFile(tmp_path / "out.csv", 2) as again:  # the lock ends with its holder
        again.start()


@pytest.mark.parametrize("disk_full_at_exit", [False, True])
def test_an_interrupted_write_leaves_whole_records_only(tmp_path, monkeypatch, disk_full_at_exit):
    """Ctrl-C after part of the buffer got out: cut back to whole records, then the buffer is
    written again on the way out (or, on a full disk, dropped whole)."""
    import errno

    part_file = PartFile(tmp_path / "out.bin", sync_seconds=3600, flush_seconds=3600)
    calls = []
    real_write = os.write

    def flaky_write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:5]))  # a short write
        if len(calls) == 2:
            raise KeyboardInterrupt
        if disk_full_at_exit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    with pytest.raises(KeyboardInterrupt), part_file:
        part_file.start()
        part_file.write(b"one\n")
        part_file.sync()
        part_file.write(b"two\n" * 10)
        monkeypatch.setattr(os, "write", flaky_write)
        part_file.sync()
    assert len(calls) == 3
    expected = b"one\n" if disk_full_at_exit else b"one\n" + b"two\n" * 10
    assert (tmp_path / "out.bin.part").read_bytes() == expected


@pytest.mark.parametrize("timing", [{"sync_seconds": 0.0}, {"flush_seconds": 0.0, "sync_seconds": 3600}])
def test_the_part_file_is_written_out_as_it_goes(tmp_path, timing):
    part_file = PartFile(tmp_path / "out.bin", **timing)
    with part_file:
        part_file.start()
        part_file.write(b"record\n")
        assert part_file.part.read_bytes() == b"record\n"  # on disk before the run ends
    assert part_file.part.read_bytes() == b"record\n" and not part_file.path.exists()
    with PartFile(tmp_path / "out.bin", sync_seconds=3600, flush_seconds=3600) as held_back:
        held_back.start(keep=7)
        held_back.write(b"more\n")
        assert held_back.part.read_bytes() == b"record\n"  # collected, not yet written out
    assert part_file.part.read_bytes() == b"record\nmore\n"  # ... until the run ends


def test_undecodable_names_are_escaped_reversibly_and_flagged():
    raw = b"dir\\x/caf\xe9\xff.jpg"
    text, escaped = display_path(os.fsdecode(raw))
    assert escaped and text == "dir\\\\x/caf\\xe9\\xff.jpg" and text.encode("utf-8")
    assert codecs.escape_decode(text.encode())[0] == raw
    assert display_path("größe\\x.jpg") == ("größe\\x.jpg", False)  # valid names stay as they are
    record = InputResult(os.fsdecode(raw), error=f"{os.fsdecode(raw)}: no such file").to_dict()
    assert record == {"path": text, "path_escaped": True, "error": "dir\\x/caf\\xe9\\xff.jpg: no such file"}
    assert json.dumps(record, ensure_ascii=False).encode("utf-8")


def test_csv_rows_read_back_with_the_escaped_names(tmp_path):
    out = tmp_path / "out.csv"
    _write(out, NAMES)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [display_path(n)[0] for n in NAMES]
    assert rows[6]["path"] == "caf\\xe9.jpg" and rows[2]["error"].endswith("not an image Pillow can read")


def _answered(i: int, name: str) -> InputResult:
    """``_result`` as a run with ``--min-confidence 0.4`` gives it (an answer on each result)."""
    r = _result(i, name)
    if r.error:
        return r
    best = r.predictions[0]
    return InputResult(name, r.predictions, answer=best.label if best.probability >= 0.4 else "unknown")


def test_csv_with_min_confidence_has_an_answer_column(tmp_path):
    out = tmp_path / "out.csv"
    with ResultsFile(out, 2, answers=True) as results:
        results.start()
        for i, name in enumerate(NAMES[:3]):
            results.write(_answered(i, name))
        results.finish()
    rows = list(csv.reader(out.open(newline="", encoding="utf-8")))
    assert rows[0][:3] == ["path", "answer", "label_1"] and rows[0][-1] == "error"
    assert [r[1] for r in rows[1:]] == ["class 0", "unknown", ""]  # 1/2 >= 0.4 > 1/3; an error: none
    assert all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("before, now", [(False, True), (True, False)])
def test_resume_refuses_a_file_written_with_or_without_min_confidence(tmp_path, suffix, before, now):
    out = tmp_path / f"out{suffix}"
    with ResultsFile(out, 2, answers=before) as results:
        results.start()
        for i, name in enumerate(NAMES[:2]):
            results.write(_answered(i, name) if before else _result(i, name))
    with ResultsFile(out, 2, answers=now) as results, pytest.raises(UserError, match="--min-confidence"):
        results.resume(NAMES)
    with ResultsFile(out, 2, answers=before) as results:
        assert results.resume(NAMES).done == 2
