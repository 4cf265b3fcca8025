"""Hot reload: new weights replace the served model without dropping a request.

An operator replaces the weights file and sends ``SIGHUP`` (or an authenticated
``POST /v1/admin/reload``); the new model is loaded on a background thread, called once, and only
then handed to the :class:`~.batcher.Batcher`, which swaps it in between two batches: requests in
flight finish on the old model, later ones run on the new, and every answer names the model that
gave it (``model_version``, a prefix of the weights' SHA-256). Loading runs the same code as the
start-up (``load``, given by the command), so whatever the start-up refuses (a corrupt or foreign
file) leaves the old model serving; the failure is reported in ``GET /v1/model``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..inference.runtime import Runtime

VERSION_CHARS = 12  # of the SHA-256: enough to tell weights apart, short enough to read


@dataclass(frozen=True)
class Served:
    """A model being served and its version (what answers carry as ``model_version``)."""

    runtime: Runtime
    version: str


def version_of(runtime: Runtime) -> str:
    """The weights' SHA-256 prefix; for a model without one, the hash of its card."""
    digest = (
        runtime.card.sha256 or hashlib.sha256(json.dumps(runtime.card.to_dict(), sort_keys=True).encode()).hexdigest()
    )
    return digest[:VERSION_CHARS]


class ModelSlot:
    """The model being served (``current``), and at most one replacement loading at a time.

    ``load()`` opens the new model (the command's own loader); ``on_swap(served)`` puts it to work
    (the batcher's :meth:`~.batcher.Batcher.swap`). ``status`` describes the last reload for
    ``/v1/model``: ``state`` is ``none``, ``loading``, ``loaded`` or ``failed`` (with ``error``).
    """

    def __init__(self, runtime: Runtime, load: Callable[[], Runtime] | None = None) -> None:
        self.current = Served(runtime, version_of(runtime))
        self.load = load
        self.on_swap: Callable[[Served], None] | None = None
        self.status: dict = {"state": "none"}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._again = False  # a reload was asked for while one ran: run another after it

    def reload(self) -> bool:
        """Start loading the new model in the background; False when a reload is already running
        (another follows it, so the file as it is now gets loaded) or when this server cannot reload."""
        if self.load is None:
            self.status = {"state": "failed", "error": "this server was not started with weights it can reload"}
            return False
        with self._lock:
            if not self._done.is_set():
                self._again = True
                return False
            self._done.clear()
            self.status = {"state": "loading", "since": _now()}
        threading.Thread(target=self._run, name="mnv3-reload", daemon=True).start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running reload, if any; True when none is running any more."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                served = self._open()
            except BaseException as exc:  # any failure to load (even SystemExit) keeps the old model serving
                self.status = {"state": "failed", "error": _one_line(exc), "at": _now()}
            else:
                if self.on_swap is not None:
                    self.on_swap(served)
                self.current = served
                self.status = {"state": "loaded", "model_version": served.version, "at": _now()}
            with self._lock:
                if not self._again:
                    self._done.set()
                    return
                self._again = False
                self.status = {"state": "loading", "since": _now()}

    def _open(self) -> Served:
        assert self.load is not None
        runtime = self.load()
        old = self.current.runtime.card.preprocess
        if runtime.card.preprocess != old:
            raise ValueError(
                f"the new weights expect other input ({runtime.card.preprocess.to_dict()}, "
                f"not {old.to_dict()}): restart the server to serve them"
            )
        size = runtime.card.preprocess.input_size
        runtime.backend(np.zeros((1, 3, size, size), np.float32))  # warm, and proven to run, before it serves
        return Served(runtime, version_of(runtime))


@contextlib.contextmanager
def reload_on_sighup(slot: ModelSlot, call_soon: Callable[[Callable[[], object]], object]) -> Iterator[None]:
    """While inside, SIGHUP reloads ``slot`` (through ``call_soon``, the event loop's thread-safe
    scheduling); the previous handler is restored afterwards. Signals reach only the main thread:
    elsewhere (tests, an embedding program) this does nothing."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: call_soon(slot.reload))
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def admin_router(slot: ModelSlot) -> APIRouter:
    """``POST /v1/admin/reload`` (behind the API key when the server has one)."""
    router = APIRouter()

    @router.post("/v1/admin/reload", summary="Load the weights file again and serve it once it runs (hot reload)")
    async def reload(
        wait: bool = Query(False, description="Answer when the new model serves (200) or has failed (422)."),
    ) -> JSONResponse:
        started = slot.reload()
        if slot.load is None:
            return JSONResponse({"error": slot.status["error"]}, status_code=409)
        if wait:
            await asyncio.to_thread(slot.wait)
            status = slot.status
            body = {"reload": status, "model_version": slot.current.version}
            if status["state"] == "failed":
                return JSONResponse({"error": f"reload failed: {status['error']}", **body}, status_code=422)
            return JSONResponse(body)
        return JSONResponse(
            {"reload": {**slot.status, "started": started}, "model_version": slot.current.version}, status_code=202
        )

    return router


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
