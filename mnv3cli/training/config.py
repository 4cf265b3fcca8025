"""Every ``mnv3 train`` option in one dataclass, with fine-tuning defaults, plus ``--config`` files.

The same names serve the command line (``--batch-size``), YAML/TOML config files (``batch_size`` or
``batch-size``) and the run's ``config.json``, so a resolved run can be read back and repeated.
Precedence: built-in defaults < saved run config (``--resume``) < config file < command line.
Importable without torch: ``mnv3 train --help`` reads the defaults from here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..deprecation import Warn, renamed_keys
from ..errors import UserError
from ..registry.types import INPUT_SIZES

OPTIMIZERS = ("adamw", "sgd", "rmsprop")
AUGMENTS = ("none", "randaugment", "trivialaugment")
CLASS_WEIGHTS = ("none", "balanced")  # balanced: inverse class frequency in the loss
SAMPLERS = ("shuffle", "balanced")  # balanced: draw classes equally often (with replacement)
AMP_MODES = ("auto", "none", "bf16", "fp16")

# Per-optimizer defaults: peak learning rate (from scratch, fine-tuning) and weight decay. Fine-tuning
# moves pretrained layers 10x more gently, while a new classifier gets 10x (head_lr_scale) that.
DEFAULT_LR = {"adamw": (1e-3, 1e-4), "sgd": (0.01, 1e-3), "rmsprop": (1e-3, 1e-4)}
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "sgd": 1e-4, "rmsprop": 1e-5}
DEFAULT_MODEL = "mobilenetv3_small_100"
LOSSES = ("bce", "asl")  # multi-label losses
# RandomResizedCrop's smallest area fraction (single-label, multi-label). A crop of a quarter of the
# image keeps a single-label image's class, but may drop every object but one of a multi-label image
# while its target still names them all: a multi-label run crops only its borders.
CROP_SCALE = (0.25, 0.8)


@dataclass
class TrainConfig:
    """A training run. ``None`` means "derive it" (from the weights, the optimizer or the data)."""

    # data
    data: str | None = None  # ImageFolder root: DIR/train + DIR/val, or one split with val_split
    val: str | None = None  # a separate validation ImageFolder
    val_split: float | None = None  # hold out this fraction of DIR (stratified, seeded)
    classes_file: str | None = None  # a manifest's class names, in order (else first appearance)
    allow_absolute_paths: bool = False  # a manifest may name images outside its folder
    output: str | None = None  # run folder; default runs/<name of DIR>
    # model
    model: str | None = None  # registry name; inferred from weights, else mobilenetv3_small_100
    weights: str | None = None  # anything the checkpoint loader accepts; None = from scratch
    freeze: int | None = None  # None: train all; 0: classifier only; N: also the last N stages
    freeze_bn: bool = False  # keep BatchNorm statistics fixed (else they adapt to the new data)
    bn_momentum: float = 0.1  # BatchNorm momentum while statistics are trained
    dropout: float | None = None  # before the classifier; None: the model's default (0.2)
    resolution: int | None = None  # training/validation crop; None: the weights' input size (224)
    # recipe
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float | None = None  # None: DEFAULT_LR for the optimizer, from scratch or fine-tuning
    weight_decay: float | None = None  # None: 0.05 (adamw), 1e-4 (sgd), 1e-5 (rmsprop)
    head_lr_scale: float | None = None  # classifier lr multiplier; None: 10 for a new head, else 1
    momentum: float = 0.9  # sgd / rmsprop
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    class_weights: str = "none"  # none | balanced (inverse class frequency in the loss)
    sampler: str = "shuffle"  # shuffle | balanced (classes drawn equally often)
    mixup: float = 0.0  # mixup alpha (0 = off)
    cutmix: float = 0.0  # cutmix alpha (0 = off)
    multi_label: bool = False  # sigmoid head, any set of classes per image (also set by a `labels` manifest)
    loss: str = "bce"  # multi-label loss: bce (BCE with logits) | asl (asymmetric loss, Ridnik et al. 2021)
    augment: str = "none"  # none | randaugment | trivialaugment
    crop_scale: float | None = None  # smallest area fraction of RandomResizedCrop; None: CROP_SCALE
    hflip: float = 0.5
    random_erasing: float = 0.0  # probability
    ema: bool = False
    ema_decay: float = 0.999
    clip_grad: float | None = None  # max gradient norm
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, none on CPU) | none | bf16 | fp16
    channels_last: bool = True  # NHWC training: ~1.4x faster convolutions and BatchNorm on CPU (oneDNN)
    patience: int | None = None  # stop after this many epochs without a better validation top-1
    tensorboard: bool = True  # TensorBoard event files in the run folder
    mlflow: str | None = None  # MLflow tracking URI; "" = an mlruns/ file store beside the run folder
    seed: int = 42
    workers: int | None = None  # images decoded in parallel (>1: DataLoader processes); None: min(8, CPUs)
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run

    # -- derived values ------------------------------------------------------------------------
    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer][bool(self.weights)]

    @property
    def resolved_crop_scale(self) -> float:
        return self.crop_scale if self.crop_scale is not None else CROP_SCALE[self.multi_label]

    @property
    def resolved_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    @property
    def resolved_workers(self) -> int:
        from ..data.batches import (
            default_workers,  # here: `mnv3 train --help` loads no numpy
        )

        return self.workers if self.workers is not None else default_workers()

    def validate(self) -> TrainConfig:
        """Check ranges and choices; raise :class:`UserError` naming the option."""

        def bad(name: str, why: str) -> UserError:
            return UserError(f"--{name.replace('_', '-')}: {why}")

        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("augment", AUGMENTS),
            ("amp", AMP_MODES),
            ("class_weights", CLASS_WEIGHTS),
            ("sampler", SAMPLERS),
            ("loss", LOSSES),
        ):
            if getattr(self, name) not in choices:
                raise bad(name, f"{getattr(self, name)!r} is not one of {', '.join(choices)}")
        if self.epochs < 1:
            raise bad("epochs", "must be at least 1")
        if self.batch_size < 2:  # BatchNorm's statistics need two values per channel
            raise bad("batch_size", "must be at least 2 (BatchNorm cannot train on one image per batch)")
        for name in (
            "warmup_epochs",
            "label_smoothing",
            "mixup",
            "cutmix",
            "random_erasing",
            "warmup_lr",
            "min_lr",
            "momentum",
            "seed",
        ):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if self.workers is not None and self.workers < 1:
            raise bad("workers", "must be at least 1 (1: images are decoded in the training process)")
        for name in ("lr", "weight_decay", "head_lr_scale", "clip_grad", "dropout", "freeze"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise bad(name, "must not be negative")
        if self.patience is not None and self.patience < 1:
            raise bad("patience", "must be at least 1 (epochs without a better validation top-1)")
        if self.lr is not None and self.lr == 0:
            raise bad("lr", "must be positive")
        if self.val_split is not None and not 0 < self.val_split < 1:
            raise bad("val_split", "must be between 0 and 1 (e.g. 0.2)")
        if self.crop_scale is not None and not 0 < self.crop_scale <= 1:
            raise bad("crop_scale", "must be in (0, 1]")
        for name in ("hflip", "random_erasing", "label_smoothing"):
            if getattr(self, name) > 1:
                raise bad(name, "must be at most 1")
        low, high = INPUT_SIZES
        if self.resolution is not None and not low <= self.resolution <= high:
            raise bad("resolution", f"must be {low} to {high} pixels")
        if self.class_weights != "none" and (self.mixup > 0 or self.cutmix > 0):
            raise bad("class_weights", "not with --mixup/--cutmix (their soft targets take no weights); try --sampler")
        if not 0 < self.ema_decay < 1:
            raise bad("ema_decay", "must be between 0 and 1")
        if self.multi_label and (self.class_weights != "none" or self.sampler != "shuffle"):
            raise bad("class_weights" if self.class_weights != "none" else "sampler", "single-label data only")
        if self.multi_label and (self.mixup or self.cutmix):  # timm's Mixup mixes one-hot targets only
            raise bad("mixup" if self.mixup else "cutmix", "not available for a multi-label model; leave it at 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_dict(self) -> dict[str, Any]:
        """What the run actually uses (defaults that depend on other options filled in)."""
        return self.to_dict() | {
            "lr": self.resolved_lr,
            "weight_decay": self.resolved_weight_decay,
            "crop_scale": self.resolved_crop_scale,
            "workers": self.resolved_workers,
        }


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def default_of(name: str) -> Any:
    """The built-in default of an option (for ``--help`` texts)."""
    f = FIELDS[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert a config-file value to the option's type (YAML reads ``1e-3`` as a string)."""
    hint = _HINTS[name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    optional = union and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if union else hint
    if value is None:
        if optional:
            return None
        raise UserError(f"{source}: {name} may not be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if typing.get_origin(base) is dict or base is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        if isinstance(value, (dict, list)):
            raise TypeError(value)
        return str(value)
    except (TypeError, ValueError):
        kind = getattr(base, "__name__", str(base))
        raise UserError(f"{source}: {name} = {value!r} is not a valid {kind}") from None


def normalise(values: dict[str, Any], source: str, warn: Warn | None = None) -> dict[str, Any]:
    """Map ``batch-size``/``batch_size`` keys to fields (renamed ones through
    :mod:`mnv3cli.deprecation`, with ``warn``), reject unknown keys, coerce types."""
    keys = {str(key).replace("-", "_"): key for key in values}
    named = renamed_keys({name: values[key] for name, key in keys.items()}, source, warn)
    out = {}
    for name, value in named.items():
        if name not in FIELDS:
            key = keys.get(name, name)
            raise UserError(f"{source}: unknown option {key!r}; known: {', '.join(sorted(FIELDS))}")
        out[name] = _coerce(name, value, source)
    return out


def read_config_file(path: str | os.PathLike, warn: Warn | None = None) -> dict[str, Any]:
    """Options from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file, normalised."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise UserError(f"{path}: TOML config files need Python 3.11+; use YAML") from None
        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError,)
    elif suffix in (".yaml", ".yml"):
        import yaml

        parse, errors = yaml.safe_load, (yaml.YAMLError,)
    else:
        raise UserError(f"{path}: config files must end in .yaml, .yml or .toml")
    try:
        data = parse(text.decode("utf-8"))
    except (*errors, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid {suffix[1:].upper()} file ({_one_line(exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of option names to values")
    return normalise(data, str(path), warn)


def _one_line(exc: Exception) -> str:
    """A parse error as one line: YAML's own message spans several, with a drawing of the spot."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())


def read_run_config(run_dir: str | os.PathLike, warn: Warn | None = None) -> dict[str, Any]:
    """The options a run was started with (its ``config.json``), for ``--resume``."""
    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a training run (no config.json)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    return normalise(data.get("config", data), str(path), warn)


def build_config(
    cli: dict[str, Any],
    config_file: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    warn: Warn | None = None,
) -> TrainConfig:
    """Merge the layers (defaults < resumed run < config file < command line) and validate.

    ``cli`` holds only the options the user actually typed (``None`` values are ignored).
    ``warn(message)`` hears of renamed option names in the files (a FutureWarning without it).
    """
    values: dict[str, Any] = {}
    if resume is not None:
        values |= read_run_config(resume, warn)
    if config_file is not None:
        values |= read_config_file(config_file, warn)
    values |= {k: v for k, v in cli.items() if v is not None}
    return TrainConfig(**values).validate()
