"""The training recipe around a model: optimizer, learning-rate schedule, mixed precision, EMA,
Mixup/CutMix, the loss, and the DistributedDataParallel wrapper under ``torchrun``.

Assembled from maintained parts (timm's optimizers, cosine scheduler, Mixup/CutMix, ModelEmaV3) and
kept apart from the loop, which only calls them. A :class:`Recipe` also carries its own part of
``last.pt`` (optimizer, scheduler, scaler, EMA) to and from the checkpoint's ``extra``, under the
keys earlier runs wrote, so that they still resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..errors import UserError
from .config import TrainConfig


@dataclass
class Recipe:
    optimizer: Any  # torch.optim.Optimizer
    scheduler: Any  # timm's cosine scheduler, stepped per update
    amp_dtype: torch.dtype | None  # autocast type; None trains in float32
    scaler: torch.amp.GradScaler | None  # float16 only
    ema: Any  # timm.utils.ModelEmaV3 or None
    mixup: Any  # timm.data.Mixup or None
    criterion: nn.Module
    net: nn.Module  # what the steps call: the DDP wrapper under torchrun, else the model itself

    @property
    def amp(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "none"}.get(self.amp_dtype, "none")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def weights(self, model: nn.Module) -> nn.Module:
        """The weights that are validated and saved: the EMA when enabled, else the model itself."""
        return self.ema.module if self.ema is not None else model

    def checkpoint_extra(self, model: nn.Module) -> dict[str, Any]:
        """The recipe's part of ``last.pt``; with EMA the checkpoint's weights are the EMA, so the
        trained weights travel as ``train_state_dict``."""
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema is not None,
        }
        if self.ema is not None:
            extra["train_state_dict"] = model.state_dict()
        return extra

    def restore(self, ckpt: dict, model: nn.Module, epochs: int, output: Path) -> None:
        """Load what :meth:`checkpoint_extra` saved (and the checkpoint's weights into the EMA)."""
        extra = ckpt["extra"]
        # the trained weights as saved, BatchNorm's batch counters included (the weights loader
        # leaves those out); EMA runs keep the EMA as the checkpoint's weights, these apart
        model.load_state_dict(extra.get("train_state_dict", ckpt["state_dict"]))
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["state_dict"] if extra.get("ema") else model.state_dict())
        try:
            self.optimizer.load_state_dict(extra["optimizer"])
        except (ValueError, KeyError) as exc:
            raise UserError(
                f"{output}: its optimizer state does not fit this run ({exc}); resume "
                "with the --optimizer and --freeze it was started with"
            ) from None
        if extra.get("epochs") == epochs:  # else a longer/shorter cosine from here on
            self.scheduler.load_state_dict(extra["scheduler"])
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])


def build_recipe(
    cfg: TrainConfig,
    model: nn.Module,
    device: torch.device,
    *,
    new_head: bool,
    num_classes: int,
    steps_per_epoch: int,
    class_weights: torch.Tensor | None = None,
) -> tuple[TrainConfig, Recipe]:
    """The recipe ``cfg`` asks for, and ``cfg`` with ``head_lr_scale`` resolved (as recorded).
    ``class_weights``: per-class loss weights (``--class-weights balanced``; never with mixup)."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("--freeze: nothing left to train")
    head_scale = cfg.head_lr_scale if cfg.head_lr_scale is not None else (10.0 if new_head else 1.0)
    cfg = dataclasses.replace(cfg, head_lr_scale=head_scale)
    groups = param_groups(model, cfg.resolved_weight_decay, head_scale)
    optimizer = create_optimizer_v2(
        groups, opt=cfg.optimizer, lr=cfg.resolved_lr, weight_decay=cfg.resolved_weight_decay, momentum=cfg.momentum
    )
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched="cosine",
        num_epochs=cfg.epochs,
        warmup_epochs=min(cfg.warmup_epochs, cfg.epochs - 1),
        warmup_lr=cfg.warmup_lr,
        min_lr=cfg.min_lr,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    mixup = (
        Mixup(
            mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing, num_classes=num_classes
        )
        if mixing
        else None
    )
    weight = class_weights.to(device) if class_weights is not None else None
    criterion: nn.Module = (
        SoftTargetCrossEntropy() if mixing else nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    )
    if cfg.multi_label:  # multi-hot targets; mixup is refused by TrainConfig.validate
        criterion = multi_label_loss(cfg.loss)
    return cfg, Recipe(optimizer, scheduler, amp_dtype, scaler, ema, mixup, criterion, _wrap(model, device))


def multi_label_loss(name: str) -> nn.Module:
    """The loss of a sigmoid head: BCE with logits, or timm's asymmetric loss (Ridnik et al. 2021:
    down-weights the many easy negatives of multi-label data), with the paper's defaults."""
    if name == "asl":
        from timm.loss import AsymmetricLossMultiLabel

        return AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=0, clip=0.05)
    return nn.BCEWithLogitsLoss()


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun (it all-reduces the gradients); the model alone else."""
    if not distributed.is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def param_groups(model: nn.Module, weight_decay: float, head_lr_scale: float) -> list[dict[str, Any]]:
    """Optimizer groups: no weight decay on biases and norm parameters (as timm does), and the
    classifier's learning rate scaled by ``head_lr_scale`` (timm's schedulers honour ``lr_scale``):
    a freshly initialised head must move fast, the pretrained features only gently."""
    groups: dict[tuple[bool, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head, decay = name.startswith("classifier."), param.ndim > 1 and weight_decay > 0
        group = groups.setdefault(
            (head, decay),
            {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": head_lr_scale if head else 1.0},
        )
        group["params"].append(param)
    return list(groups.values())


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16: float16 training needs a CUDA GPU; use --amp bf16 on CPU")
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
