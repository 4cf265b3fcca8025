"""Layer 1: the network itself, pure ``torch.nn``, no I/O."""

from .arch import ARCHS, ArchSpec, BlockSpec, make_divisible, resolve_blocks
from .layers import static_padding
from .mobilenetv3 import MobileNetV3, MobileNetv3
from .temperature import TemperatureScaled, with_temperature

__all__ = [
    "ARCHS",
    "ArchSpec",
    "BlockSpec",
    "MobileNetV3",
    "MobileNetv3",
    "TemperatureScaled",
    "make_divisible",
    "resolve_blocks",
    "static_padding",
    "with_temperature",
]
