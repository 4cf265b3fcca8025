"""The MobileNetV3 network (Large and Small, any width, optionally minimalistic)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .arch import ARCHS, minimalistic, resolve_blocks
from .layers import ACTIVATIONS, ConvBNAct, InvertedResidual


class MobileNetV3(nn.Module):
    """MobileNetV3 as in Howard et al. 2019, Tables 1 and 2.

    ``MobileNetV3("small")`` and ``MobileNetV3("large", in_channels=3, classes=1000)`` map a
    ``[N, in_channels, H, W]`` tensor to ``[N, classes]`` logits.

    Module layout: ``stem`` -> ``stages`` (a Sequential of stages, each a Sequential of bneck
    blocks) -> ``head`` (1x1 conv to 960/576) -> global average pool -> ``pre_logits`` (the 1x1
    "FC" to 1280/1024 + activation) -> ``dropout`` -> ``classifier``. The parameter order is the
    execution order, the same as torchvision's and timm's models.
    """

    def __init__(
        self,
        size: str = "large",
        in_channels: int = 3,
        classes: int | None = None,
        *,
        num_classes: int = 1000,
        width: float = 1.0,
        minimal: bool = False,
        dropout: float = 0.2,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        tf_padding: bool = False,
    ) -> None:
        super().__init__()
        if size not in ARCHS:
            raise ValueError(f"size must be one of {sorted(ARCHS)}, got {size!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        spec = minimalistic(ARCHS[size]) if minimal else ARCHS[size]
        self.config = dict(
            size=size,
            in_channels=in_channels,
            width=width,
            minimal=minimal,
            dropout=dropout,
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
            tf_padding=tf_padding,
        )
        self.num_classes = num_classes if classes is None else classes
        norm: dict[str, Any] = dict(bn_eps=bn_eps, bn_momentum=bn_momentum, tf_padding=tf_padding)
        head_act = "relu" if minimal else "hardswish"

        stem_ch, stages, head_ch = resolve_blocks(spec, width)
        self.stem = ConvBNAct(in_channels, stem_ch, 3, 2, activation=head_act, **norm)
        self.stages = nn.Sequential(
            *(
                nn.Sequential(
                    *(
                        InvertedResidual(
                            b.in_channels,
                            b.expanded,
                            b.out_channels,
                            b.kernel,
                            b.stride,
                            b.se_channels,
                            b.activation,
                            **norm,
                        )
                        for b in stage
                    )
                )
                for stage in stages
            )
        )
        last_ch = stages[-1][-1].out_channels
        self.head = ConvBNAct(last_ch, head_ch, 1, activation=head_act, **norm)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = spec.head_features
        self.pre_logits = nn.Sequential(nn.Linear(head_ch, self.num_features), ACTIVATIONS[head_act]())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, self.num_classes) if self.num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """The initialisation of torchvision's reference training recipe."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last layer for ``num_classes`` outputs (fine-tuning on new classes)."""
        self.num_classes = num_classes
        if num_classes:
            head = nn.Linear(self.num_features, num_classes)
            nn.init.normal_(head.weight, 0, 0.01)
            nn.init.zeros_(head.bias)
        self.classifier = head if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the head conv: ``[N, 960|576, H/32, W/32]``."""
        return self.head(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


MobileNetv3 = MobileNetV3
"""The spelling of the from-scratch ``mobilenetv3_pytorch`` package this project grew from: code
written as ``MobileNetv3("small")`` runs with only its import line changed (same class, same
signature)."""
