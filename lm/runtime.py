"""Where and how computation runs: the device, the precision, and the C allocator's habits.

Shared by training, evaluation and generation, so none of them imports another for it.

``work_limit`` and ``checkpoint``: long loops (each decoding step, each scoring batch) call
``checkpoint()``, which stops the work with :class:`WorkStopped` once the deadline of the
enclosing ``work_limit`` block has passed or its stop event is set. The server bounds every
request's time this way, and stops a generation in its middle on SIGTERM; outside such a block
``checkpoint()`` does nothing.

``reuse_freed_memory``: keep large freed blocks in the process instead of handing them back to
the kernel. A training or scoring step frees and re-allocates the same large temporaries (a
[N, V] logits buffer is ~90 MB for a 33k-word vocabulary). By default glibc returns such
blocks to the kernel at once (they are mmap-ed), so the next step page-faults them in again
and the kernel zeroes every page: on a shared 2-core VM that made ``x + 1`` on a
[700, 33278] tensor take 183 ms instead of 32 ms. Raising glibc's mmap and trim thresholds
keeps the memory mapped for reuse. Process-wide, idempotent, and a no-op off Linux/glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from lm.errors import LMError

PRECISIONS = ("auto", "fp32", "bf16")


class WorkStopped(Exception):
    """The enclosing ``work_limit`` ended the work: its time ran out, or it was stopped."""


@dataclass(frozen=True)
class _Limit:
    deadline: float  # time.monotonic() past which the work stops
    stop: threading.Event | None


_LIMIT: ContextVar[_Limit | None] = ContextVar("lm_work_limit", default=None)


@contextlib.contextmanager
def work_limit(seconds: float, stop: threading.Event | None = None) -> Iterator[None]:
    """Work inside this block stops at its next ``checkpoint()`` after ``seconds``, or as soon
    as ``stop`` is set."""
    token = _LIMIT.set(_Limit(time.monotonic() + seconds, stop))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def checkpoint() -> None:
    """Raise :class:`WorkStopped` if the enclosing ``work_limit`` has ended the work."""
    limit = _LIMIT.get()
    if limit is None:
        return
    if limit.stop is not None and limit.stop.is_set():
        raise WorkStopped("stopped: the server is shutting down")
    if time.monotonic() > limit.deadline:
        raise WorkStopped("out of time")


def pick_device(requested: str) -> torch.device:
    """CUDA, then MPS, then CPU; a device that is asked for but absent is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise LMError(
            f"unknown --device {requested!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LMError(f"--device {requested} asked for CUDA, but no CUDA GPU is available: "
                      "use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LMError(f"--device {requested} asked for MPS, which is not available: use cpu")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles, found on AVX-512 CPUs).

    Without it bf16 is emulated: on an AVX2-only CPU bf16 autocast made the LSTM about 20×
    slower, so ``--precision auto`` keeps fp32 there.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    amx = getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None)
    return bool(amx and amx())


def pick_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if requested == "fp32" or device.type not in ("cuda", "cpu"):
        return None
    fast = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
    if requested == "bf16":
        if device.type == "cuda" and not fast:
            raise LMError("--precision bf16: this GPU has no bf16 support; use fp32")
        return torch.bfloat16
    return torch.bfloat16 if fast else None


_done = False


def reuse_freed_memory() -> None:
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)           # M_MMAP_THRESHOLD: blocks up to 1 GiB from the heap
        libc.mallopt(-1, (1 << 31) - 1)     # M_TRIM_THRESHOLD: never give the heap's top back
    except (OSError, AttributeError):
        pass
