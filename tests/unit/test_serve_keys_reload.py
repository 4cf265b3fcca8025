"""``mnv3 serve``'s API keys and hot reload, in-process on the real int8 model: every classifying
route needs the key (401 JSON otherwise), health checks and the page stay open, keys come from a
file and the environment; a reload swaps the model between batches and names it in every answer,
and a file that cannot be loaded keeps the old model serving. Under real load: tests/cli.
"""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from mnv3cli.serving import ServeSettings, create_app  # noqa: E402

MODEL = "mobilenetv3_small_100"
INFER = f"/v2/models/{MODEL}/infer"
KEY = "k" * 12 + "-secret-key"


@pytest.fixture(scope="module")
def runtime(bundled_weights):
    from mnv3cli.inference import open_runtime

    return open_runtime(str(bundled_weights), pipelined=True)


@pytest.fixture(scope="module")
def client(runtime):
    with TestClient(create_app(runtime, ServeSettings(max_wait_ms=1))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photos(cat_photo, coffee_photo) -> list[bytes]:
    return [cat_photo.read_bytes(), coffee_photo.read_bytes()]


@pytest.fixture(scope="module")
def keyed(runtime):
    settings = ServeSettings(max_wait_ms=1, api_keys=(KEY, "another-key-0123456789"), protect_metrics=True)
    with TestClient(create_app(runtime, settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v1/predict"),
        ("POST", INFER),
        ("POST", f"/predictions/{MODEL}"),
        ("GET", "/v1/model"),
        ("GET", f"/v2/models/{MODEL}"),
        ("POST", "/v1/admin/reload"),
        ("GET", "/metrics"),
    ],
)
def test_api_key_needed_on_every_classifying_route(keyed, photos, method, path):
    for headers, problem in (
        ({}, "this server needs an API key"),
        ({"Authorization": "Bearer " + KEY[:-1] + "X"}, "wrong API key"),
        ({"Authorization": "Basic " + KEY}, "wrong API key"),
    ):
        response = keyed.request(method, path, content=photos[0], headers={"Content-Type": "image/jpeg", **headers})
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"].startswith(problem) and response.headers["www-authenticate"].startswith(
            "Bearer"
        )
    ok = keyed.request(
        method, path, content=photos[0], headers={"Content-Type": "image/jpeg", "Authorization": f"bearer {KEY}"}
    )
    assert ok.status_code != 401


def test_health_and_page_stay_open(keyed):
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready", "/ping", "/"):
        assert keyed.get(path).status_code == 200, path
    page = keyed.get("/").text
    assert "window.prompt" in page and "Authorization: `Bearer" in page


def test_predict_with_either_key(keyed, photos):
    for key in (KEY, "another-key-0123456789"):
        response = keyed.post(
            "/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200 and response.json()["predictions"][0]["label"] == "Egyptian cat"


def test_api_keys_from_a_file_and_the_environment(tmp_path):
    from mnv3cli.errors import UserError
    from mnv3cli.serving.auth import load_keys

    keys = tmp_path / "keys"
    keys.write_text(f"# ops\n\n{KEY}\n  second-key-abcdefghijk  \n")
    assert load_keys(str(keys), {"MNV3_API_KEY": "third-key-abcdefghijkl"}) == (
        KEY,
        "second-key-abcdefghijk",
        "third-key-abcdefghijkl",
    )
    assert load_keys(None, {}) == ()
    keys.write_text("short\n")
    with pytest.raises(UserError, match="line 1: not a usable API key"):
        load_keys(str(keys), {})
    with pytest.raises(UserError, match=r"\$MNV3_API_KEY: not a usable API key"):
        load_keys(None, {"MNV3_API_KEY": "has space in it, long enough"})
    with pytest.raises(UserError, match="cannot read it"):
        load_keys(str(tmp_path / "none"), {})
    keys.write_text("# nothing\n")
    with pytest.raises(UserError, match="no key in it"):
        load_keys(str(keys), {})


def test_hot_reload_swaps_the_version_and_a_failure_keeps_the_old_model(runtime, other_weights, photos):
    from mnv3cli.inference import open_runtime

    loads = iter(
        [
            lambda: open_runtime(str(other_weights), pipelined=True),
            lambda: (_ for _ in ()).throw(ValueError("model.tflite: not a TFLite flatbuffer")),
        ]
    )
    settings = ServeSettings(max_wait_ms=1, reload=lambda: next(loads)())
    old, new = runtime.card.sha256[:12], hashlib.sha256(other_weights.read_bytes()).hexdigest()[:12]
    with TestClient(create_app(runtime, settings)) as client:
        assert client.get("/v1/model").json()["model_version"] == old
        assert client.get("/v1/model").json()["reload"] == {"state": "none"}
        response = client.post("/v1/admin/reload", params={"wait": True})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == new != old
        answer = client.post("/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg"}).json()
        assert answer["model_version"] == new and answer["predictions"][0]["label"] == "Egyptian cat"
        failed = client.post("/v1/admin/reload", params={"wait": True})
        assert failed.status_code == 422 and "not a TFLite flatbuffer" in failed.json()["error"]
        card = client.get("/v1/model").json()
        assert card["model_version"] == new and card["reload"]["state"] == "failed"
        assert "not a TFLite flatbuffer" in card["reload"]["error"]
        still = client.post("/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg"})
        assert still.status_code == 200 and still.json()["model_version"] == new


