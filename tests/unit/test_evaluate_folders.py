"""Folder layouts of ``mnv3 evaluate`` mapped onto the model's classes (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mnv3cli.data.folders import find_samples, scan_folder
from mnv3cli.errors import UserError
from mnv3cli.registry import imagenet

TENCH, TABBY, GOLDEN = 0, 281, 207  # ImageNet class indices


WNID = {TENCH: "n01440764", TABBY: "n02123045", GOLDEN: "n02099601"}


@pytest.fixture(scope="module")
def names() -> tuple[str, ...]:
    return imagenet.class_names()


@pytest.fixture(scope="module")
def wnids() -> tuple[str, ...]:
    return imagenet.wordnet_ids()


def make_images(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / name)
        paths.append(folder / name)
    return paths


def test_wordnet_subset_maps_by_id_not_by_folder_order(tmp_path, names, wnids):
    make_images(tmp_path / WNID[TABBY], "b.jpg", "a.png")
    make_images(tmp_path / WNID[TENCH], "t.jpg")
    make_images(tmp_path / WNID[GOLDEN] / "nested", "g.jpeg")
    (tmp_path / WNID[TENCH] / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    found = find_samples(tmp_path, names, wnids)
    assert found.layout == "wordnet-id folders"
    assert [(Path(p).name, c) for p, c in found.samples] == [
        ("t.jpg", TENCH),
        ("g.jpeg", GOLDEN),
        ("a.png", TABBY),
        ("b.jpg", TABBY),
    ]
    assert found.classes == [TENCH, GOLDEN, TABBY]


def test_class_name_folders_from_a_training_checkpoint(tmp_path):
    make_images(tmp_path / "ants", "1.jpg")
    make_images(tmp_path / "bees", "2.jpg", "3.jpg")
    found = find_samples(tmp_path, ["bees", "ants"])  # the checkpoint's order, not the folders'
    assert found.layout == "class-name folders"
    assert [c for _, c in found.samples] == [1, 0, 0]


def test_folders_named_like_imagenet_classes_any_spelling(tmp_path, names, wnids):
    make_images(tmp_path / "golden_retriever", "g.jpg")
    make_images(tmp_path / "Tabby", "t.jpg")
    make_images(tmp_path / "tench", "f.jpg")
    found = find_samples(tmp_path, names, wnids)
    assert found.layout == "class-name folders"
    assert sorted(c for _, c in found.samples) == [TENCH, GOLDEN, TABBY]


def test_unmatched_class_folders_are_listed(tmp_path, names, wnids):
    make_images(tmp_path / "tench", "f.jpg")
    make_images(tmp_path / "cats", "c.jpg")
    make_images(tmp_path / "n99999999", "x.jpg")
    with pytest.raises(UserError, match=r"2 class\(es\) match nothing.*'cats', 'n99999999'"):
        find_samples(tmp_path, names, wnids)


def test_split_root_hints_at_its_subfolders(tmp_path):
    make_images(tmp_path / "train" / "ants", "1.jpg")
    make_images(tmp_path / "val" / "ants", "2.jpg")
    with pytest.raises(UserError, match=r"did you mean .*train"):
        find_samples(tmp_path, ["ants", "bees"])


def test_ambiguous_loose_name_is_an_error(tmp_path):
    make_images(tmp_path / "crane", "1.jpg")
    with pytest.raises(UserError, match="ambiguous"):
        find_samples(tmp_path, ["Crane", "crane_", "heron"])


def test_labels_csv_with_names_wordnet_ids_and_indices(tmp_path, names, wnids):
    make_images(tmp_path, "a.jpg", "b.jpg", "c.jpg", "unlisted.jpg")
    (tmp_path / "labels.csv").write_text(
        "path,label\n# a comment\na.jpg,tabby\n\nb.jpg, n01440764\nc.jpg,207\nmissing.jpg,tench\n"
    )
    found = find_samples(tmp_path, names, wnids, labels=tmp_path / "labels.csv")
    assert found.layout == "labels file"
    assert [(Path(p).name, c) for p, c in found.samples] == [
        ("a.jpg", TABBY),
        ("b.jpg", TENCH),
        ("c.jpg", GOLDEN),
        ("missing.jpg", TENCH),
    ]


def test_labels_csv_errors(tmp_path, names, wnids):
    make_images(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("a.jpg,unicorn\nb.jpg,1000\nc.jpg,tench\n")
    with pytest.raises(UserError, match=r"labels.csv: labels: 2 class\(es\).*'unicorn', '1000'"):
        find_samples(tmp_path, names, wnids, labels=labels)
    labels.write_text("a.jpg,tench\nb.jpg\n")
    with pytest.raises(UserError, match=r"labels.csv:2: expected 'path,label'"):
        scan_folder(tmp_path, labels)
    labels.write_text("x.jpg,tench\ny.jpg,tench\n")
    with pytest.raises(UserError, match="none of its 2 paths exist"):
        scan_folder(tmp_path, labels)
    with pytest.raises(UserError, match="no such labels file"):
        scan_folder(tmp_path, tmp_path / "nope.csv")


@pytest.mark.parametrize("row", ["../outside.jpg", "/etc/passwd", "sub/../../outside.jpg", ".."])
def test_labels_csv_paths_outside_the_folder_are_refused(tmp_path, row):
    """A labels file is data: it must not make the tool read files outside the evaluated folder."""
    root = tmp_path / "data"
    make_images(root, "a.jpg")
    make_images(tmp_path, "outside.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"a.jpg,tench\n{row},tench\n")
    with pytest.raises(UserError) as err:
        scan_folder(root, labels)
    assert str(err.value) == (f"{labels}:2: {row!r} is outside {root}; paths must stay inside the evaluated folder")


def test_labels_csv_repeated_paths_count_once_and_conflicts_are_named(tmp_path, names, wnids):
    make_images(tmp_path, "a.jpg", "b.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("a.jpg,tench\nb.jpg,tench\n./a.jpg,tench\nb.jpg,goldfish\n")
    scanned = scan_folder(tmp_path, labels)
    assert scanned.items == [(str(tmp_path / "a.jpg"), "tench"), (str(tmp_path / "b.jpg"), "tench")]
    assert scanned.notes == (
        f"{labels}: 2 repeated path(s) counted once (the first row wins); "
        "conflicting labels: b.jpg (line 2: tench, line 4: goldfish)",
    )
    found = find_samples(tmp_path, names, wnids, labels=labels)
    assert len(found.samples) == 2


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.mkdir(), "no images found"),
        (
            lambda root: (root / "ants").mkdir(parents=True) or (root / "ants" / "notes.txt").write_text("x"),
            "no images found",
        ),
        (lambda root: make_images(root, "a.jpg"), "images but no class subfolders; .*--labels"),
        (lambda root: root.write_text("a file"), "not a folder"),
    ],
)
def test_missing_empty_or_imageless_folder(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        scan_folder(root)


def test_a_symlink_loop_in_a_class_folder_does_not_repeat_its_images(tmp_path):
    from PIL import Image

    from mnv3cli.data.folders import scan_folder

    (tmp_path / "tabby").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "tabby" / "a.png")
    (tmp_path / "tabby" / "up").symlink_to("..")  # tabby/up/tabby/up/... until ELOOP
    assert [name for _, name in scan_folder(tmp_path).items] == ["tabby"]
