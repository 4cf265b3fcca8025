"""Every model the tool knows and every set of weights published for it: data, not logic.

The first weights of a model are its default (``--weights imagenet``). Where torchvision publishes
weights they come first, even when timm has more accurate ones: torchvision's own loader verifies
the sha256 prefix in those file names, so the check our download makes is known to pass.

Accuracy figures are ImageNet-1k validation top-1/top-5 as published by the weights' authors
(torchvision's weight metadata, timm's results tables, the TF model garden README).
Parameter and MAC counts are at 224x224 with 1000 classes; tests recompute them from the model.
"""

from __future__ import annotations

from .types import Bundled, ModelEntry, Preprocess, WeightSource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # pixels in [0, 1] mapped to [-1, 1]

TORCHVISION = Preprocess(resize=256, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD)
TORCHVISION_V2 = Preprocess(resize=232, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD)
TIMM = Preprocess(resize=256, interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD)
TF = Preprocess(resize=256, interpolation="bilinear", mean=TF_MEAN, std=TF_STD)  # crop 0.875
MIIL = Preprocess(resize=256, interpolation="bilinear", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

# Architecture overrides the weights need: timm's own (non-"tf_") models use BatchNorm eps 1e-5;
# weights trained in TensorFlow need TF "same" padding on stride-2 convolutions.
TIMM_ARCH = {"bn_eps": 1e-5}
TF_ARCH = {"tf_padding": True}

GOOGLE = "https://storage.googleapis.com/mobilenet_v3/checkpoints/"
BUNDLED = "bundled"  # the tag of the model inside the package: what an omitted --weights loads

# The model shipped in mnv3cli/bundled/: Google's int8 TFLite MobileNetV3-Small, dequantized by
# `mnv3 convert` and stored as float16 (5 MB; top-1 79.0 % / top-5 94.2 % on ../shared's ImageNet
# sample, where its float32 conversion scores 78.8 / 94.2). The notes below travel in the file's
# metadata; mnv3cli/bundled/NOTICE says the same. Made again and compared by tests/unit/test_bundled.py.
BUNDLED_MODEL = Bundled(
    file="mobilenetv3_small_100-int8-fp16.safetensors",
    sha256="28e3ab1120bcd9e2f97717c9e1c6424aaed1b6788ffbdee208714eed75e7e530",
    made_from="mobilenet_v3_small_1.0_224_int8.tflite",
    made_from_sha256="56b0056cc4255700f9a6445ef350439ca719288bd5b6d01d6f459c7c70aaa4b2",
    convert_args=(
        "--dtype",
        "float16",
        "--meta",
        "license=Apache-2.0",
        "--meta",
        "notice=MobileNetV3-Small 1.0 224 ImageNet classifier published by Google under the "
        "Apache License 2.0 (TF-Hub TFLite release, int8 post-training quantized); "
        "dequantized, background output dropped and stored as float16 by mnv3",
        "--meta",
        "paper=Howard et al., Searching for MobileNetV3, ICCV 2019, arXiv:1905.02244",
    ),
)
TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download/"


def _tflite(name: str, top1: float, top5: float | None = None) -> WeightSource:
    """One of Google's official checkpoint archives; the .tflite file inside it is what we import."""
    return WeightSource(
        tag=f"tflite:{name}",
        url=f"{GOOGLE}{name}.tgz",
        preprocess=TF,
        top1=top1,
        top5=top5,
        arch=TF_ARCH,
        num_classes=1001,
        member=f"{name}/{name}.tflite",
    )


def _timm(
    hub_id: str, url: str, preprocess: Preprocess, top1: float, top5: float, tf_port: bool = False
) -> WeightSource:
    return WeightSource(
        tag=f"timm:{hub_id}",
        url=url,
        preprocess=preprocess,
        top1=top1,
        top5=top5,
        arch=TF_ARCH if tf_port else TIMM_ARCH,
        hf_hub_id=f"timm/{hub_id}",
    )


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="mobilenetv3_small_100",
        size="small",
        width=1.0,
        aliases=("small",),
        params=2_542_856,
        macs=56_510_400,
        weights=(
            WeightSource(
                tag="torchvision:IMAGENET1K_V1",
                url="https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
                preprocess=TORCHVISION,
                top1=67.668,
                top5=87.402,
            ),
            _timm(
                "mobilenetv3_small_100.lamb_in1k",
                TIMM_RELEASES + "v0.1-weights/mobilenetv3_small_100_lamb-266a294c.pth",
                TIMM,
                67.656,
                87.634,
            ),
            _timm(
                "tf_mobilenetv3_small_100.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_small_100-37f49e2b.pth",
                TF,
                67.922,
                87.664,
                tf_port=True,
            ),
            _tflite("v3-small_224_1.0_float", 67.5),
            _tflite("v3-small_224_1.0_uint8", 64.9),
            WeightSource(tag=BUNDLED, url="", preprocess=TF, arch=TF_ARCH, bundled=BUNDLED_MODEL),
        ),
    ),
    ModelEntry(
        name="mobilenetv3_small_075",
        size="small",
        width=0.75,
        params=2_041_872,
        macs=43_399_344,
        weights=(
            _timm(
                "mobilenetv3_small_075.lamb_in1k",
                TIMM_RELEASES + "v0.1-weights/mobilenetv3_small_075_lambc-384766db.pth",
                TIMM,
                65.242,
                85.438,
            ),
            _timm(
                "tf_mobilenetv3_small_075.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_small_075-da427f52.pth",
                TF,
                65.718,
                86.136,
                tf_port=True,
            ),
            _tflite("v3-small_224_0.75_float", 65.4),
        ),
    ),
    ModelEntry(
        name="mobilenetv3_large_100",
        size="large",
        width=1.0,
        aliases=("large",),
        params=5_483_032,
        macs=216_589_760,
        weights=(
            WeightSource(
                tag="torchvision:IMAGENET1K_V2",
                url="https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth",
                preprocess=TORCHVISION_V2,
                top1=75.274,
                top5=92.566,
            ),
            _timm(
                "mobilenetv3_large_100.miil_in21k_ft_in1k",
                TIMM_RELEASES + "v0.1-tresnet/mobilenetv3_large_100_1k_miil_78_0-66471c13.pth",
                MIIL,
                77.916,
                92.906,
            ),
            _timm(
                "mobilenetv3_large_100.ra_in1k",
                TIMM_RELEASES + "v0.1-weights/mobilenetv3_large_100_ra-f55367f5.pth",
                TIMM,
                75.766,
                92.544,
            ),
            WeightSource(
                tag="torchvision:IMAGENET1K_V1",
                url="https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
                preprocess=TORCHVISION,
                top1=74.042,
                top5=91.340,
            ),
            _timm(
                "tf_mobilenetv3_large_100.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_large_100-427764d5.pth",
                TF,
                75.516,
                92.600,
                tf_port=True,
            ),
            _tflite("v3-large_224_1.0_float", 75.2),
            _tflite("v3-large_224_1.0_uint8", 73.9),
        ),
    ),
    ModelEntry(
        name="mobilenetv3_large_075",
        size="large",
        width=0.75,
        params=3_993_528,
        macs=154_560_624,
        weights=(
            _timm(
                "tf_mobilenetv3_large_075.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_large_075-150ee8b0.pth",
                TF,
                73.438,
                91.350,
                tf_port=True,
            ),
            _tflite("v3-large_224_0.75_float", 73.3),
        ),
    ),
    ModelEntry(
        name="mobilenetv3_small_minimal_100",
        size="small",
        width=1.0,
        minimal=True,
        params=2_044_736,
        macs=52_288_448,
        weights=(
            _timm(
                "tf_mobilenetv3_small_minimal_100.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_small_minimal_100-922a7843.pth",
                TF,
                62.906,
                84.230,
                tf_port=True,
            ),
            _tflite("v3-small-minimalistic_224_1.0_float", 61.9),
        ),
    ),
    ModelEntry(
        name="mobilenetv3_large_minimal_100",
        size="large",
        width=1.0,
        minimal=True,
        params=3_924_288,
        macs=209_136_704,
        weights=(
            _timm(
                "tf_mobilenetv3_large_minimal_100.in1k",
                TIMM_RELEASES + "v0.1-weights/tf_mobilenetv3_large_minimal_100-8596ae28.pth",
                TF,
                72.250,
                90.630,
                tf_port=True,
            ),
            _tflite("v3-large-minimalistic_224_1.0_float", 72.3),
        ),
    ),
)
