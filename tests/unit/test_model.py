"""The network is the paper's, and the same network as torchvision's and timm's."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnv3cli.model import MobileNetV3, make_divisible
from mnv3cli.model.layers import InvertedResidual, SqueezeExcite
from mnv3cli.registry import MODELS
from mnv3cli.weights.remap import remap_state_dict


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that a mis-mapped BN changes the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    model.eval()
    # Scale the classifier so logits have a standard deviation of ~5: large enough that a wrong
    # mapping shows, small enough that a 1e-4 bound is meaningful in float32.
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        std = model(torch.randn(2, 3, 224, 224, generator=g)).std()
        last.weight.mul_(5 / std)
        last.bias.mul_(5 / std)
    return model


def test_parameter_counts_match_the_references():
    assert n_params(MobileNetV3("small")) == 2_542_856
    assert n_params(MobileNetV3("large")) == 5_483_032


def test_seed_entry_points_map_images_to_logits():
    x = torch.randn(1, 3, 224, 224)
    assert MobileNetV3("small").eval()(x).shape == (1, 1000)
    assert MobileNetV3("large", in_channels=3, classes=1000).eval()(x).shape == (1, 1000)
    assert MobileNetV3("large", in_channels=1, classes=7).eval()(torch.randn(2, 1, 96, 96)).shape == (2, 7)


@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e.name)
def test_registry_counts_equal_the_built_model(entry):
    model = MobileNetV3(**entry.arch).eval()
    assert n_params(model) == entry.params
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() == 2 * entry.macs


def test_paper_mac_counts():
    """Paper Table 3/4 and torchvision: 56.5 M (Small) and 216.6 M (Large) multiply-adds."""
    by_name = {e.name: e for e in MODELS}
    assert round(by_name["mobilenetv3_small_100"].macs / 1e6, 1) == 56.5
    assert round(by_name["mobilenetv3_large_100"].macs / 1e6, 1) == 216.6


def test_blocks_follow_table_2_not_the_seed_sketch():
    model = MobileNetV3("small")
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == 11
    kernels = [b.depthwise.conv.kernel_size[0] for b in blocks]
    assert kernels == [3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5]
    assert all(b.depthwise.conv.groups == b.depthwise.conv.in_channels for b in blocks)
    # the first block's expansion size equals its input width: no 1x1 expansion conv
    assert isinstance(blocks[0].expand, nn.Identity) and not isinstance(blocks[1].expand, nn.Identity)
    has_se = [isinstance(b.se, SqueezeExcite) for b in blocks]
    assert has_se == [True, False, False] + [True] * 8
    acts = [type(b.depthwise.act).__name__ for b in blocks]
    assert acts == ["ReLU"] * 3 + ["Hardswish"] * 8
    se = blocks[3].se  # exp 96 -> reduce to make_divisible(96 / 4) = 24
    assert se.reduce.out_channels == make_divisible(96 / 4) == 24 and se.reduce.bias is not None
    assert [b.use_residual for b in blocks] == [False, False, True, False, True, True, False, True, False, True, True]
    assert model.head.conv.out_channels == 576 and model.pre_logits[0].out_features == 1024
    assert type(model.stem.act).__name__ == "Hardswish" and model.stem.conv.stride == (2, 2)
    assert model.dropout.p == 0.2


def test_large_follows_table_1():
    model = MobileNetV3("large")
    blocks = [b for stage in model.stages for b in stage]
    assert [b.depthwise.conv.out_channels for b in blocks] == [
        16,
        64,
        72,
        72,
        120,
        120,
        240,
        200,
        184,
        184,
        480,
        672,
        672,
        960,
        960,
    ]
    assert [b.project.conv.out_channels for b in blocks] == [
        16,
        24,
        24,
        40,
        40,
        40,
        80,
        80,
        80,
        80,
        112,
        112,
        160,
        160,
        160,
    ]
    assert model.head.conv.out_channels == 960 and model.pre_logits[0].out_features == 1280


def test_minimalistic_has_no_se_no_hardswish_and_3x3_kernels():
    model = MobileNetV3("large", minimal=True)
    assert not any(isinstance(m, (SqueezeExcite, nn.Hardswish)) for m in model.modules())
    assert {b.depthwise.conv.kernel_size for s in model.stages for b in s} == {(3, 3)}


@pytest.mark.parametrize("width", [0.5, 0.75, 1.0, 1.25])
def test_width_multipliers_round_channels_to_multiples_of_8(width):
    model = MobileNetV3("small", width=width, num_classes=10).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1 and m.in_channels > 3]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_options_reach_the_layers():
    model = MobileNetV3("small", dropout=0.5, bn_eps=1e-5, bn_momentum=0.1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(b.eps, b.momentum) for b in bns} == {(1e-5, 0.1)} and model.dropout.p == 0.5


def test_tf_same_padding_puts_the_extra_pixel_bottom_right():
    model = MobileNetV3("small", tf_padding=True).eval()
    pad = model.stem.pad
    assert pad._pad(224) == (0, 1)  # 3x3 stride 2: TF pads only after
    blocks = [b for stage in model.stages for b in stage]
    assert blocks[3].depthwise.pad._pad(28) == (1, 2)  # 5x5 stride 2
    assert not hasattr(blocks[4].depthwise, "pad")  # stride 1 keeps symmetric padding
    assert model(torch.randn(1, 3, 225, 223)).shape == (1, 1000)  # odd sizes too


REFERENCES = [
    ("torchvision", "mobilenet_v3_small", {"size": "small"}),
    ("torchvision", "mobilenet_v3_large", {"size": "large"}),
    ("timm", "mobilenetv3_small_100", {"size": "small", "bn_eps": 1e-5}),
    ("timm", "mobilenetv3_large_100", {"size": "large", "bn_eps": 1e-5}),
    ("timm", "tf_mobilenetv3_small_100", {"size": "small", "tf_padding": True}),
    ("timm", "mobilenetv3_small_075", {"size": "small", "width": 0.75, "bn_eps": 1e-5}),
    ("timm", "tf_mobilenetv3_large_075", {"size": "large", "width": 0.75, "tf_padding": True}),
    ("timm", "tf_mobilenetv3_small_minimal_100", {"size": "small", "minimal": True, "tf_padding": True}),
    ("timm", "tf_mobilenetv3_large_minimal_100", {"size": "large", "minimal": True, "tf_padding": True}),
]


@pytest.mark.parametrize("lib,name,kwargs", REFERENCES, ids=[r[1] for r in REFERENCES])
def test_same_logits_as_reference_with_copied_random_weights(lib, name, kwargs):
    torch.manual_seed(0)
    if lib == "torchvision":
        ref = getattr(torchvision.models, name)()
    else:
        ref = timm.create_model(name)
    ref = randomise_bn(ref)
    ours = MobileNetV3(**kwargs).eval()
    ours.load_state_dict(remap_state_dict(ref.state_dict(), ours.state_dict()))
    assert n_params(ours) == n_params(ref)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()


@pytest.mark.parametrize("height,width", [(225, 223), (223, 225), (97, 97), (96, 97)])
def test_tf_padding_matches_timm_at_odd_input_sizes(height, width):
    """TF "same" padding rounds the output size up: at odd sizes rounding down shifts every
    stride-2 layer by a pixel (logits 0.5-1.3 apart from timm's), though shapes still agree."""
    ref = randomise_bn(timm.create_model("tf_mobilenetv3_small_100"))
    ours = MobileNetV3("small", tf_padding=True).eval()
    ours.load_state_dict(remap_state_dict(ref.state_dict(), ours.state_dict()))
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height * width))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()


