"""``mnv3 train`` options: config files (YAML, TOML), the run's config.json, and their precedence."""

from __future__ import annotations

import json

import pytest

from mnv3cli.errors import UserError
from mnv3cli.training.config import TrainConfig, build_config, read_config_file


def test_broken_yaml_config_is_reported_on_one_line(tmp_path):
    from mnv3cli.errors import UserError
    from mnv3cli.training.config import read_config_file

    config = tmp_path / "recipe.yaml"
    config.write_text("epochs: [1\nlr: 0.1\n")
    with pytest.raises(UserError) as caught:
        read_config_file(config)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{config}: not a valid YAML file")
    assert "line 2, column 3" in message  # where the parser gave up


def test_layers_defaults_run_file_command_line(tmp_path):
    """defaults < resumed run's config.json < --config file < options typed on the command line."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"config": {"epochs": 7, "seed": 3, "lr": 0.2, "augment": "randaugment"}})
    )
    yaml_file = tmp_path / "recipe.yaml"
    # YAML reads 1e-3 as a string and "yes" as a bool; both must come out typed
    yaml_file.write_text("lr: 1e-3\nbatch-size: 8\nema: yes\nfreeze: 2\nclip_grad: null\nseed: 5\n")
    cfg = build_config({"lr": 0.5, "batch_size": None, "optimizer": "sgd"}, yaml_file, resume=run)
    assert cfg.lr == 0.5 and cfg.optimizer == "sgd"  # command line
    assert cfg.batch_size == 8 and cfg.ema is True and cfg.freeze == 2 and cfg.seed == 5  # file
    assert cfg.epochs == 7 and cfg.augment == "randaugment"  # resumed run
    assert cfg.label_smoothing == TrainConfig().label_smoothing  # default
    assert cfg.resolved_weight_decay == 1e-4  # sgd's default, since none was given


def test_toml_config_and_dashed_names(tmp_path):
    toml_file = tmp_path / "recipe.toml"
    toml_file.write_text(
        'epochs = 3\nweight-decay = 0.01\nmodel = "mobilenetv3_small_075"\namp = "bf16"\nchannels_last = true\n'
    )
    assert read_config_file(toml_file) == {
        "epochs": 3,
        "weight_decay": 0.01,
        "model": "mobilenetv3_small_075",
        "amp": "bf16",
        "channels_last": True,
    }
    cfg = build_config({"epochs": 4}, toml_file)
    assert (cfg.epochs, cfg.weight_decay, cfg.amp, cfg.channels_last) == (4, 0.01, "bf16", True)
    assert cfg.resolved_lr == 1e-3  # adamw default


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("a.yaml", "lr: 0.1\nlearning_rate: 0.1\n", "unknown option 'learning_rate'"),
        ("a.yaml", "batch_size: eight\n", "batch_size = 'eight' is not a valid int"),
        ("a.yaml", "epochs: 2.5\n", "not a valid int"),
        ("a.yaml", "- lr\n- 0.1\n", "expected a mapping"),
        ("a.yaml", "lr: [0.1\n", "not a valid YAML file"),
        ("a.toml", "lr = \n", "not a valid TOML file"),
        ("a.ini", "lr = 1\n", "must end in .yaml, .yml or .toml"),
        ("a.yaml", "optimizer: adam\n", "--optimizer: 'adam' is not one of adamw, sgd, rmsprop"),
        ("a.yaml", "val_split: 1.5\n", "--val-split: must be between 0 and 1"),
        ("a.yaml", "lr: -1\n", "--lr: must not be negative"),
        ("a.yaml", "resolution: 5000\n", "--resolution: must be 16 to 4096 pixels"),  # the card's bound
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        build_config({}, path)


def test_missing_config_and_run(tmp_path):
    with pytest.raises(UserError, match="cannot read config file"):
        build_config({}, tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not a training run"):
        build_config({}, resume=tmp_path)


def test_a_runs_resolved_config_reads_back_unchanged(tmp_path):
    cfg = TrainConfig(data="d", epochs=3, freeze=0, extra={"note": "x"}, optimizer="sgd")
    (tmp_path / "config.json").write_text(json.dumps({"config": cfg.resolved_dict()}))
    back = build_config({}, resume=tmp_path)
    assert back.resolved_dict() == cfg.resolved_dict() and back.lr == 0.01 and back.weight_decay == 1e-4
