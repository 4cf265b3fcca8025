"""``mnv3 convert``: TFLite -> .pt -> .safetensors keeps the logits, and every bad or hostile input
is one error line with exit status 2 (no traceback, and a malicious pickle never runs).
"""

from __future__ import annotations

import pickle


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the loader ever runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_the_payload_would_run_if_unpickled_unsafely(tmp_path):
    """Proves the hostile files below are live: plain pickle does create the marker."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()
