"""The manifest reader: happy paths, every bad-row kind with its line, and what it refuses outright."""

from __future__ import annotations

import json
import os

import pytest

from mnv3cli.data.manifest import MAX_LINE, is_manifest, multi_hot, read_manifest
from mnv3cli.errors import UserError


@pytest.fixture
def folder(tmp_path):
    """A folder with four (tiny, not decoded here) image files."""
    (tmp_path / "img").mkdir()
    for name in ("a", "b", "c", "d"):
        (tmp_path / "img" / f"{name}.jpg").write_bytes(b"x")
    return tmp_path


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_splits_and_first_appearance_order(folder):
    m = read_manifest(
        write(folder / "m.csv", "path,label,split\nimg/a.jpg,bee,train\nimg/b.jpg,ant,train\nimg/c.jpg,ant,val\n")
    )
    assert [r.line for r in m.rows] == [2, 3, 4]
    assert m.rows[0].path == folder / "img" / "a.jpg" and m.rows[0].path.is_absolute()
    assert [r.labels for r in m.rows] == [("bee",), ("ant",), ("ant",)]
    assert m.classes == ["bee", "ant"] and not m.multi_label and m.problems == []
    assert [r.line for r in m.split("train")] == [2, 3] and [r.line for r in m.split("val")] == [4]
    assert len(m.split(None)) == 3 and m.default_eval_split() == "val"


def test_csv_bom_extra_columns_and_header_case(folder):
    m = read_manifest(write(folder / "m.csv", "\ufeffId,PATH,Label\n1,img/a.jpg,cat\n"))
    assert m.rows[0].labels == ("cat",) and m.rows[0].split is None and m.default_eval_split() is None


def test_classes_file_sets_the_order(folder):
    write(folder / "classes.txt", "# order\nzebra\nant\nbee\n")
    m = read_manifest(
        write(folder / "m.csv", "path,label\nimg/a.jpg,bee\nimg/b.jpg,ant\n"), classes_file=folder / "classes.txt"
    )
    assert m.classes == ["zebra", "ant", "bee"]


def test_classes_file_must_hold_every_label(folder):
    write(folder / "classes.txt", "ant\n")
    with pytest.raises(UserError, match="not in .*classes.txt: 'bee'"):
        read_manifest(write(folder / "m.csv", "path,label\nimg/a.jpg,bee\n"), classes_file=folder / "classes.txt")


