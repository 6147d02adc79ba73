"""The C allocator's handling of freed memory, which matters to an imagined step's speed on a CPU.

A step on a CPU allocates its intermediate tensors afresh (all of them under ``torch.compile``). glibc's
``malloc`` hands large freed blocks back to the operating system (``munmap``, or trimming the heap's top),
so the next step touches new pages and takes a page fault for each 4 KiB page it writes first (at batch
4,096, megabytes of them per step). :func:`retain_freed_memory` asks ``malloc`` to keep freed memory for
reuse instead, as a preloaded jemalloc or tcmalloc would (PyTorch's CPU tuning guide suggests those). It
changes the whole process, so nothing in the project calls it unless asked (``--retain-memory`` of
``gridmarl-wm learn-in-imagination``, ``demo`` and ``view``, through :func:`require_retained_memory`;
``benchmarks/imagined_throughput.py --retain-memory`` times both); call it once at the start of a program
that imagines on a CPU.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
DEFAULT_RETAIN = 1 << 30
# the help of every command's --retain-memory
RETAIN_HELP = (
    "first ask glibc's malloc to keep freed memory for reuse (gridmarl_wm.simulation.allocator; Linux), which "
    "spares a CPU step's fresh tensors their page faults"
)
GLIBC_START = 128 << 10  # both thresholds when a process starts (glibc then raises them as it sees fit)


def _glibc() -> ctypes.CDLL | None:
    """The C library, with ``mallopt`` and ``malloc_trim`` typed, where it is glibc; else None."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return libc


def can_retain_freed_memory() -> bool:
    """Whether :func:`retain_freed_memory` can take effect here (glibc's ``malloc``); changes nothing."""
    return _glibc() is not None


def retain_freed_memory(limit: int = DEFAULT_RETAIN) -> bool:
    """Ask glibc's ``malloc`` to keep up to ``limit`` bytes of freed memory for reuse: blocks below
    ``limit`` come from the heap (not ``mmap``), and its top is not trimmed until more than ``limit`` is
    free. True where it took effect; False where the C library is not glibc (macOS, Windows, musl), which
    has no such switch. The process's peak memory can stay allocated until it exits. ``limit`` is capped
    at 2 GiB."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 << 20:
        raise ValueError(f"limit must be an int of at least 1 MiB (1048576 bytes), got {limit!r}")
    libc = _glibc()
    if libc is None:
        return False
    mallopt, value = libc.mallopt, min(limit, 2**31 - 1)
    # the mmap threshold has a ceiling (32 MiB on older glibc): fall back to it where the limit is refused
    mapped = mallopt(_M_MMAP_THRESHOLD, value) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(mallopt(_M_TRIM_THRESHOLD, value)) and bool(mapped)


def require_retained_memory() -> None:
    """:func:`retain_freed_memory`, for a command's ``--retain-memory``: a ``ValueError`` naming the option
    where the C library has no such switch (anything but glibc's malloc)."""
    if not retain_freed_memory():
        raise ValueError("--retain-memory needs glibc's malloc (Linux); this C library has no such switch")


def return_freed_memory() -> bool:
    """Set both thresholds back to glibc's starting 128 KiB and hold them there (glibc would raise them
    as large blocks are freed), and hand back the free memory held now (``malloc_trim``): large freed
    blocks go back to the operating system again. For comparisons (``benchmarks/imagined_throughput.py
    --retain-memory`` alternates the two); True where it took effect."""
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, GLIBC_START)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, GLIBC_START)
    )
    libc.malloc_trim(0)
    return done
