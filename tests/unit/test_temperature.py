"""Temperature scaling end to end in-process: the card field, checkpoints that carry it, the module
that applies it, and ``calibrate_weights`` on a model whose logits are known to be too sharp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.evaluation import spread_subset
from mnv3cli.inference import open_runtime
from mnv3cli.model import MobileNetV3, TemperatureScaled, with_temperature
from mnv3cli.registry import ModelCard, Preprocess
from mnv3cli.training.calibrate import calibrate_weights
from mnv3cli.weights.checkpoint import read_checkpoint, save_checkpoint
from mnv3cli.weights.loader import load_model

PREPROCESS = Preprocess(input_size=32, resize=32)


def _tiny(classes: int = 3) -> MobileNetV3:
    torch.manual_seed(0)
    return MobileNetV3("small", classes=classes, width=0.5).eval()


def _card(temperature: float = 1.0) -> ModelCard:
    return ModelCard(
        "mobilenetv3_small_050",
        ["a", "b", "c"],
        PREPROCESS,
        arch={"size": "small", "width": 0.5},
        temperature=temperature,
    )


def test_card_round_trips_and_a_new_head_resets_the_temperature():
    card = _card(0.7)
    assert ModelCard.from_dict(card.to_dict()) == card
    assert ModelCard.from_dict({k: v for k, v in card.to_dict().items() if k != "temperature"}).temperature == 1.0
    assert card.with_classes(["x", "y"]).temperature == 1.0


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoints_carry_the_temperature_and_every_backend_applies_it(tmp_path, suffix):
    model = _tiny()
    plain, calibrated = tmp_path / f"plain{suffix}", tmp_path / f"calibrated{suffix}"
    save_checkpoint(plain, model, card=_card(), arch={"size": "small", "width": 0.5})
    save_checkpoint(calibrated, model, card=_card(2.5), arch={"size": "small", "width": 0.5})
    assert "temperature" not in read_checkpoint(plain)  # uncalibrated files are as before
    assert read_checkpoint(calibrated)["temperature"] == 2.5
    assert load_model(calibrated).card.temperature == 2.5
    batch = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    raw = open_runtime(str(plain), backend="torch").backend(batch)
    for backend in ("torch", "onnxruntime"):
        scaled = open_runtime(str(calibrated), backend=backend).backend(batch)
        np.testing.assert_allclose(scaled, raw / 2.5, rtol=1e-4, atol=1e-5)


def test_a_bad_temperature_is_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.pt"
    save_checkpoint(path, _tiny(), card=_card(2.0), arch={"size": "small", "width": 0.5})
    record = torch.load(path, weights_only=True)
    for bad in (0.0, -1.0, float("inf"), "2", True):
        record["temperature"] = bad
        torch.save(record, path)
        with pytest.raises(UserError, match="bad temperature"):
            load_model(path)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_the_scaled_module_keeps_the_order_and_scripts():
    model = _tiny()
    x = torch.randn(4, 3, 32, 32)
    wrapped = with_temperature(model, 0.5)
    assert isinstance(wrapped, TemperatureScaled) and with_temperature(model, 1.0) is model
    torch.testing.assert_close(wrapped(x), model(x) / 0.5)
    assert (wrapped(x).argmax(1) == model(x).argmax(1)).all()
    scripted = torch.jit.script(wrapped)
    torch.testing.assert_close(scripted(x), wrapped(x))


def test_calibrate_weights_fits_on_raw_logits_and_lowers_the_nll(int8_tflite, imagenet_dev, tmp_path):
    """Google's int8 model is underconfident on these images (it is right more often than it says),
    so the fit sharpens it (T < 1); calibrating the output again finds the same temperature, since
    the fit reads raw logits, not ones already divided."""
    from mnv3cli.data.folders import match_classes, scan_folder

    loaded = load_model(int8_tflite)
    found = match_classes(scan_folder(imagenet_dev, None), loaded.card.class_names, loaded.card.wordnet_ids)
    samples = spread_subset(found.samples, 60)
    out = tmp_path / "calibrated.pt"
    fit = calibrate_weights(int8_tflite, samples, out, workers=1)
    assert 0.3 < fit.temperature < 1 and fit.nll_after < fit.nll_before and fit.ece_after < fit.ece_before
    assert fit.images == 60
    assert read_checkpoint(out)["temperature"] == pytest.approx(fit.temperature)
    assert read_checkpoint(out)["extra"]["calibration"]["temperature"] == pytest.approx(
        fit.temperature, rel=1e-3
    )  # 4 significant digits
    again = calibrate_weights(out, samples, tmp_path / "again.pt", workers=1)
    assert again.temperature == pytest.approx(fit.temperature, rel=1e-5)
    assert again.top1 == fit.top1
