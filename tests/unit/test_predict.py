"""``mnv3 predict``: input expansion, the predict engine on real photos, bad inputs, output formats.

The int8 TFLite model is loaded once for the engine tests; only a few tests run the CLI itself.
"""

from __future__ import annotations

import functools
import http.server
import io
import threading

import pytest
from PIL import Image

from mnv3cli.data.images import EncodedImage
from mnv3cli.data.inputs import InputError, expand_inputs
from mnv3cli.errors import UserError

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture
def tree(tmp_path):
    """photos/{b.png, a.jpg, notes.txt, sub/c.webp, sub/deeper/d.JPEG}, an empty folder, a literal [1].jpg."""
    photos = tmp_path / "photos"
    (photos / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for rel in ("b.png", "a.jpg", "sub/c.webp", "sub/deeper/d.JPEG", "odd[1].jpg"):
        (photos / rel).write_bytes(b"x")
    (photos / "notes.txt").write_text("not an image")
    return tmp_path


def test_directories_recurse_over_image_files_only_sorted(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos"]) == [
        "photos/a.jpg",
        "photos/b.png",
        "photos/odd[1].jpg",
        "photos/sub/c.webp",
        "photos/sub/deeper/d.JPEG",
    ]


def test_globs_are_expanded_by_the_tool_including_recursive(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos/*.jpg"]) == ["photos/a.jpg", "photos/odd[1].jpg"]
    # ** matches folders and files alike; each image appears once
    assert expand_inputs(["photos/**"]) == expand_inputs(["photos"])
    assert expand_inputs(["photos/**/*.webp", "photos/*.txt"]) == [
        "photos/sub/c.webp",
        InputError("photos/*.txt", "photos/*.txt: no image files match this pattern"),
    ]
    # an existing file whose name looks like a pattern is taken literally
    assert expand_inputs(["photos/odd[1].jpg"]) == ["photos/odd[1].jpg"]


def test_explicit_paths_are_kept_for_decoding_to_report(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos/notes.txt", "missing.jpg", "empty"]) == [
        "photos/notes.txt",
        "missing.jpg",
        InputError("empty", "empty: no image files in this directory"),
    ]


def test_stdin_lists_paths_one_per_line(tree, monkeypatch):
    monkeypatch.chdir(tree)
    stdin = io.StringIO("photos/b.png\n\nphotos/sub\r\n")
    assert expand_inputs(["photos/a.jpg", "-"], stdin=stdin) == [
        "photos/a.jpg",
        "photos/b.png",
        "photos/sub/c.webp",
        "photos/sub/deeper/d.JPEG",
    ]


def test_nothing_left_to_classify_is_a_user_error(tree, monkeypatch):
    monkeypatch.chdir(tree)
    with pytest.raises(
        UserError,
        match=r"nothing to classify: nope\*\.jpg: no image files match.*"
        r"empty: no image files in this directory",
    ):
        expand_inputs(["nope*.jpg", "empty"])
    with pytest.raises(UserError, match="no inputs given on stdin"):
        expand_inputs(["-"], stdin=io.StringIO("\n"))


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server (loopback only) serving ``tmp_path/www``; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_are_downloaded_and_failures_become_records(http_root, cat_photo):
    www, base = http_root
    (www / "cat.jpg").write_bytes(cat_photo.read_bytes())
    got = expand_inputs([f"{base}/cat.jpg", f"{base}/missing.jpg"])
    assert got[0] == EncodedImage(f"{base}/cat.jpg", cat_photo.read_bytes())
    assert isinstance(got[1], InputError) and "HTTP 404" in got[1].message


@pytest.fixture(scope="module")
def int8(bundled_weights):
    """(backend, class names, preprocessing) of the int8 model, loaded once for this module."""
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.weights.loader import load_model

    loaded = load_model(str(bundled_weights))
    return TorchBackend(loaded.model), loaded.card.class_names, loaded.card.preprocess


def run_predict(int8, sources, **kwargs):
    from mnv3cli.prediction.predict import predict

    backend, class_names, preprocess = int8
    return list(predict(sources, backend, preprocess, class_names, **kwargs))


def top(result, k=5):
    assert result.error is None, result.error
    return [p.index for p in result.predictions[:k]]


def test_real_photos_get_their_classes(int8, cat_photo, coffee_photo):
    cat, coffee = run_predict(int8, [str(cat_photo), str(coffee_photo)])
    assert CAT_CLASSES & set(top(cat)), cat
    assert COFFEE_CLASSES & set(top(coffee)), coffee
    assert "cat" in cat.predictions[0].label
    probs = [p.probability for p in cat.predictions]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_exif_rotated_copy_gets_the_same_top1(int8, cat_photo, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated = tmp_path / "chelsea-rotated.jpg"
    Image.open(cat_photo).transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=95)
    upright, turned = run_predict(int8, [str(cat_photo), str(rotated)])
    assert top(turned, 1) == top(upright, 1)


def test_downloaded_image_is_classified(int8, http_root, cat_photo):
    www, base = http_root
    (www / "cat.jpg").write_bytes(cat_photo.read_bytes())
    (result,) = run_predict(int8, expand_inputs([f"{base}/cat.jpg"]))
    assert result.path == f"{base}/cat.jpg" and CAT_CLASSES & set(top(result))


def test_bad_inputs_become_records_in_order_and_the_rest_is_classified(int8, bad_corpus, monkeypatch):
    root, expected = bad_corpus
    monkeypatch.chdir(root)
    seen = []
    results = run_predict(
        int8, expand_inputs(["corpus", "empty-dir", "missing.jpg"]), batch_size=2, workers=2, progress=seen.append
    )
    assert [r.path.rsplit("/", 1)[-1] for r in results] == list(expected)
    assert sum(seen) == len(expected)
    for result, reason in zip(results, expected.values(), strict=False):
        if reason is None:
            assert result.error is None and len(result.predictions) == 5
        else:
            assert result.error.startswith(result.path + ": ") and reason in result.error
    assert CAT_CLASSES & set(top(results[0])) and COFFEE_CLASSES & set(top(results[6]))


def test_top_k_and_fast_decode_off(int8, cat_photo):
    (fast,) = run_predict(int8, [str(cat_photo)], top_k=1)
    (exact,) = run_predict(int8, [str(cat_photo)], top_k=1000, fast_decode=False)
    assert len(fast.predictions) == 1 and len(exact.predictions) == 1000
    assert top(fast, 1) == top(exact, 1)