def test_jsonl_single_and_multi_label_both_forms(folder):
    single = read_manifest(
        write(
            folder / "s.jsonl",
            '{"path": "img/a.jpg", "label": "ant", "split": "train"}\n\n{"path": "img/b.jpg", "label": 3}\n',
        )
    )
    assert [(r.line, r.labels, r.split) for r in single.rows] == [(1, ("ant",), "train"), (3, ("3",), None)]
    rows = [{"path": "img/a.jpg", "labels": ["dog", "cat"]}, {"path": "img/b.jpg", "labels": "cat;bird"}]
    multi = read_manifest(write(folder / "m.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    assert multi.multi_label and multi.classes == ["dog", "cat", "bird"]
    assert [r.labels for r in multi.rows] == [("dog", "cat"), ("cat", "bird")]
    assert multi_hot(multi.rows[1], multi.classes) == [0.0, 1.0, 1.0]


def test_csv_multi_label_column(folder):
    m = read_manifest(write(folder / "m.csv", 'path,labels\nimg/a.jpg,"dog; cat"\nimg/b.jpg,cat\n'))
    assert m.multi_label and [r.labels for r in m.rows] == [("dog", "cat"), ("cat",)]


def test_no_label_column_is_readable_for_predict(folder):
    m = read_manifest(write(folder / "m.csv", "path\nimg/a.jpg\n"))
    assert not m.has_labels and m.rows[0].labels == () and m.classes == []


def test_bad_rows_are_reported_with_their_line(folder):
    text = (
        "path,label,split\n"
        "img/a.jpg,ant,train\n"
        "img/missing.jpg,ant,train\n"  # 3: missing file
        "img/b.jpg,ant,holdout\n"  # 4: unknown split
        "img/c.jpg,,train\n"  # 5: empty label
        "img/d\x00.jpg,ant,train\n"  # 6: NUL byte
    )
    m = read_manifest(write(folder / "m.csv", text))
    assert [r.line for r in m.rows] == [2]
    assert m.bad_rows == 4
    where = str(folder / "m.csv")
    assert m.problems == [
        f"{where}:3: no such image 'img/missing.jpg'",
        f"{where}:4: unknown split 'holdout' (expected train, val or test)",
        f"{where}:5: 'img/c.jpg' has an empty label",
        f"{where}:6: holds a NUL byte",
    ]


def test_jsonl_bad_lines_are_reported(folder):
    text = (
        '{"path": "img/a.jpg", "label": "ant"}\nnot json\n[1]\n{"path": "img/b.jpg", "label": ["x"]}\n'
        '{"label": "y"}\n{"path": "img/c\\u0000.jpg", "label": "ant"}\n{"path": "img/d.jpg", "labels": ["x"]}\n'
    )
    m = read_manifest(write(folder / "m.jsonl", text))
    assert len(m.rows) == 1 and [p.split(":")[-2] for p in m.problems] == ["2", "3", "4", "5", "6", "7"]
    assert m.problems[4].endswith(":6: holds a NUL byte") and "while earlier rows use 'label'" in m.problems[5]


def test_line_numbers_count_quoted_line_breaks(folder):
    m = read_manifest(write(folder / "m.csv", 'path,label\nimg/a.jpg,"two\nlines"\nimg/nope.jpg,x\n'))
    assert m.rows[0].labels == ("two\nlines",) and m.problems[0].endswith(":4: no such image 'img/nope.jpg'")


def test_duplicated_path_is_an_error(folder):
    with pytest.raises(UserError, match=r"m.csv:3: 'img/./a.jpg' is listed twice \(first on line 2\)"):
        read_manifest(write(folder / "m.csv", "path,label\nimg/a.jpg,ant\nimg/./a.jpg,bee\n"))


def test_class_only_in_val_is_an_error(folder):
    text = "path,label,split\nimg/a.jpg,ant,train\nimg/b.jpg,bee,val\n"
    with pytest.raises(UserError, match="in the val split but not in train: 'bee'"):
        read_manifest(write(folder / "m.csv", text))


@pytest.mark.parametrize("written", ["../outside.jpg", "img/../../outside.jpg", "ABSOLUTE"])
def test_escaping_paths_are_refused_unless_allowed(folder, written):
    inner = folder / "inner"
    inner.mkdir()
    (folder / "outside.jpg").write_bytes(b"x")
    if written == "ABSOLUTE":
        written = str(folder / "outside.jpg")
    manifest = write(inner / "m.csv", f"path,label\n{written},ant\n")
    with pytest.raises(UserError, match="m.csv:2: .* is outside the manifest's folder"):
        read_manifest(manifest)
    assert read_manifest(manifest, allow_absolute=True).rows[0].path == folder / "outside.jpg"


def test_symlink_inside_the_folder_is_followed(folder):
    """Decision: the check is on the written path; a link placed in the folder is its owner's choice."""
    inner = folder / "inner"
    inner.mkdir()
    os.symlink(folder / "img" / "a.jpg", inner / "link.jpg")
    m = read_manifest(write(inner / "m.csv", "path,label\nlink.jpg,ant\n"))
    assert m.rows[0].path == inner / "link.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty manifest"),
        ("file,label\na.jpg,x\n", "no 'path' column"),
        ("path,label,labels\n", "both 'label' and 'labels'"),
        ("path,label\nimg/nope.jpg,x\n", "no usable rows; 1 bad row"),
    ],
)
def test_whole_file_errors(folder, text, message):
    with pytest.raises(UserError, match=message):
        read_manifest(write(folder / "m.csv", text))


def test_unreadable_and_missing_files(folder):
    (folder / "bin.csv").write_bytes(b"path,label\n\xff\xfe\xfa,x\n")
    with pytest.raises(UserError, match="cannot read manifest"):
        read_manifest(folder / "bin.csv")
    with pytest.raises(UserError, match="no such manifest"):
        read_manifest(folder / "none.csv")


def test_hostile_sizes_stay_bounded(folder):
    huge = folder / "huge.csv"
    with open(huge, "w") as f:
        f.write("path,label\n" + "x" * (MAX_LINE + 10) + ",y\n")
    with pytest.raises(UserError, match="huge.csv:2: line longer than"):
        read_manifest(huge)
    many = folder / "many.csv"
    many.write_text("path,label\n" + "".join(f"img/n{i}.jpg,=cmd()\n" for i in range(50_000)) + "img/a.jpg,=cmd()\n")
    m = read_manifest(many)
    assert m.bad_rows == 50_000 and len(m.problems) == 1000 and m.rows[0].labels == ("=cmd()",)


def test_is_manifest(folder):
    write(folder / "m.csv", "path\n")
    (folder / "dir.csv").mkdir()
    assert is_manifest(folder / "m.csv") and not is_manifest(folder / "dir.csv") and not is_manifest(folder / "img")
