"""Grad-CAM (``mnv3 explain``): does the heatmap of "tabby" sit on the cat?

How it decides: scikit-image's *chelsea* (a tabby cat) is pasted at a known place onto a brick wall
(scikit-image's *brick*), so the cat's box in the crop the model sees is known exactly (a quarter
of it). The map passes when at least 60 % of its mass lies inside that box, more than twice the
box's share of the area: most of the weight on the cat, not on the background. Two placements, so
a map that always favours one corner cannot pass.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from mnv3cli.errors import UserError
from mnv3cli.inference.explain import INSTALL_HINT, explain, require_grad_cam
from mnv3cli.weights.loader import load_model

pytest.importorskip("pytorch_grad_cam", reason="mnv3 explain needs the grad-cam extra")

CANVAS, CAT = (600, 400), (300, 200)  # the crop: short side 400 -> 256, centre 224 (x 125..475, y 25..375)


@pytest.fixture(scope="module")
def int8(bundled_weights):
    return load_model(bundled_weights)


def _scene(path, at: tuple[int, int]):
    from skimage import data

    canvas = Image.fromarray(data.brick()).convert("RGB").resize(CANVAS)
    canvas.paste(Image.fromarray(data.chelsea()).resize(CAT), at)
    canvas.save(path, quality=95)
    scale = 256 / CANVAS[1]
    x0, y0 = round(at[0] * scale - 80), round(at[1] * scale - 16)  # 600x400 -> 384x256, crop at (80, 16)
    box = np.zeros((224, 224), bool)
    box[max(y0, 0) : y0 + round(CAT[1] * scale), max(x0, 0) : x0 + round(CAT[0] * scale)] = True
    return box


@pytest.mark.parametrize("at", [(300, 200), (0, 0)], ids=["bottom-right", "top-left"])
def test_the_map_of_tabby_is_on_the_cat(int8, tmp_path, at):
    box = _scene(tmp_path / "scene.jpg", at)
    tabby = int8.card.class_names.index("tabby")
    result = explain(int8.model, int8.card.preprocess, tmp_path / "scene.jpg", tabby)
    inside = float(result.heatmap[box].sum() / result.heatmap.sum())
    print(
        f"\nGrad-CAM of tabby, cat at {at}: {100 * inside:.1f} % of the mass on the cat "
        f"({100 * box.mean():.0f} % of the area)"
    )
    assert result.target == tabby and result.heatmap.shape == (224, 224)
    assert inside >= 0.6 and inside > 2 * box.mean()
    assert {int8.card.class_names[c] for c, _ in result.top5[:3]} >= {"Egyptian cat", "tabby"}
    assert result.overlay().size == (224, 224)


def test_the_top1_is_explained_by_default_and_temperature_only_moves_probabilities(int8, cat_photo):
    plain = explain(int8.model, int8.card.preprocess, cat_photo)
    warm = explain(int8.model, int8.card.preprocess, cat_photo, temperature=2.0)
    assert plain.target == plain.top5[0][0] == warm.target
    assert warm.top5[0][1] < plain.top5[0][1]
    np.testing.assert_allclose(plain.heatmap, warm.heatmap, atol=1e-5)


def test_a_missing_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    with pytest.raises(UserError, match="pip install 'mnv3cli\\[explain\\]'"):
        require_grad_cam()
    assert "grad-cam" in INSTALL_HINT


def test_the_table_header_has_no_trailing_spaces_and_the_path_is_whole(capsys):
    from mnv3cli.cli.context import AppContext
    from mnv3cli.cli.explain import _print

    path = "photos/" + "a-long-folder-name/" * 5 + "coffee.jpg"
    _print(AppContext(), path, [{"label": "espresso", "index": 967, "probability": 0.9377}])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == path
    assert [line for line in lines if line != line.rstrip()] == []
    assert any("espresso" in line and "93.77 %" in line for line in lines)
