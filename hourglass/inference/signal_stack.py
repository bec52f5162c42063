"""The calling thread's alternate signal stack, put back after a library replaced it.

OpenVINO's CPU plugin installs its own alternate signal stack (``sigaltstack``) on the thread that compiles a model
and leaves it there; once that memory is released, the next signal the thread handles on its alternate stack (every
Python handler, and faulthandler's, are installed with ``SA_ONSTACK``) cannot be delivered and the kernel kills the
process with SIGSEGV. In the test process this struck a later test when its `git` subprocess ended (SIGCHLD), with no
Python traceback. Calls into OpenVINO therefore run inside :func:`kept_signal_stack`, which restores the thread's
own stack (CPython's faulthandler's, or none) afterwards. Linux with glibc only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _StackT(ctypes.Structure):
    """``stack_t`` of <signal.h> on Linux: base, flags, size."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "sigaltstack") else None


def current_signal_stack() -> tuple[int, int, int] | None:
    """(base, flags, size) of this thread's alternate signal stack; None where it cannot be read."""
    libc = _libc()
    if libc is None:
        return None
    stack = _StackT()
    if libc.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then give the thread back the alternate signal stack it had before."""
    libc = _libc()
    saved = _StackT()
    if libc is None or libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        now = _StackT()
        libc.sigaltstack(None, ctypes.byref(now))
        if (now.ss_sp, now.ss_size) != (saved.ss_sp, saved.ss_size):
            if saved.ss_flags & 2:  # SS_DISABLE: the thread had none
                restore = _StackT(None, 2, 0)
            else:
                restore = _StackT(saved.ss_sp, 0, saved.ss_size)
            libc.sigaltstack(ctypes.byref(restore), None)
