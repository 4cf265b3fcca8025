"""Loading torchvision/timm/safetensors state dicts, inferring the architecture, and the project
checkpoint (round trip, training extras, atomic writes).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.model import MobileNetV3
from mnv3cli.registry.entries import TF, TIMM, TORCHVISION
from mnv3cli.training.state import capture_rng_state, restore_rng_state
from mnv3cli.weights.checkpoint import read_checkpoint, save_checkpoint
from mnv3cli.weights.infer import infer_arch, kernel_shapes
from mnv3cli.weights.loader import load_model

X = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))


def randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and affine terms, so a misplaced tensor changes the logits."""
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return module.eval()


def torchvision_small():
    import torchvision

    return randomized(torchvision.models.mobilenet_v3_small())


def timm_model(name):
    def build():
        import timm

        return randomized(timm.create_model(name))

    return build


def same_logits(loaded, reference):
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(X), reference(X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "build, wrap, filename, name, preprocess, arch",
    [
        (torchvision_small, lambda sd: sd, "tv.pth", "mobilenetv3_small_100", TORCHVISION, {"bn_eps": 1e-3}),
        (
            timm_model("mobilenetv3_small_100"),
            lambda sd: {"state_dict_ema": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
            "checkpoint.pth.tar.pt",
            "mobilenetv3_small_100",
            TIMM,
            {"bn_eps": 1e-5},
        ),
        (
            timm_model("mobilenetv3_small_075"),
            lambda sd: {"model": {f"_orig_mod.{k}": v for k, v in sd.items()}},
            "compiled.bin",
            "mobilenetv3_small_075",
            TIMM,
            {"bn_eps": 1e-5},
        ),
        (torchvision_small, lambda sd: {"model_ema": sd}, "ema.pt", "mobilenetv3_small_100", TORCHVISION, {}),
        # safetensors stores keys sorted: the execution order is rebuilt from the module names
        (
            timm_model("tf_mobilenetv3_small_minimal_100"),
            None,
            "tf_mobilenetv3_small_minimal_100.safetensors",
            "mobilenetv3_small_minimal_100",
            TF,
            {"tf_padding": True, "bn_eps": 1e-3},
        ),
        (timm_model("mobilenetv3_large_100"), None, "model.safetensors", "mobilenetv3_large_100", TIMM, {}),
        (torchvision_small, None, "tv.safetensors", "mobilenetv3_small_100", TORCHVISION, {}),
    ],
)
def test_foreign_state_dicts_load_with_identical_logits(tmp_path, build, wrap, filename, name, preprocess, arch):
    reference = build()
    path = tmp_path / filename
    if wrap is None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    else:
        torch.save(wrap(reference.state_dict()), path)
    loaded = load_model(path)
    assert loaded.card.model_name == name and loaded.card.preprocess == preprocess
    assert arch.items() <= loaded.card.arch.items()
    assert loaded.card.source == str(path) and len(loaded.card.sha256) == 64
    assert loaded.card.class_names[0] == "tench" and len(loaded.card.wordnet_ids) == 1000
    assert not loaded.model.training
    same_logits(loaded, reference)


@pytest.mark.parametrize(
    "name",
    [
        "tf_mobilenetv3_small_100-37f49e2b.pth",  # timm's release file
        "models--timm--tf_mobilenetv3_small_100.in1k/snapshots/0123abc/model.safetensors",  # HF hub cache
    ],
)
def test_published_file_brings_its_registry_settings(tmp_path, name):
    """A published file (unrenamed) gets its source's preprocessing and overrides: a tf_ port."""
    import timm
    from safetensors.torch import save_file

    reference = randomized(timm.create_model("tf_mobilenetv3_small_100"))
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    loaded = load_model(path)
    assert loaded.card.preprocess == TF and loaded.card.arch["tf_padding"] is True
    same_logits(loaded, reference)


@pytest.mark.parametrize(
    "size, width, minimal, classes",
    [
        ("small", 1.0, False, 1000),
        ("large", 0.75, False, 10),
        ("small", 1.0, True, 5),
        ("large", 1.0, True, 1000),
        ("small", 0.5, False, 3),
        ("large", 1.25, False, 2),
    ],
)
def test_architecture_inferred_from_shapes(size, width, minimal, classes):
    model = MobileNetV3(size, width=width, minimal=minimal, num_classes=classes)
    arch, n = infer_arch(kernel_shapes(model.state_dict()), "x.pt")
    assert arch == {"size": size, "width": width, "minimal": minimal} and n == classes


def test_inferred_custom_model_with_own_classes(tmp_path):
    model = randomized(MobileNetV3("small", width=0.5, num_classes=3))
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    loaded = load_model(tmp_path / "mine.pt")
    assert loaded.card.model_name == "custom" and loaded.card.arch["width"] == 0.5
    assert loaded.card.class_names == ("class_0", "class_1", "class_2") and loaded.card.wordnet_ids is None
    same_logits(loaded, model)


def test_weights_of_another_shape_name_the_offending_tensor(tmp_path):
    torch.save(MobileNetV3("small").state_dict(), tmp_path / "small.pt")
    with pytest.raises(UserError, match=r"small\.pt: holds \d+ tensors but the model needs \d+"):
        load_model(tmp_path / "small.pt", "mobilenetv3_large_100")
    torch.save(MobileNetV3("small", width=0.75).state_dict(), tmp_path / "s075.pt")
    with pytest.raises(
        UserError,
        match=r"s075\.pt: tensor 'stages\.2\.0\.project\.conv\.weight' has "
        r"shape \(32, 96, 1, 1\) but the model's '\S+' needs \(40, 96, 1, 1\)",
    ):
        load_model(tmp_path / "s075.pt", "mobilenetv3_small_100")


def test_num_classes_replaces_the_classifier(tmp_path):
    torch.save(MobileNetV3("small").state_dict(), tmp_path / "small.pt")
    loaded = load_model(tmp_path / "small.pt", num_classes=4)
    assert loaded.model.num_classes == 4 and loaded.card.class_names == tuple(f"class_{i}" for i in range(4))
    assert loaded.card.wordnet_ids is None and not loaded.model.classifier.training


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_project_checkpoint_round_trip(tmp_path, suffix):
    model = randomized(MobileNetV3("small", num_classes=3, tf_padding=True, dropout=0.1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()  # now it has momentum buffers to save
    extra = {"epoch": 4, "metrics": {"top1": 91.5}}
    if suffix == ".pt":
        extra |= {"optimizer": optimizer.state_dict(), "rng": capture_rng_state(), "ema": model.state_dict()}
    path = tmp_path / f"run{suffix}"
    save_checkpoint(
        path,
        model,
        model_name="mobilenetv3_small_100",
        arch=model.config,
        class_names=["ants", "bees", "wasps"],
        preprocess=TF,
        extra=extra,
    )

    record = read_checkpoint(path)
    assert record["model_name"] == "mobilenetv3_small_100" and record["num_classes"] == 3
    assert record["class_names"] == ["ants", "bees", "wasps"] and record["wordnet_ids"] is None
    assert record["arch"] == model.config and record["preprocess"] == TF.to_dict()
    assert record["extra"]["metrics"] == {"top1": 91.5}
    if suffix == ".pt":
        restored = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        restored.load_state_dict(record["extra"]["optimizer"])
        assert restored.state_dict()["state"][0]["momentum_buffer"].shape == (16, 3, 3, 3)

    loaded = load_model(path)
    assert loaded.card.model_name == "mobilenetv3_small_100" and loaded.card.class_names == ("ants", "bees", "wasps")
    assert loaded.card.preprocess == TF and loaded.card.arch == model.config
    assert loaded.meta["epoch"] == 4 and "optimizer" not in loaded.meta
    same_logits(loaded, model.eval())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_from_a_card_is_the_same_file_and_loads_to_the_same_card(tmp_path, suffix):
    """``card=`` and the old keywords write the same record; loading gives the card back (plus the
    file it was read from and its hash), so old and new files read alike."""
    from dataclasses import replace

    from mnv3cli.registry import ModelCard
    from mnv3cli.weights.download import sha256_file

    model = MobileNetV3("small", num_classes=2)
    card = ModelCard("custom", ["a", "b"], TF, None, "elsewhere", "0" * 64, model.config)
    save_checkpoint(tmp_path / f"card{suffix}", model, card=card, extra={"epoch": 1})
    save_checkpoint(
        tmp_path / f"old{suffix}",
        model,
        model_name="custom",
        arch=model.config,
        class_names=["a", "b"],
        preprocess=TF,
        extra={"epoch": 1},
    )
    new, old = read_checkpoint(tmp_path / f"card{suffix}"), read_checkpoint(tmp_path / f"old{suffix}")
    del new["state_dict"], old["state_dict"]
    assert new == old
    path = tmp_path / f"card{suffix}"
    assert load_model(path).card == replace(card, source=str(path), sha256=sha256_file(path))
    with pytest.raises(TypeError, match="card="):
        save_checkpoint(tmp_path / f"none{suffix}", model, model_name="custom")


def test_rng_state_survives_a_checkpoint(tmp_path):
    model = MobileNetV3("small", num_classes=2)
    save_checkpoint(
        tmp_path / "c.pt",
        model,
        model_name="custom",
        arch=model.config,
        class_names=["a", "b"],
        preprocess=TF,
        extra={"rng": capture_rng_state()},
    )
    draws = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(read_checkpoint(tmp_path / "c.pt")["extra"]["rng"])
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]


@pytest.mark.parametrize(
    "bad_extra, error",
    [
        ({"callback": lambda: 0}, Exception),  # cannot be pickled: fails mid-write
        ({"array": np.zeros(3)}, TypeError),  # pickles, but would not load with weights_only=True
    ],
)
def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, bad_extra, error):
    model = MobileNetV3("small", num_classes=2)
    path = tmp_path / "last.pt"
    kwargs = dict(model_name="custom", arch=model.config, class_names=["a", "b"], preprocess=TF)
    save_checkpoint(path, model, **kwargs, extra={"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(error):
        save_checkpoint(path, model, **kwargs, extra={"epoch": 2, **bad_extra})
    assert path.read_bytes() == before and read_checkpoint(path)["extra"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_read_checkpoint_refuses_a_bare_state_dict(tmp_path):
    torch.save(MobileNetV3("small").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(UserError, match="not an mnv3 checkpoint"):
        read_checkpoint(tmp_path / "bare.pt")
