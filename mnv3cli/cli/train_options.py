"""The options of ``mnv3 train`` that map onto :class:`~mnv3cli.training.config.TrainConfig` fields,
as a table (flags, field, click type, help) from which :mod:`mnv3cli.cli.train` generates them."""

from __future__ import annotations

import click

from ..training import AMP_MODES, AUGMENTS, CLASS_WEIGHTS, DEFAULT_MODEL, LOSSES, OPTIMIZERS, SAMPLERS

# (flags, config field, click type, help), most used first (the order of --help). Defaults come
# from TrainConfig.
OPTIONS: list[tuple[tuple[str, ...], str, object, str]] = [
    (
        ("-w", "--weights"),
        "weights",
        str,
        (
            "Start from these weights (a tag, .pt, .safetensors or .tflite); the head is replaced for DATA's "
            "classes. Without it the model trains from scratch."
        ),
    ),
    (
        ("-m", "--model"),
        "model",
        str,
        f"Registry model (see `mnv3 models`); inferred from --weights [default without: {DEFAULT_MODEL}].",
    ),
    (("-e", "--epochs"), "epochs", click.IntRange(1), "Epochs."),
    (("-b", "--batch-size"), "batch_size", click.IntRange(1), "Images per step (per process)."),
    (
        ("--lr",),
        "lr",
        click.FloatRange(0, min_open=True),
        "Peak learning rate [default: 1e-3 from scratch, 1e-4 fine-tuning; sgd 10x that].",
    ),
    (
        ("-o", "--output"),
        "output",
        click.Path(file_okay=False),
        "Run folder for last.pt, best.pt, metrics.csv, config.json, curves.png [default: runs/<DATA name>].",
    ),
    (
        ("-r", "--resolution"),
        "resolution",
        click.IntRange(16, 4096),
        "Input size in pixels [default: the weights' (224)].",
    ),
    (
        ("--val",),
        "val",
        click.Path(),
        "Labelled validation images, a folder or manifest (default: DATA/val, or a manifest's val rows).",
    ),
    (
        ("--val-split",),
        "val_split",
        click.FloatRange(0, 1, min_open=True, max_open=True),
        "Hold out this share of DATA for validation (stratified, seeded), e.g. 0.2.",
    ),
    (
        ("--freeze-bn/--train-bn",),
        "freeze_bn",
        None,
        "Keep BatchNorm statistics fixed, or let them adapt to the new data [default: --train-bn].",
    ),
    (("--bn-momentum",), "bn_momentum", click.FloatRange(0, 1), "BatchNorm momentum while statistics train."),
    (("--dropout",), "dropout", click.FloatRange(0, 1), "Dropout before the classifier [default: 0.2]."),
    (("--optimizer",), "optimizer", click.Choice(OPTIMIZERS), "Optimizer (timm.optim)."),
    (
        ("--weight-decay",),
        "weight_decay",
        click.FloatRange(0),
        "Weight decay, not on biases/norms [default: adamw 0.05, sgd 1e-4, rmsprop 1e-5].",
    ),
    (
        ("--head-lr-scale",),
        "head_lr_scale",
        click.FloatRange(0, min_open=True),
        "Learning-rate multiplier of the classifier [default: 10 for a new head, else 1].",
    ),
    (("--momentum",), "momentum", click.FloatRange(0, 1), "Momentum (sgd, rmsprop)."),
    (("--warmup-epochs",), "warmup_epochs", click.IntRange(0), "Linear warmup before the cosine decay."),
    (("--warmup-lr",), "warmup_lr", click.FloatRange(0), "Learning rate at the start of warmup."),
    (("--min-lr",), "min_lr", click.FloatRange(0), "Learning rate at the end of the cosine."),
    (("--label-smoothing",), "label_smoothing", click.FloatRange(0, 1), "Label smoothing."),
    (
        ("--multi-label/--single-label",),
        "multi_label",
        None,
        "Sigmoid head: any set of classes per image [default: from the data, a manifest's `labels`].",
    ),
    (("--loss",), "loss", click.Choice(LOSSES), "Multi-label loss: BCE with logits, or asymmetric (asl)."),
    (
        ("--class-weights",),
        "class_weights",
        click.Choice(CLASS_WEIGHTS),
        "Weigh each class in the loss: balanced = inverse of its share of the training images.",
    ),
    (
        ("--sampler",),
        "sampler",
        click.Choice(SAMPLERS),
        "Batch order: shuffle each epoch, or balanced = draw every class equally often (with replacement).",
    ),
    (("--mixup",), "mixup", click.FloatRange(0), "Mixup alpha (0 = off)."),
    (("--cutmix",), "cutmix", click.FloatRange(0), "CutMix alpha (0 = off)."),
    (("--augment",), "augment", click.Choice(AUGMENTS), "Extra augmentation policy."),
    (
        ("--crop-scale",),
        "crop_scale",
        click.FloatRange(0, 1, min_open=True),
        "Smallest image area a random crop keeps (0.25; multi-label: 0.8).",
    ),
    (("--hflip",), "hflip", click.FloatRange(0, 1), "Horizontal flip probability."),
    (("--random-erasing",), "random_erasing", click.FloatRange(0, 1), "Random erasing probability."),
    (("--ema/--no-ema",), "ema", None, "Validate and save an exponential moving average of the weights."),
    (("--ema-decay",), "ema_decay", click.FloatRange(0, 1, min_open=True, max_open=True), "EMA decay."),
    (("--clip-grad",), "clip_grad", click.FloatRange(0, min_open=True), "Clip the gradient norm to this."),
    (
        ("--amp",),
        "amp",
        click.Choice(AMP_MODES),
        "Mixed precision: auto = bf16 (or fp16) on CUDA, none on CPU; bf16 also works on CPU.",
    ),
    (
        ("--channels-last/--no-channels-last",),
        "channels_last",
        None,
        "Train in the channels_last (NHWC) memory format: about 1.4x faster on CPU.",
    ),
    (
        ("--patience",),
        "patience",
        click.IntRange(1),
        "Stop early after N epochs without a better validation top-1 (best.pt is kept) [default: off].",
    ),
    (("--tensorboard/--no-tensorboard",), "tensorboard", None, "TensorBoard event files in the run folder."),
    (("--seed",), "seed", click.IntRange(0), "Seed of everything random (data order, augmentation, init)."),
    (
        ("-j", "--workers"),
        "workers",
        click.IntRange(1),
        "Images decoded in parallel, by data-loading processes (1: in the training process) "
        "[default: CPU cores, at most 8].",
    ),
]


# --mlflow takes an optional value, which the table above cannot say
mlflow_option = click.option(
    "--mlflow",
    "mlflow",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[URI]",
    help="Log the run to MLflow: params, metrics per epoch, best.pt as an artifact "
    "[URI default: an mlruns/ file store beside the run folder].",
)
