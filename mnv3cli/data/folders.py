"""Labelled image folders -> ``[(path, class index)]`` in the *model's* class order.

Folder order means nothing to a trained model: an ImageNet sample holding 500 of the 1000 classes
sorted alphabetically would shift every label after the first gap. So each folder (or each label of a
``labels.csv``) is matched by name against the model's own class list: a WordNet id (``n01440764``),
the class name itself (``golden retriever``, as saved in checkpoints from ``mnv3 train``), or the
same name spelled with ``_``/``-`` or another case. Anything left unmatched stops the run with the
list of names, because silently dropping a class would report an accuracy for the wrong data set.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .images import IMAGE_EXTENSIONS, is_image_file

SHOWN_NAMES = 20  # unmatched names listed in an error before "... and N more"


@dataclass(frozen=True)
class LabelledImages:
    """Samples ``(path, model class index)`` (folder by folder with sorted names, or in labels-file
    order) and how they were labelled."""

    samples: list[tuple[str, int]]
    layout: str  # "wordnet-id folders" | "class-name folders" | "labels file"

    @property
    def classes(self) -> list[int]:
        """Model class indices that occur as ground truth, ascending."""
        return sorted({target for _, target in self.samples})


def _as_text(name: str) -> str:
    """A file name as the text it spells. Under a C locale Python reads the UTF-8 bytes of a folder
    ``café`` as ``'caf\\udcc3\\udca9'`` (surrogate escapes), which no class name equals; names are
    UTF-8 almost everywhere, so such bytes are read as UTF-8 (other names are left as they are)."""
    try:
        return os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return name


def _normal(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


class ClassMatcher:
    """Resolves a folder name or label to a model class index (exact name, WordNet id, loose name)."""

    def __init__(self, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None) -> None:
        self.num_classes = len(class_names)
        self.exact = {name: i for i, name in enumerate(class_names)}
        self.wnid = {w: i for i, w in enumerate(wordnet_ids or ())}
        self.loose: dict[str, list[int]] = {}
        for i, name in enumerate(class_names):
            self.loose.setdefault(_normal(name), []).append(i)

    def match(self, name: str, allow_index: bool = False) -> tuple[int, str] | None:
        """``(index, how)`` with how in {"wordnet-id", "class-name", "index"}; None if nothing fits."""
        name = _as_text(name).strip()
        if name in self.exact:
            return self.exact[name], "class-name"
        if name in self.wnid:
            return self.wnid[name], "wordnet-id"
        candidates = self.loose.get(_normal(name), [])
        if len(candidates) > 1:
            raise UserError(
                f"class {name!r} is ambiguous: it matches model classes {candidates}; "
                "use WordNet ids or class indices instead"
            )
        if candidates:
            return candidates[0], "class-name"
        if allow_index and name.isdigit() and int(name) < self.num_classes:
            return int(name), "index"
        return None

    def unmatched_error(self, where: str, names: Sequence[str], hint: str = "") -> UserError:
        shown = ", ".join(repr(n) for n in names[:SHOWN_NAMES])
        more = f" ... and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
        known = "its class names or WordNet ids" if self.wnid else "its class names"
        return UserError(
            f"{where}: {len(names)} class(es) match nothing in the model "
            f"({self.num_classes} classes; expected {known}): {shown}{more}{hint}"
        )


@dataclass(frozen=True)
class ScannedFolder:
    """Images and the class names they are filed under, before any model is involved."""

    root: Path
    items: list[tuple[str, str]]  # (image path, class as written: folder name or label)
    labels: Path | None  # the labels file, or None for class subfolders
    notes: tuple[str, ...] = ()  # what a person should know (duplicate rows dropped), for stderr
    problems: tuple[str, ...] = ()  # bad rows of a manifest, "FILE:LINE: what": a partial failure
    layout: str = ""  # "manifest" for one (see data/labelled.py); else told by how the names matched


def scan_folder(root: str | os.PathLike, labels: str | os.PathLike | None = None) -> ScannedFolder:
    """Find the images under ``root`` and their class names (cheap: run it before loading a model).

    Without ``labels``: one subfolder per class (images found recursively inside it, as
    torchvision's ImageFolder does; hidden entries and folders without images are ignored).
    With ``labels``: a CSV of ``path,label`` rows (optional header, ``#`` comments; paths relative
    to ``root``; label = class name, WordNet id or class index).
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    if labels is not None:
        items, notes = _read_labels_file(root, Path(labels))
        return ScannedFolder(root, items, Path(labels), notes)
    return ScannedFolder(root, _class_folders(root), None)


def match_classes(
    scanned: ScannedFolder, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None
) -> LabelledImages:
    """Map every class name of ``scanned`` to the model's index; unmatched names are one error."""
    matcher = ClassMatcher(class_names, wordnet_ids)
    by_name: dict[str, tuple[int, str] | None] = {}
    for _, name in scanned.items:
        if name not in by_name:
            by_name[name] = matcher.match(name, allow_index=scanned.labels is not None)
    unmatched = [name for name, found in by_name.items() if found is None]
    if unmatched and scanned.labels is not None:
        raise matcher.unmatched_error(f"{scanned.labels}: labels", unmatched)
    if unmatched:
        root = scanned.root
        nested = all(any(e.is_dir() for e in os.scandir(root / n)) for n in unmatched)
        hint = f" (these folders hold subfolders: did you mean {root / unmatched[0]}?)" if nested else ""
        raise matcher.unmatched_error(f"{root}: subfolder names", unmatched, hint)
    matched = {name: found for name, found in by_name.items() if found is not None}
    kinds = {how for _, how in matched.values()}
    layout = scanned.layout or (
        "labels file"
        if scanned.labels is not None
        else "wordnet-id folders"
        if kinds == {"wordnet-id"}
        else "class-name folders"
    )
    return LabelledImages([(path, matched[name][0]) for path, name in scanned.items], layout)


def find_samples(
    root: str | os.PathLike,
    class_names: Sequence[str],
    wordnet_ids: Sequence[str] | None = None,
    labels: str | os.PathLike | None = None,
) -> LabelledImages:
    """:func:`scan_folder` then :func:`match_classes`."""
    return match_classes(scan_folder(root, labels), class_names, wordnet_ids)


def images_under(folder: str | os.PathLike) -> list[str]:
    """Every image file under ``folder``, recursively, folder by folder with sorted names.

    The one folder walk (``predict``'s folder arguments and ``evaluate``'s class folders): hidden
    files and folders (``.name``) are skipped, symlinked folders are followed, and a link back up
    the tree is entered once, so its images are listed once and the walk ends.
    """
    found: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(os.fspath(folder), followlinks=True):
        if os.path.realpath(dirpath) in seen:  # a link back up the tree: its images are listed already
            dirnames[:] = []
            continue
        seen.add(os.path.realpath(dirpath))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".") and is_image_file(f))
    return found


