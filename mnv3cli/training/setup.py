"""The network a training run starts from, and how it is prepared for training: a new head or a
fresh model (:func:`build_model`), frozen stages, optimizer parameter groups, train/eval modes of
frozen parts, and the mixed-precision type.

Kept apart from the loop in :mod:`mnv3cli.training.loop`, which only wires these together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..registry import Preprocess, get_entry
from .config import DEFAULT_MODEL, TrainConfig


@dataclass
class StartingPoint:
    model: nn.Module
    model_name: str
    preprocess: Preprocess
    wordnet_ids: list[str] | None
    description: str
    new_head: bool = False  # pretrained features under a freshly initialised classifier


def build_model(cfg: TrainConfig, class_names: list[str]) -> StartingPoint:
    """The network to train: pretrained with a new head for ``class_names``, or freshly initialised."""
    overrides = {"dropout": cfg.dropout} if cfg.dropout is not None else {}
    if cfg.weights:
        from ..weights.loader import load_model

        loaded = load_model(cfg.weights, model_name=cfg.model, **overrides)
        model, name, preprocess = loaded.model, loaded.model_name, loaded.preprocess
        same_head = list(loaded.class_names or []) == list(class_names)
        if not same_head:
            model.reset_classifier(len(class_names))
        wordnet_ids = loaded.wordnet_ids if same_head else None
        description = f"fine-tuning from {cfg.weights}" + ("" if same_head else
                                                          f" (new {len(class_names)}-class head)")
    else:
        from ..factory import create_model

        name = get_entry(cfg.model or DEFAULT_MODEL).name
        model = create_model(name, num_classes=len(class_names), **overrides)
        preprocess, wordnet_ids, description, same_head = Preprocess(), None, "from scratch", True
    if cfg.img_size and cfg.img_size != preprocess.input_size:
        preprocess = dataclasses.replace(preprocess, input_size=cfg.img_size,
                                         resize=round(cfg.img_size / preprocess.crop_pct))
    return StartingPoint(model, name, preprocess, wordnet_ids, description,
                         new_head=bool(cfg.weights) and not same_head)


def freeze_layers(model: nn.Module, freeze: int | None) -> list[nn.Module]:
    """Stop gradients to all but the classifier and the last ``freeze`` stages; returns the frozen parts.

    Stages, in order: the stem, each bneck stage, and the head (1x1 conv + pooled FC) as one.
    ``freeze=0`` trains the classifier only (a linear probe).
    """
    if freeze is None:
        return []
    stages = [[model.stem], *[[stage] for stage in model.stages], [model.head, model.pre_logits]]
    if freeze > len(stages):
        raise UserError(f"--freeze {freeze}: the model has only {len(stages)} stages (stem, "
                        f"{len(model.stages)} bneck stages, head)")
    frozen = [module for group in stages[:len(stages) - freeze] for module in group]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def param_groups(model: nn.Module, weight_decay: float, head_lr_scale: float) -> list[dict[str, Any]]:
    """Optimizer groups: no weight decay on biases and norm parameters (as timm does), and the
    classifier's learning rate scaled by ``head_lr_scale`` (timm's schedulers honour ``lr_scale``):
    a freshly initialised head must move fast, the pretrained features only gently."""
    groups: dict[tuple[bool, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head, decay = name.startswith("classifier."), param.ndim > 1 and weight_decay > 0
        group = groups.setdefault((head, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                                  "lr_scale": head_lr_scale if head else 1.0})
        group["params"].append(param)
    return list(groups.values())


def set_train_mode(model: nn.Module, frozen: list[nn.Module], freeze_bn: bool) -> None:
    """Training mode, except that frozen parts (and all BatchNorm statistics with ``freeze_bn``)
    keep using their stored statistics, so the pretrained function they compute does not drift."""
    model.train()
    for module in frozen:
        module.eval()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16: float16 training needs a CUDA GPU; use --amp bf16 on CPU")
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
