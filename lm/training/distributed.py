"""This process's place in a ``torchrun`` job: PyTorch's own DistributedDataParallel engine.

Under ``torchrun --nproc_per_node N`` training runs with DDP (gloo on CPU, NCCL on GPU): the
batch's rows are split among the ranks, gradients averaged, and only rank 0 validates and
writes checkpoints and the artifact. Run alone, this is rank 0 of 1 and every method is the
identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

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
            dist.all_reduce(tensor)
            tensor /= self.world
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_main(self, values: list[float], device: torch.device) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.broadcast(tensor, 0)
        return tensor.tolist()

    def object_from_main(self, value: object) -> object:
        if not self.active:
            return value
        shared = [value]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def gather_rows(self, hidden: RecurrentState) -> RecurrentState:
        """Every rank's rows of the hidden state, in rank order (for the checkpoint)."""
        if not self.active:
            return hidden

        def gather(part: torch.Tensor) -> torch.Tensor:
            pieces = [torch.empty_like(part) for _ in range(self.world)]
            dist.all_gather(pieces, part.contiguous())
            return torch.cat(pieces, dim=1)

        return hidden.map(gather)

    def own_rows(self, hidden: RecurrentState) -> RecurrentState:
        if not self.active:
            return hidden
        return hidden.map(lambda p: p.chunk(self.world, dim=1)[self.rank].contiguous())
