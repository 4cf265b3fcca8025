"""Dynamic batching: images from concurrent requests run through the model together.

One model call on 16 images costs far less than 16 calls on one (MobileNetV3 on ONNX Runtime: about
a third per image on CPU), so under load a server that batches approaches ``mnv3 evaluate``'s
throughput while one that does not stays at batch-1 speed. Requests hand their decoded image to
:meth:`Batcher.submit` and wait on the returned future; one thread takes the first image that
arrives, waits at most ``max_wait`` seconds for more (never beyond ``max_batch``), runs the model
once and hands each request its own row of probabilities. It stops waiting as soon as no image is
on its way: callers announce the images they are decoding (:meth:`Batcher.expect`), so with few
clients a batch runs the moment its last image is ready instead of idling out ``max_wait``. Only
this thread calls the model, so a backend need not be thread-safe, and :meth:`Batcher.swap` (hot
reload) takes effect between two batches: a batch runs whole on the model it started with, and
each future says which (``tag``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from ..evaluation.metrics import softmax
from ..evaluation.multilabel import sigmoid
from ..inference.backends import Backend

_STOP = object()


class Submitted(Future):
    """A submitted image's future; ``tag`` is the tag of the model that ran it (see :meth:`Batcher.swap`)."""

    tag: object = None


class Batcher:
    """Collects submitted images into batches of at most ``max_batch`` and runs ``backend`` on them.

    ``on_batch(size, seconds)`` is called after every model call (metrics). ``announced``: the
    callers announce the images they prepare (:meth:`expect`), so a batch waits only while one is
    on its way (without: always ``max_wait``, for images nobody said were coming). :meth:`close`
    lets the images already submitted finish, then stops the thread; submitting after that is an
    error.
    """

    def __init__(
        self,
        backend: Backend,
        max_batch: int = 32,
        max_wait: float = 0.005,
        on_batch: Callable[[int, float], None] | None = None,
        tag: object = None,
        announced: bool = False,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait >= 0 (got {max_batch}, {max_wait})")
        self.max_batch, self.max_wait = max_batch, max_wait
        self._model = (backend, tag)  # one attribute, replaced whole: the batch thread reads it once per batch
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._expected = 0  # images announced (being decoded) and not yet submitted
        self.announced = announced  # callers announce every image: wait only for those announced
        self._thread = threading.Thread(target=self._run, name="mnv3-batcher", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> Backend:
        return self._model[0]

    def swap(self, backend: Backend, tag: object = None) -> None:
        """Run the next batches on ``backend``; the batch running now finishes on the old one."""
        self._model = (backend, tag)

    def expect(self, count: int = 1) -> None:
        """``count`` more images are on their way (negative: that many will not come after all).
        A batch waits for company only while some image is announced and not yet submitted."""
        with self._lock:
            self._expected += count

    def submit(self, image: np.ndarray, expected: bool = False) -> Submitted:
        """Queue one preprocessed image ``[3, H, W]`` (``expected``: announced by :meth:`expect`);
        the future resolves to its class probabilities ``[num_classes]`` (or to the exception the
        model raised)."""
        future = Submitted()
        with self._lock:  # no image may slip in behind the stop marker
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._expected -= expected
            self._queue.put((image, future))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Finish what was submitted, then stop the thread (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    if remaining <= 0 or (self.announced and self._expected <= 0):  # nothing more is coming
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stopping = True  # run what was collected, then stop
                    break
                batch.append(item)
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[np.ndarray, Submitted]]) -> None:
        live = [
            (image, future) for image, future in batch if future.set_running_or_notify_cancel()
        ]  # skip requests whose client left
        if not live:
            return
        images, futures = np.stack([image for image, _ in live]), [future for _, future in live]
        backend, tag = self._model
        start = time.perf_counter()
        try:
            logits = np.asarray(backend(images), dtype=np.float32)
            # a multi-label (sigmoid-head) model scores each class on its own
            probs = sigmoid(logits).astype(np.float32) if _multi_label(tag) else softmax(logits)
        except Exception as exc:  # the model failed: every waiting request learns why, the next batch runs
            for future in futures:
                future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(futures), time.perf_counter() - start)
        for future, row in zip(futures, probs, strict=False):
            future.tag = tag
            future.set_result(row)


def _multi_label(tag: object) -> bool:
    """Whether the model a tag stands for (a :class:`~.reload.Served`) has a sigmoid head."""
    card = getattr(getattr(tag, "runtime", None), "card", None)
    return bool(getattr(card, "multi_label", False))
