"""The registry names every model, resolves weights tags, and create_model builds from it."""

from __future__ import annotations

import pytest

import mnv3cli
from mnv3cli.errors import UserError
from mnv3cli.registry import (
    MODELS,
    default_model,
    find_weight_source,
    get_entry,
    get_weight_source,
    list_models,
)
from mnv3cli.registry.imagenet import class_names, wordnet_ids

EXPECTED = [
    "mobilenetv3_small_100",
    "mobilenetv3_small_075",
    "mobilenetv3_large_100",
    "mobilenetv3_large_075",
    "mobilenetv3_small_minimal_100",
    "mobilenetv3_large_minimal_100",
]


def test_every_required_model_is_registered_with_aliases():
    assert list_models() == EXPECTED
    assert get_entry("small").name == "mobilenetv3_small_100"
    assert get_entry("large").name == "mobilenetv3_large_100"
    assert mnv3cli.list_models() == EXPECTED


def test_unknown_model_is_a_user_error_listing_choices():
    with pytest.raises(UserError, match="unknown model 'medium'.*mobilenetv3_small_100"):
        get_entry("medium")


@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e.name)
def test_each_entry_has_weights_with_preprocessing_and_accuracy(entry):
    assert entry.weights, entry.name
    for w in entry.weights:
        if w.bundled:  # inside the package, no URL or published accuracy: see test_bundled.py
            continue
        assert w.kind in {"torchvision", "timm", "tflite"}
        assert w.url.startswith("https://")
        assert w.preprocess.input_size == 224 and w.preprocess.resize >= 224
        assert w.top1 is not None and 50 < w.top1 < 80
        if w.kind == "tflite":  # TF checkpoints: background class, TF padding, [-1, 1] inputs
            assert w.num_classes == 1001 and w.arch == {"tf_padding": True}
            assert w.preprocess.mean == (0.5, 0.5, 0.5)
        if w.kind in {"torchvision", "timm"}:
            assert w.hash_prefix and len(w.hash_prefix) == 8


def test_weight_tags_resolve():
    small = get_entry("small")
    assert get_weight_source(small, "imagenet") is small.default_weights
    assert get_weight_source(small, "torchvision:IMAGENET1K_V1").url.endswith("047dcff4.pth")
    assert get_weight_source(small, "IMAGENET1K_V1").tag == "torchvision:IMAGENET1K_V1"
    assert get_weight_source(small, "timm:mobilenetv3_small_100").tag == "timm:mobilenetv3_small_100.lamb_in1k"
    large = get_entry("large")
    assert get_weight_source(large, "IMAGENET1K_V2").preprocess.resize == 232
    with pytest.raises(UserError, match="no weights 'IMAGENET1K_V9'"):
        get_weight_source(large, "IMAGENET1K_V9")
    entry, source = find_weight_source("tflite:v3-small_224_1.0_uint8")
    assert entry.name == "mobilenetv3_small_100" and source.url.endswith(".tgz")
    assert find_weight_source("nope:nothing") is None


def test_default_model_is_the_most_accurate():
    best = default_model()
    assert best.default_weights.top1 == max(m.default_weights.top1 for m in MODELS)
    assert best.name == "mobilenetv3_large_100"


def test_class_names_and_wordnet_ids_come_from_installed_libraries():
    names, wnids = class_names(), wordnet_ids()
    assert len(names) == len(wnids) == 1000
    assert names[0] == "tench" and wnids[0] == "n01440764" and list(wnids) == sorted(wnids)
    assert names[281] == "tabby" and wnids[281] == "n02123045"


def test_create_model_builds_registered_architectures():
    model = mnv3cli.create_model("small", num_classes=10, dropout=0.0)
    assert model.num_classes == 10 and model.dropout.p == 0.0
    assert isinstance(model, mnv3cli.MobileNetV3)
    large = mnv3cli.create_model("mobilenetv3_large_075")
    assert sum(p.numel() for p in large.parameters()) == get_entry("mobilenetv3_large_075").params


def test_preprocess_round_trips_through_its_dict_exactly():
    from mnv3cli.registry import Preprocess

    p = Preprocess(input_size=192, resize=219, interpolation="bicubic", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    d = p.to_dict()
    assert d == {
        "input_size": 192,
        "resize": 219,
        "interpolation": "bicubic",
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
    }
    back = Preprocess.from_dict({**d, "input_size": "192", "resize": 219.0})  # JSON may give strings
    assert back == p and isinstance(back.input_size, int) and isinstance(back.resize, int)
    assert isinstance(back.mean, tuple) and isinstance(back.std, tuple)


def test_preprocess_at_another_resolution_keeps_the_crop_ratio():
    from mnv3cli.registry import Preprocess

    p = Preprocess(input_size=224, resize=256, interpolation="bicubic")
    assert p.at_resolution(None) is p and p.at_resolution(224) is p
    q = p.at_resolution(288)
    assert (q.input_size, q.resize, q.interpolation, q.mean) == (288, 329, "bicubic", p.mean)
    assert p.at_resolution(97).resize == round(97 * 256 / 224) == 111
