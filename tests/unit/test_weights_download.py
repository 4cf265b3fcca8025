"""Downloads go through torch.hub's cache: cached files are reused (and hash-checked), archives are
unpacked, and being offline is one clear error. Nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile

import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.registry import WeightSource
from mnv3cli.registry.entries import TF, TORCHVISION
from mnv3cli.weights.download import cache_dir, fetch
from mnv3cli.weights.loader import load_model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch.hub cache in a temporary $TORCH_HOME, offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MNV3_OFFLINE", "1")
    directory = cache_dir()
    assert directory == tmp_path / "torch" / "hub" / "checkpoints"
    directory.mkdir(parents=True)
    return directory


def torchvision_small_bytes() -> bytes:
    import torchvision

    buffer = io.BytesIO()
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), buffer)
    return buffer.getvalue()


def test_offline_names_the_file_and_the_way_out_in_one_short_line(hub):
    """The URL and the cache path made the line 250 columns long; `mnv3 models --json` lists the
    URLs, and the file can be given with --weights."""
    with pytest.raises(UserError) as err:
        load_model("torchvision:IMAGENET1K_V1", "mobilenetv3_small_100")
    message = str(err.value)
    assert message == "offline: mobilenet_v3_small-047dcff4.pth not cached; use --weights"
    assert len(f"mnv3: error: {message}") <= 80
    assert list(hub.iterdir()) == []


def test_network_failure_is_a_user_error(hub, monkeypatch):
    monkeypatch.delenv("MNV3_OFFLINE")
    source = WeightSource(
        tag="torchvision:test", url="http://127.0.0.1:1/mobilenet_v3_small-0123abcd.pth", preprocess=TORCHVISION
    )  # a closed local port: refused at once
    with pytest.raises(UserError, match=r"cannot download http://127\.0\.0\.1:1/\S+: .*--weights PATH"):
        fetch(source, progress=False)
    assert list(hub.iterdir()) == []  # no partial file left in the cache


def test_cached_file_is_reused_when_its_hash_prefix_matches(hub):
    data = torchvision_small_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"mobilenet_v3_small-{digest[:8]}.pth"
    (hub / name).write_bytes(data)
    source = WeightSource(tag="torchvision:test", url=f"https://download.invalid/models/{name}", preprocess=TORCHVISION)
    assert source.hash_prefix == digest[:8]
    assert fetch(source) == (hub / name, digest)  # offline, so it came from the cache


def test_cached_file_with_a_wrong_hash_is_reported(hub):
    """The name torchvision gives its download, but other content: refused, not silently loaded."""
    (hub / "mobilenet_v3_small-047dcff4.pth").write_bytes(torchvision_small_bytes())
    with pytest.raises(
        UserError,
        match=r"mobilenet_v3_small-047dcff4\.pth: sha256 \w+\.\.\. does not "
        r"match the published prefix 047dcff4.*delete it",
    ):
        load_model("torchvision:IMAGENET1K_V1", "mobilenetv3_small_100")


def test_tflite_tag_unpacks_a_cached_archive(hub, uint8_tflite):
    """Google's .tgz in the cache: the .tflite member is extracted, the archive dropped, and the
    tag loads with the registry's settings."""
    name = "v3-small_224_1.0_uint8"
    with tarfile.open(hub / f"{name}.tgz", "w:gz") as tar:
        tar.add(uint8_tflite, arcname=f"{name}/{name}.tflite")
    loaded = load_model(f"tflite:{name}")
    assert [p.name for p in hub.iterdir()] == [f"{name}.tflite"]
    assert loaded.card.model_name == "mobilenetv3_small_100" and loaded.card.source == f"tflite:{name}"
    assert loaded.card.preprocess == TF and loaded.card.arch["tf_padding"] is True
    assert loaded.card.sha256 == hashlib.sha256(uint8_tflite.read_bytes()).hexdigest()
    assert loaded.meta == {"format": "tflite"} and loaded.model.num_classes == 1000


def test_cached_tflite_is_used_without_the_archive(hub, int8_tflite):
    # the int8 file stands in for Google's float one: same name in the cache, same architecture
    shutil.copy(int8_tflite, hub / "v3-small_224_1.0_float.tflite")
    loaded = load_model("tflite:v3-small_224_1.0_float")
    assert loaded.card.model_name == "mobilenetv3_small_100"
