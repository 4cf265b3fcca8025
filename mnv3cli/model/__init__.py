"""Layer 1: the network itself, pure ``torch.nn``, no I/O."""

from .arch import ARCHS, ArchSpec, BlockSpec, make_divisible, resolve_blocks
from .layers import static_padding
from .mobilenetv3 import MobileNetV3

__all__ = ["ARCHS", "ArchSpec", "BlockSpec", "MobileNetV3", "make_divisible", "resolve_blocks",
           "static_padding"]
