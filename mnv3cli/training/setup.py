"""The network a training run starts from and where it runs: a new head, a fresh model or the
resumed run's own (:class:`StartingPoint`), frozen stages, train/eval modes of frozen parts, and
this process's device under ``torchrun``.

Kept apart from the loop in :mod:`mnv3cli.training.loop`, which only wires these together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..errors import UserError
from ..inference.device import resolve_device
from ..model import MobileNetV3
from ..registry import ModelCard, Preprocess, get_entry
from .config import DEFAULT_MODEL, TrainConfig


@dataclass
class StartingPoint:
    card: ModelCard  # what the trained model is: name, the run's classes, preprocessing
    model: MobileNetV3
    description: str  # "fine-tuning from ...", "from scratch", "resuming ..."
    new_head: bool = False  # pretrained features under a freshly initialised classifier


def build_model(cfg: TrainConfig, class_names: list[str]) -> StartingPoint:
    """The network to train: pretrained with a new head for ``class_names``, or freshly initialised."""
    overrides: dict[str, Any] = {"dropout": cfg.dropout} if cfg.dropout is not None else {}
    if cfg.weights:
        from ..weights.loader import load_model

        loaded = load_model(cfg.weights, model_name=cfg.model, **overrides)
        model, name, preprocess = loaded.model, loaded.card.model_name, loaded.card.preprocess
        same_head = list(loaded.card.class_names or []) == list(class_names)
        if not same_head:
            model.reset_classifier(len(class_names))
        wordnet_ids = loaded.card.wordnet_ids if same_head else None
        description = f"fine-tuning from {cfg.weights}" + ("" if same_head else f" (new {len(class_names)}-class head)")
    else:
        from ..factory import create_model

        name = get_entry(cfg.model or DEFAULT_MODEL).name
        model = create_model(name, num_classes=len(class_names), **overrides)
        preprocess, wordnet_ids, description, same_head = Preprocess(), None, "from scratch", True
    card = ModelCard(
        model_name=name,
        class_names=tuple(class_names),
        wordnet_ids=None if wordnet_ids is None else tuple(wordnet_ids),
        preprocess=preprocess.at_resolution(cfg.resolution),
        source=cfg.weights or "",
        head="sigmoid" if cfg.multi_label else "softmax",
    )
    return StartingPoint(card, model, description, new_head=bool(cfg.weights) and not same_head)


def resumed_model(path: Path, class_names: list[str], data: str | None) -> StartingPoint:
    """The model of the run being resumed, from the very file whose training state is restored."""
    from ..weights.loader import load_model

    loaded = load_model(path)
    if list(loaded.card.class_names) != class_names:
        raise UserError(
            f"{data}: its classes {class_names} differ from the run's "
            f"{list(loaded.card.class_names)}; resume with the data the run started with"
        )
    card = ModelCard(
        model_name=loaded.card.model_name,
        class_names=tuple(class_names),
        wordnet_ids=None if loaded.card.wordnet_ids is None else tuple(loaded.card.wordnet_ids),
        preprocess=loaded.card.preprocess,
        source=str(path),
        head=loaded.card.head,
    )
    return StartingPoint(card, loaded.model, "resuming")


def freeze_layers(model: MobileNetV3, freeze: int | None) -> list[nn.Module]:
    """Stop gradients to all but the classifier and the last ``freeze`` stages; returns the frozen parts.

    Stages, in order: the stem, each bneck stage, and the head (1x1 conv + pooled FC) as one.
    ``freeze=0`` trains the classifier only (a linear probe).
    """
    if freeze is None:
        return []
    stages: list[list[nn.Module]] = [[model.stem], *[[stage] for stage in model.stages], [model.head, model.pre_logits]]
    if freeze > len(stages):
        raise UserError(
            f"--freeze {freeze}: the model has only {len(stages)} stages (stem, {len(model.stages)} bneck stages, head)"
        )
    frozen = [module for group in stages[: len(stages) - freeze] for module in group]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


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


@contextlib.contextmanager
def process_device(device_name: str) -> Iterator[torch.device]:
    """This process's device, inside torchrun's process group when launched by torchrun: each
    process on its own GPU (``LOCAL_RANK``) with nccl, or gloo on CPU. Alone: just the device."""
    device = resolve_device(device_name)
    if distributed.is_distributed() and device.type == "cuda":
        device = torch.device(distributed.rank_device("cuda"))
        torch.cuda.set_device(device)
    with distributed.process_group("nccl" if device.type == "cuda" else "gloo"):
        yield device
