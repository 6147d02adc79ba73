"""The process group that data-parallel training shares (``torchrun``): this process's place in it, and
tearing it down. World-model training and agent training both use it."""

from __future__ import annotations

import gc

import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def end_process_group() -> None:
    """Tear the process group down, every process together, once the caller has dropped its trainer: a
    process that tears gloo down while a trainer still lives sometimes aborts at exit (SIGABRT, "terminate
    called without an active exception"), failing a run that finished."""
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
