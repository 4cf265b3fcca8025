"""``load_model``: from whatever ``--weights`` names to a ready model and everything about it.

Accepted: a registry tag (``bundled``, the model inside the package, which is the default;
``imagenet``, ``torchvision:IMAGENET1K_V1``, ``timm:<hub id>``, ``tflite:<Google checkpoint>``,
downloaded through the cache); or a local file: the project's own
checkpoint, a torchvision/timm state dict (bare or nested, ``module.``/``_orig_mod.`` prefixes),
``.safetensors``, or a ``.tflite`` model. What a file does not say (architecture, number of classes)
is inferred from its tensor shapes; what it needs (TF padding, BatchNorm eps, preprocessing) comes
from the registry entry of published weights, or from the file's layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..registry import (
    MODELS,
    ModelCard,
    Preprocess,
    WeightSource,
    default_weights,
    get_entry,
    resolve_weights,
)
from ..registry.entries import TF, TF_ARCH, TIMM, TIMM_ARCH, TORCHVISION
from .download import Progress, fetch, sha256_file
from .readers import (
    SAFETENSORS_SUFFIX,
    TFLITE_SUFFIX,
    check_file,
    check_finite,
    find_state_dict,
    read_safetensors,
    read_torch,
)

if TYPE_CHECKING:
    import torch

    from ..model import MobileNetV3

TAG_KINDS = ("torchvision", "timm", "tflite")


@dataclass
class LoadedModel:
    """A model ready for inference (``model``), what it is (``card``: its name, classes,
    preprocessing, source ..., read as ``loaded.card.class_names``), and where it came from (``meta``)."""

    model: MobileNetV3  # eval() mode, CPU, fp32
    card: ModelCard  # name, classes, preprocessing, source, content hash, arch
    meta: dict = field(default_factory=dict)  # format of the source, training metrics, epoch, ...


def load_model(
    weights: str | os.PathLike | None = None,
    model_name: str | None = None,
    *,
    num_classes: int | None = None,
    progress: Progress | bool | None = True,
    **overrides: Any,
) -> LoadedModel:
    """Load ``weights`` into a MobileNetV3 (default: ``bundled``, or ``imagenet`` when ``model_name``
    is given: :func:`~mnv3cli.registry.default_weights`).

    ``model_name`` picks the registry model (else inferred from the file, or the default model for
    tags). ``num_classes``, when it differs from the weights', replaces the classifier (fine-tuning
    on new classes; class names become ``class_0`` ...). ``overrides`` go to ``MobileNetV3``
    (``dropout``, ``bn_eps`` ...). ``progress`` is a ``(done, total)`` download callback, ``True``
    for a rich bar when stderr is a terminal, or ``False``.
    """
    spec = default_weights(model_name) if weights is None else os.fspath(weights)
    if _is_tag(spec):
        loaded = _load_tag(spec, model_name, overrides, progress)
    else:
        loaded = _load_file(Path(spec).expanduser(), model_name, overrides)
    if num_classes is not None and num_classes != loaded.model.num_classes:
        loaded.model.reset_classifier(num_classes)
        loaded.model.eval()
        loaded.card = loaded.card.with_classes([f"class_{i}" for i in range(num_classes)], None)
        loaded.meta["classifier_reset"] = True
    return loaded


def _is_tag(spec: str) -> bool:
    if Path(spec).expanduser().exists():
        return False
    return spec == "imagenet" or spec.split(":", 1)[0] in TAG_KINDS or not ({"/", os.sep, "."} & set(spec))


def _load_tag(tag: str, model_name: str | None, overrides: dict, progress) -> LoadedModel:
    entry, source = resolve_weights(tag, model_name)
    path, digest = fetch(source, progress)
    if source.bundled:  # an mnv3 checkpoint that says what it is; shown by its tag
        loaded = _load_file(path, model_name, overrides)
        return replace(loaded, card=replace(loaded.card, source=source.tag))
    arch = entry.arch | source.arch | overrides
    if source.kind == "tflite":
        model = _tflite_model(path, arch, source.tag)
    else:
        model = _build(find_state_dict(read_torch(path), str(path)), arch, source.num_classes, source.tag)
    return _result(model, entry.name, source.preprocess, source.tag, digest, {"format": source.kind})


def _load_file(path: Path, model_name: str | None, overrides: dict) -> LoadedModel:
    check_file(path)  # before importing torch: a missing or misnamed file is reported at once
    from .checkpoint import (
        FORMAT,
        checkpoint_from_safetensors,
        is_checkpoint_record,
        validate_record,
    )

    source, suffix = str(path), path.suffix.lower()
    digest = sha256_file(path)
    published = _published(path.expanduser().absolute())
    if suffix == TFLITE_SUFFIX:
        entry = get_entry(model_name) if model_name else published[0] if published else None
        model = _tflite_model(path, (entry.arch if entry else {}) | TF_ARCH | overrides, source)
        name = entry.name if entry else _name_for(model)
        return _result(model, name, TF, source, digest, {"format": "tflite"})
    if suffix == SAFETENSORS_SUFFIX:
        state, metadata = read_safetensors(path)
        if metadata.get("format") == FORMAT:
            return _from_record(
                checkpoint_from_safetensors(state, metadata, source), source, model_name, overrides, digest
            )
    else:
        obj = read_torch(path)
        if is_checkpoint_record(obj):
            return _from_record(validate_record(obj, source), source, model_name, overrides, digest)
        state = find_state_dict(obj, source)
    return _from_state_dict(state, path, model_name, overrides, digest, published)


def _from_record(record: dict, source: str, model_name: str | None, overrides: dict, digest: str) -> LoadedModel:
    """A project checkpoint: it says everything, the user may still override the model."""
    from .checkpoint import card_from_record

    entry = get_entry(model_name) if model_name else None
    arch = record["arch"] | (entry.arch if entry else {}) | overrides
    model = _build(record["state_dict"], arch, record["num_classes"], source)
    meta = {"format": "mnv3", **_plain(record["extra"])}
    name = entry.name if entry else record["model_name"]
    card = card_from_record(record, source, digest)
    return LoadedModel(model, replace(card, model_name=name, arch=dict(model.config)), meta)


def _from_state_dict(
    state: dict, path: Path, model_name: str | None, overrides: dict, digest: str, published: tuple | None
) -> LoadedModel:
    """A foreign state dict: architecture from the name given, the published file, or the shapes."""
    from .infer import infer_arch, kernel_shapes
    from .remap import execution_order, strip_prefixes

    source = str(path)
    state = execution_order(strip_prefixes(state))
    layout = _layout(state)
    shapes = kernel_shapes(state)
    entry = get_entry(model_name) if model_name else published[0] if published else None
    if entry is not None and shapes:
        arch, num_classes = entry.arch, shapes[-1][1][0]
    else:
        arch, num_classes = infer_arch(shapes, source)
    if published:
        preprocess, needs = published[1].preprocess, published[1].arch
    elif layout == "timm" and path.name.startswith("tf_"):  # timm's ports of TF weights
        preprocess, needs = TF, TF_ARCH
    elif layout == "timm":
        preprocess, needs = TIMM, TIMM_ARCH
    else:
        preprocess, needs = TORCHVISION, {}
    model = _build(state, arch | needs | overrides, num_classes, source)
    name = entry.name if entry else _name_for(model)
    return _result(model, name, preprocess, source, digest, {"format": layout})


def _tflite_model(path: Path, arch: dict, source: str) -> MobileNetV3:
    """Build the model a TFLite graph describes and load its (dequantized) kernels."""
    from ..model import MobileNetV3
    from .infer import infer_arch, kernel_shape
    from .tflite import read_tflite, tflite_state_dict

    kernels = read_tflite(path)
    shapes = [(k.name, kernel_shape(k.weight.shape)) for k in kernels]
    if "size" in arch and shapes:
        num_classes = shapes[-1][1][0]
    else:
        inferred, num_classes = infer_arch(shapes, source)
        arch = inferred | arch
    background = num_classes == 1001  # Google's classifiers put "background" at index 0
    model = _construct(MobileNetV3, arch, num_classes - background, source)
    state = tflite_state_dict(kernels, model, background=background, source=source)
    check_finite(state, source)
    model.load_state_dict(state)
    return model.eval()


def _construct(cls, arch: dict, num_classes: int, source: str) -> MobileNetV3:
    try:
        return cls(**arch, num_classes=num_classes)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: invalid architecture {arch}: {exc}") from None


def _build(state: dict[str, torch.Tensor], arch: dict, num_classes: int, source: str) -> MobileNetV3:
    """A model of ``arch`` holding ``state`` (any known key layout), in eval mode."""
    from ..model import MobileNetV3
    from .remap import remap_state_dict

    model = _construct(MobileNetV3, arch, num_classes, source)
    state = remap_state_dict(state, model.state_dict(), source)
    check_finite(state, source)  # NaN weights would answer "nan %" for every image
    model.load_state_dict(state)
    return model.eval()


def _result(model: MobileNetV3, name: str, preprocess: Preprocess, source: str, digest: str, meta: dict) -> LoadedModel:
    names, wnids = _class_names(model.num_classes)
    return LoadedModel(model, ModelCard(name, names, preprocess, wnids, source, digest, dict(model.config)), meta)


def _class_names(num_classes: int) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """ImageNet-1k names for 1000 outputs (all published weights), ``class_<i>`` otherwise."""
    if num_classes == 1000:
        from ..registry.imagenet import class_names, wordnet_ids

        return tuple(class_names()), tuple(wordnet_ids())
    return tuple(f"class_{i}" for i in range(num_classes)), None


def _name_for(model: MobileNetV3) -> str:
    from .infer import model_name_for

    return model_name_for(model.config)


def _published(path: Path) -> tuple[Any, WeightSource] | None:
    """The registry entry of a published file, recognised by its (unrenamed) file name, or by the
    Hugging Face cache folder it sits in (``models--timm--<hub id>/snapshots/<rev>/model.safetensors``)."""
    folders = {part for part in path.parts if part.startswith("models--")}
    for entry in MODELS:
        for source in entry.weights:
            names = {source.url.rsplit("/", 1)[-1], Path(source.member).name if source.member else None}
            hub_folder = "models--" + source.hf_hub_id.replace("/", "--") if source.hf_hub_id else None
            if path.name in names or hub_folder in folders:
                return entry, source
    return None


def _layout(state: dict) -> str:
    """Which library's key names a state dict uses (decides preprocessing for unknown files)."""
    prefixes = {"features.": "torchvision", "conv_stem.": "timm", "stem.conv.": "mnv3"}
    for prefix, layout in prefixes.items():
        if any(k.startswith(prefix) for k in state):
            return layout
    return "state_dict"


def _plain(extra: dict) -> dict:
    """The JSON-serialisable entries of a checkpoint's ``extra`` (epoch, metrics; no tensors)."""
    plain = {}
    for key, value in extra.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        plain[key] = value
    return plain