def _class_folders(root: Path) -> list[tuple[str, str]]:
    entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    items = [(path, e.name) for e in entries if e.is_dir() for path in images_under(e.path)]
    if not items:
        if any(e.is_file() and is_image_file(e.name) for e in entries):
            raise UserError(
                f"{root}: images but no class subfolders; sort them into one folder per "
                "class, or pass --labels labels.csv (rows: path,label)"
            )
        raise UserError(
            f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} files in class subfolders)"
        )
    return items


def _read_labels_file(root: Path, labels: Path) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """The ``(path, label)`` rows of a labels CSV, and notes on rows dropped.

    A path must stay inside ``root`` (no absolute paths, no ``..`` out of it): a labels file is
    data, and must not make the tool read ``/etc/passwd``. A path listed twice is counted once
    (the first row wins); a note says so, and names the rows whose labels disagree."""
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{labels}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{labels}: cannot read labels file ({exc})") from None
    # csv reads the text itself (newline=""): a quoted path holding a line break is one path, not
    # the start of another row; each row is numbered by the line it ends on
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = [
        (reader.line_num, r) for r in reader if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")
    ]
    if rows and [c.strip().casefold() for c in rows[0][1][:2]] == ["path", "label"]:
        rows = rows[1:]
    first: dict[str, tuple[int, str]] = {}  # normalised path -> (line, label)
    items, repeated, conflicts = [], 0, []
    for line, row in rows:
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise UserError(f"{labels}:{line}: expected 'path,label', got {','.join(row)!r}")
        name, label = row[0].strip(), row[1].strip()
        relative = os.path.normpath(name)
        if os.path.isabs(name) or relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise UserError(f"{labels}:{line}: {name!r} is outside {root}; paths must stay inside the evaluated folder")
        if relative in first:
            repeated += 1
            if first[relative][1] != label:
                conflicts.append(f"{name} (line {first[relative][0]}: {first[relative][1]}, line {line}: {label})")
            continue
        first[relative] = (line, label)
        items.append((str(root / relative), label))
    notes = []
    if repeated:
        note = f"{labels}: {repeated} repeated path(s) counted once (the first row wins)"
        if conflicts:
            more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
            note += f"; conflicting labels: {'; '.join(conflicts[:5])}{more}"
        notes.append(note)
    if not items:
        raise UserError(f"{labels}: no 'path,label' rows")
    if not any(os.path.exists(path) for path, _ in items):
        raise UserError(
            f"{labels}: none of its {len(items)} paths exist under {root} "
            "(relative paths are read from the evaluated folder)"
        )
    return items, tuple(notes)
