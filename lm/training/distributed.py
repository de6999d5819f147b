"""This process's place in a ``torchrun`` job: PyTorch's own DistributedDataParallel engine.

Under ``torchrun --nproc_per_node N`` training runs with DDP (gloo on CPU, NCCL on GPU): the
batch's rows are split among the ranks, gradients averaged, and only rank 0 validates and
writes checkpoints and the artifact. Run alone, this is rank 0 of 1 and every method is the
identity.

Shutting gloo down cleanly takes two precautions, both here:

- A gloo collective returns once it is done, but the worker thread that ran it lets go of its
  tensors a moment later, and needs the GIL for that (they have Python objects). A process
  that exits first has that thread take the GIL during interpreter shutdown, and the C++
  runtime aborts: "terminate called without an active exception", SIGABRT (1 run in 12 of a
  two-process DDP script that exits after ``broadcast_object_list`` here; the DDP test in 1
  of 8 suite runs). So each collective here waits until gloo has let go of its tensors.
- ``torch.distributed.nn.functional``, which DDP imports, binds the live default group as a
  default argument of its functions when first imported, so ``destroy_process_group`` could
  never free the group and its threads ran on into interpreter shutdown. Imported before the
  group exists, it binds None.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional  # noqa: F401  (before any group: see above)

from lm.models.state import RecurrentState


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world,
                   int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, device: torch.device) -> None:
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.started_group = True

    def stop(self) -> None:
        if self.started_group and dist.is_initialized():
            dist.destroy_process_group()

    def wrap(self, module: torch.nn.Module, device: torch.device,
             find_unused_parameters: bool) -> torch.nn.Module:
        """The training step under DDP (gradients averaged over ranks), or as it is."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over ranks, in place (identity when alone)."""
        if self.active:
            with released(tensor):
                dist.all_reduce(tensor)
            tensor /= self.world
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        with released(value):
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_main(self, values: list[float], device: torch.device) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        with released(tensor):
            dist.broadcast(tensor, 0)
        return tensor.tolist()

    def object_from_main(self, value: str | None) -> str | None:
        """Rank 0's text (a model reference) on every rank, sent as UTF-8 bytes: no pickle."""
        if not self.active:
            return value
        data = (value or "").encode() if self.main else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        with released(size):
            dist.broadcast(size, 0)
        payload = torch.zeros(int(size.item()), dtype=torch.uint8)
        if self.main and data:
            payload.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        with released(payload):
            dist.broadcast(payload, 0)
        return bytes(payload.tolist()).decode() or None

    def gather_rows(self, hidden: RecurrentState) -> RecurrentState:
        """Every rank's rows of the hidden state, in rank order (for the checkpoint)."""
        if not self.active:
            return hidden

        def gather(part: torch.Tensor) -> torch.Tensor:
            pieces = [torch.empty_like(part) for _ in range(self.world)]
            mine = part.contiguous()
            with released(mine, *pieces):
                dist.all_gather(pieces, mine)
            return torch.cat(pieces, dim=1)

        return hidden.map(gather)

    def own_rows(self, hidden: RecurrentState) -> RecurrentState:
        if not self.active:
            return hidden
        return hidden.map(lambda p: p.chunk(self.world, dim=1)[self.rank].contiguous())


@contextlib.contextmanager
def released(*tensors: torch.Tensor, timeout: float = 10.0) -> Iterator[None]:
    """Run a gloo collective on ``tensors``, then wait until gloo's worker thread has let go of
    them (their Python reference counts are back where they were), sleeping meanwhile so that
    the thread can take the GIL. NCCL's work is the GPU's: no wait there."""
    def counts() -> list[int]:  # measured the same way each time
        return [sys.getrefcount(t) for t in tensors]

    before = counts()
    yield
    if dist.get_backend() != "gloo":
        return
    deadline = time.monotonic() + timeout
    while counts() != before and time.monotonic() < deadline:
        time.sleep(0.0005)
