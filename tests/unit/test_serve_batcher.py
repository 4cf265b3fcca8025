"""The dynamic batcher of ``mnv3 serve``: concurrent images share model calls, each request gets its
own row back, batches respect ``max_batch``, a failing model call fails only its own requests, and
``close`` finishes what was submitted. The backend here is a plain NumPy function (any callable from
``[N, 3, H, W]`` to logits is a backend) whose logits single out the class an image encodes, so a
row delivered to the wrong request shows.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mnv3cli.serving.batcher import Batcher

CLASSES = 40


class Recording:
    """Logits with a spike at the class each image is filled with; records every batch size."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_on = fail_on

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        classes = batch[:, 0, 0, 0].astype(int)
        if self.fail_on is not None and self.fail_on in classes:
            raise RuntimeError(f"model failed on class {self.fail_on}")
        logits = np.zeros((len(batch), CLASSES), np.float32)
        logits[np.arange(len(batch)), classes] = 10.0
        return logits


def image(cls: int) -> np.ndarray:
    return np.full((3, 4, 4), cls, np.float32)


def submit_together(batcher: Batcher, classes: list[int]) -> list:
    """Submit one image per class from as many threads at once; the futures in class order."""
    futures: list = [None] * len(classes)
    barrier = threading.Barrier(len(classes))

    def one(i: int) -> None:
        barrier.wait()
        futures[i] = batcher.submit(image(classes[i]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(classes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return futures


def test_concurrent_images_run_together_and_each_gets_its_own_row():
    backend, seen = Recording(), []
    batcher = Batcher(backend, max_batch=8, max_wait=0.2, on_batch=lambda n, s: seen.append(n))
    try:
        futures = submit_together(batcher, list(range(20)))
        probs = [future.result(timeout=30) for future in futures]
    finally:
        batcher.close()
    assert [int(np.argmax(p)) for p in probs] == list(range(20))
    assert all(abs(float(p.sum()) - 1) < 1e-5 for p in probs)  # probabilities, not logits
    assert sum(backend.sizes) == 20 and max(backend.sizes) <= 8
    assert len(backend.sizes) <= 5  # 20 images arriving together: a handful of calls, not 20
    assert seen == backend.sizes


def test_no_wait_still_answers_a_lone_image():
    backend = Recording()
    batcher = Batcher(backend, max_batch=4, max_wait=0)
    try:
        assert int(np.argmax(batcher.submit(image(7)).result(timeout=30))) == 7
    finally:
        batcher.close()
    assert backend.sizes == [1]


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs():
    batcher = Batcher(Recording(fail_on=3), max_batch=4, max_wait=0.2)
    try:
        futures = submit_together(batcher, [1, 2, 3])
        for future in futures:
            with pytest.raises(RuntimeError, match="model failed on class 3"):
                future.result(timeout=30)
        assert int(np.argmax(batcher.submit(image(5)).result(timeout=30))) == 5
    finally:
        batcher.close()


def test_close_finishes_what_was_submitted_then_refuses_more():
    backend = Recording()
    batcher = Batcher(backend, max_batch=2, max_wait=0.05)
    futures = [batcher.submit(image(i)) for i in range(5)]
    batcher.close(timeout=30)
    assert [int(np.argmax(f.result(timeout=0))) for f in futures] == list(range(5))
    assert sum(backend.sizes) == 5 and max(backend.sizes) <= 2
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(image(0))
    batcher.close()  # twice is fine


def test_a_cancelled_request_is_not_run():
    backend = Recording()
    gate = threading.Event()

    def slow(batch):
        gate.wait(30)
        return backend(batch)

    batcher = Batcher(slow, max_batch=1, max_wait=0)
    try:
        first = batcher.submit(image(1))  # holds the model until the gate opens
        gone = batcher.submit(image(2))
        assert gone.cancel()  # its client left while it waited
        last = batcher.submit(image(3))
        gate.set()
        assert int(np.argmax(first.result(timeout=30))) == 1 and int(np.argmax(last.result(timeout=30))) == 3
    finally:
        batcher.close()
    assert backend.sizes == [1, 1]


def test_a_batch_stops_waiting_when_no_announced_image_is_left():
    """With a long ``max_wait``, a lone image runs at once when nothing is announced, and a batch
    waits exactly for the images announced (decoding) and no longer."""
    model = Recording()
    batcher = Batcher(model, max_batch=32, max_wait=30.0, announced=True)
    try:
        start = time.monotonic()
        assert int(batcher.submit(image(3)).result(10).argmax()) == 3
        assert time.monotonic() - start < 5  # not the 30 s max_wait
        batcher.expect(2)
        first = batcher.submit(image(1), expected=True)
        time.sleep(0.2)
        assert not first.done()  # one announced image is still on its way
        second = batcher.submit(image(2), expected=True)
        assert [int(f.result(10).argmax()) for f in (first, second)] == [1, 2]
        assert model.sizes == [1, 2]
        batcher.expect(1)
        batcher.expect(-1)  # its decoding failed: nothing to wait for
        start = time.monotonic()
        assert int(batcher.submit(image(4)).result(10).argmax()) == 4 and time.monotonic() - start < 5
    finally:
        batcher.close(10)


def test_swap_runs_later_batches_on_the_new_backend_and_tags_them():
    batcher = Batcher(Recording(), max_batch=4, max_wait=0.0, tag="old")
    try:
        before = batcher.submit(image(5))
        assert int(before.result(10).argmax()) == 5 and before.tag == "old"
        batcher.swap(lambda batch: -Recording()(batch), "new")  # the new model: a different answer
        after = batcher.submit(image(5))
        assert int(after.result(10).argmax()) != 5 and after.tag == "new"
    finally:
        batcher.close(10)