def test_reload_refuses_weights_expecting_other_input_and_a_server_without_a_loader(runtime, client):
    from dataclasses import replace

    other = replace(runtime, card=replace(runtime.card, preprocess=replace(runtime.card.preprocess, input_size=192)))
    with TestClient(create_app(runtime, ServeSettings(max_wait_ms=1, reload=lambda: other))) as keyless:
        refused = keyless.post("/v1/admin/reload", params={"wait": True})
        assert refused.status_code == 422 and "expect other input" in refused.json()["error"]
        assert keyless.get("/v1/model").json()["model_version"] == runtime.card.sha256[:12]
    response = client.post("/v1/admin/reload")
    assert response.status_code == 409 and "not started with weights it can reload" in response.json()["error"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--protect-metrics"], {}, "--protect-metrics needs an API key (--api-key-file or $MNV3_API_KEY)"),
        (["--api-key-file", "no-such-keys"], {}, "--api-key-file no-such-keys: cannot read it (No such file"),
        ([], {"MNV3_API_KEY": "short"}, "$MNV3_API_KEY: not a usable API key"),
    ],
)
def test_key_options_fail_before_the_model_loads(monkeypatch, tmp_path, args, env, message):
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNV3_API_KEY", raising=False)
    result = CliRunner(env=env).invoke(cli, ["serve", "--port", "0", "--weights", "no-such.tflite", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mnv3: error: {message}"), result.stderr


def test_a_reload_asked_for_while_one_runs_runs_again_after_it(runtime):
    import threading

    from mnv3cli.serving.reload import ModelSlot

    started, release, calls = threading.Event(), threading.Event(), []

    def load():
        calls.append(len(calls))
        started.set()
        release.wait(30)
        if len(calls) == 1:
            raise SystemExit(2)  # even this keeps the old model
        return runtime

    slot = ModelSlot(runtime, load)
    assert slot.reload() is True
    started.wait(30)
    assert slot.reload() is False and slot.status["state"] == "loading"  # queued behind the running one
    release.set()
    assert slot.wait(30)
    assert calls == [0, 1] and slot.status["state"] == "loaded"


def test_a_refusal_before_an_expected_body_closes_the_connection(keyed, photos):
    """No key: the 401 comes before the body (with ``Expect: 100-continue`` or without), which must
    never be read as a next request on the same connection: every refusal sent before the body is
    read closes the connection (the connection guard, :mod:`mnv3cli.serving.guard`)."""
    response = keyed.post(
        "/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg", "Expect": "100-continue"}
    )
    assert response.status_code == 401 and response.headers["connection"] == "close"
    drained = keyed.post("/v1/predict", content=photos[0], headers={"Content-Type": "image/jpeg"})
    assert drained.status_code == 401 and drained.headers["connection"] == "close"
