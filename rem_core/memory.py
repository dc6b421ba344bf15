"""The process's allocator: keep freed memory for the next step instead of returning it."""

from __future__ import annotations

import ctypes
import functools

__all__ = ["keep_freed_memory"]


@functools.cache
def keep_freed_memory() -> None:
    """Let glibc's allocator reuse the freed activations of one step in the next.

    By default glibc serves large blocks from fresh pages (``mmap``, above a threshold that
    adapts between 128 KiB and 32 MiB) and hands freed memory at the top of its heap back to
    the kernel, so every training step pays page faults for its activations: a third of a
    step's time went to the kernel on this machine. Thresholds of 256 MiB (mmap) and 512 MiB
    (trim) keep that memory in the heap for the next step. PyTorch's own CPU advice is a
    caching allocator such as jemalloc; this has the same effect without one. Process-wide,
    set once; a no-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 256 << 20)
    mallopt(m_trim_threshold, 512 << 20)
