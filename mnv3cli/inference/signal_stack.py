"""Keep the calling thread's alternate signal stack across OpenVINO compilations.

OpenVINO's CPU plugin (seen with 2026.4) installs an alternate signal stack on the thread that
compiles a model; when that compiled model is released it unmaps its stack and, if its stack is the
thread's current one, puts back the stack it found at compile time. With two compiled models alive
at once and released in the order they were made (``profile``'s fp32 and int8 rows, the trials of
``export --int8``, a test session), the second one "restores" the first one's stack, already
unmapped. From then on, every signal that has a Python handler (Ctrl-C, SIGTERM, the SIGCHLD
handler of a PyTorch DataLoader) kills the process with SIGSEGV: the kernel cannot write the
handler's frame, and not even faulthandler gets to say so.

Putting the thread's own stack back right after each compilation means every compiled model
remembers that one, and none of them is ever the current stack when released, whatever the order.
Linux only (``stack_t``'s field order differs elsewhere); a no-op where the call is unavailable.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator


class _StackT(ctypes.Structure):  # struct stack_t of Linux (glibc and musl, every architecture)
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.POINTER(_StackT), ctypes.POINTER(_StackT)]
    function.restype = ctypes.c_int
    return function


_SIGALTSTACK = _sigaltstack()


def current() -> tuple[int | None, int, int] | None:
    """The calling thread's alternate signal stack as ``(address, flags, size)``; None where it
    cannot be read."""
    if _SIGALTSTACK is None:
        return None
    stack = _StackT()
    if _SIGALTSTACK(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp, stack.ss_flags, stack.ss_size


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Run the block, then give the calling thread back the alternate signal stack it had before."""
    if _SIGALTSTACK is None:
        yield
        return
    before = _StackT()
    saved = _SIGALTSTACK(None, ctypes.byref(before)) == 0
    try:
        yield
    finally:
        if saved:
            _SIGALTSTACK(ctypes.byref(before), None)
