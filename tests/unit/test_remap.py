"""Order-based remapping: names may differ, shapes may not (beyond Linear <-> 1x1 Conv)."""

from __future__ import annotations

import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.model import MobileNetV3
from mnv3cli.weights.remap import remap_state_dict, strip_prefixes


def test_nested_wrapper_prefixes_are_all_stripped():
    tensor = torch.zeros(1)
    got = strip_prefixes(
        {
            "module._orig_mod.module.stem.conv.weight": tensor,
            "_orig_mod.module.head.bias": tensor,
            "stem.module.x": tensor,
        }
    )
    assert list(got) == ["stem.conv.weight", "head.bias", "stem.module.x"]  # inner names kept


def test_a_same_size_tensor_of_another_shape_is_refused_not_reshaped():
    target = MobileNetV3("small", classes=10).state_dict()
    given = {
        f"renamed.{i}": v.clone() for i, (k, v) in enumerate(target.items()) if not k.endswith("num_batches_tracked")
    }
    key = next(k for k, v in given.items() if v.dim() == 4 and v.shape[0] != v.shape[1] and v.shape[2:] == (1, 1))
    given[key] = given[key].transpose(0, 1).contiguous()  # same elements, same rank, other shape
    with pytest.raises(UserError, match=r"tensor 'renamed\.\d+' has shape"):
        remap_state_dict(given, target)


def test_a_linear_maps_onto_a_1x1_conv_of_the_same_size():
    target = {"conv.weight": torch.zeros(4, 3, 1, 1)}
    weight = torch.arange(12.0).reshape(4, 3)
    got = remap_state_dict({"fc.weight": weight}, target)
    assert torch.equal(got["conv.weight"], weight.reshape(4, 3, 1, 1))


def test_tensor_counts_must_agree():
    target = MobileNetV3("small", classes=10).state_dict()
    given = {f"x.{i}": v for i, (k, v) in enumerate(list(target.items())[:-1]) if not k.endswith("num_batches_tracked")}
    with pytest.raises(UserError, match="weights for another architecture"):
        remap_state_dict(given, target)


LAYOUTS = {
    "ours-large": lambda: MobileNetV3("large"),
    "ours-small-minimal": lambda: MobileNetV3("small", minimal=True),
    "timm-large": lambda: __import__("timm").create_model("mobilenetv3_large_100"),
    "timm-tf-small-minimal": lambda: __import__("timm").create_model("tf_mobilenetv3_small_minimal_100"),
    "torchvision-small": lambda: __import__("torchvision").models.mobilenet_v3_small(),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_sorted_keys_are_put_back_in_execution_order(name):
    """.safetensors stores keys sorted by name; the positional mapping needs registration order."""
    from mnv3cli.weights.remap import execution_order

    state = LAYOUTS[name]().state_dict()
    assert list(execution_order(dict(sorted(state.items())))) == list(state)
    unsorted = dict(reversed(list(state.items())))  # an order that is not sorted is kept as given
    assert list(execution_order(unsorted)) == list(unsorted)