def test_tf_padding_matters_for_tf_weights():
    """The same weights without TF padding give different logits (why the option exists)."""
    ref = randomise_bn(timm.create_model("tf_mobilenetv3_small_100"))
    ours = MobileNetV3("small").eval()
    ours.load_state_dict(remap_state_dict(ref.state_dict(), ours.state_dict()))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() > 0.05


def test_reset_classifier_keeps_features():
    model = MobileNetV3("small").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        before = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(3)
        after = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.equal(before, after) and model(x).shape == (1, 3) and model.num_classes == 3


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="size"):
        MobileNetV3("medium")
    with pytest.raises(ValueError, match="width"):
        MobileNetV3("small", width=0)


def test_blocks_are_inverted_residuals():
    assert all(isinstance(b, InvertedResidual) for s in MobileNetV3("large").stages for b in s)


def test_mobilenetv3_alias_runs_the_original_snippet():
    """``from mobilenetv3_pytorch import MobileNetv3`` code runs with only the import changed."""
    from mnv3cli import MobileNetv3

    model = MobileNetv3("small")
    outputs = model(torch.rand(1, 3, 224, 224))
    assert outputs.shape == (1, 1000)
    assert MobileNetv3 is MobileNetV3
    assert n_params(MobileNetv3("large", 3, 10)) == n_params(MobileNetV3("large", in_channels=3, classes=10))
