"""One training on N processes, as ``torchrun --nproc_per_node=N -m localizer train ...`` launches it.

torchrun (``torch.distributed.run``) starts the processes and gives each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`process_group` joins them (NCCL between GPUs, Gloo between CPU processes), each
on its own device (``cuda:LOCAL_RANK``). The model trains under
:class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap`: it averages the gradients of every
update over the processes), each process on its shard of the training split
(:class:`~torch.utils.data.DistributedSampler`, :func:`localizer.data.datasets.make_loader`) with
``batch_size / N`` photos of each global batch (:func:`local_batch`).

This module is the one place that knows the processes: which one writes and prints (:func:`is_main`,
rank 0), and how per-batch values of every process become the numbers of the whole split
(:func:`gather`). Without torchrun (``WORLD_SIZE`` unset or 1) every function is the identity of one
process: nothing is joined, wrapped or exchanged.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from localizer.errors import ConfigError


def launched() -> int:
    """The processes torchrun started (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def world() -> int:
    """The processes of the joined group (1 when none is joined)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the joined group (0 when none is joined)."""
    return dist.get_rank() if world() > 1 else 0


def is_main() -> bool:
    """True in the process that writes the run folder and prints: rank 0, or the only process."""
    return rank() == 0


@contextmanager
def process_group(device: torch.device):
    """Join the processes torchrun started (:func:`launched` > 1) for the block, each on its device
    (:func:`local_device`), and leave the group after it; without torchrun, does nothing.
    ``device``: the recipe's device, resolved (:func:`localizer.engine.numerics.resolve_device`):
    ``cuda`` joins with NCCL, anything else with Gloo. The address and port come from the environment
    torchrun sets (``init_method="env://"``)."""
    if launched() == 1 or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` for ``cuda`` in a group, else ``device``."""
    if device.type == "cuda" and world() > 1:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def barrier() -> None:
    """Wait until every process of the group gets here (e.g. until rank 0 has written the run folder)."""
    if world() > 1:
        dist.barrier()


def local_batch(batch_size: int) -> int:
    """The photos each process takes of a global batch of ``batch_size``: ``batch_size / N``.

    Raises:
        localizer.errors.ConfigError: ``batch_size`` is not a multiple of the processes, naming both.
    """
    if batch_size % world():
        raise ConfigError(f"batch_size={batch_size} is the global batch of all {world()} processes and must be a "
                          f"multiple of {world()} (each process takes batch_size / {world()}); choose another "
                          "batch_size or number of processes")
    return batch_size // world()


class _Loss(torch.nn.Module):
    """The model's training loss as a forward: DDP averages the gradients of calls of its forward only."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        return self.model.loss(images, targets)


class _DistributedLoss(DistributedDataParallel):
    """DDP over :class:`_Loss`, called as the model is in training (``loss(images, targets)``)."""

    def loss(self, images: torch.Tensor, targets: torch.Tensor):
        return self(images, targets)


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """What trains: ``model`` itself in one process; in a group, a DDP of its loss on this process's
    device (rank 0's weights are copied to all when it is made), whose ``loss(images, targets)``
    averages the gradients over the processes. Batch norm keeps its statistics per process
    (docs/numerics.md says why)."""
    if world() == 1:
        return model
    device = next(model.parameters()).device
    return _DistributedLoss(_Loss(model), device_ids=[device] if device.type == "cuda" else None)


def share_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every process, so that all evaluate the
    model rank 0 saves (each process updated them on its own photos in its last update)."""
    if world() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def gather(values: list, keys: list | None = None) -> list:
    """``values`` of every process as one list: in one process, ``values`` itself.

    Args:
        values: this process's values (e.g. one loss or one ``(n,)`` tensor of IoUs per batch; tensors
            travel through the CPU).
        keys: one key per value (e.g. the index of a batch's first photo), or None. With keys, each key
            counts once (the repeats that :class:`~torch.utils.data.DistributedSampler` pads the last
            shards with are dropped) and the values come in key order: the order of one process.
            Without, the values of rank 0, then rank 1, ...

    Returns:
        The gathered values (the same list in every process).
    """
    if world() == 1:
        return values
    shared = [None] * world()
    values = [v.cpu() if isinstance(v, torch.Tensor) else v for v in values]
    dist.all_gather_object(shared, (keys, values))
    if keys is None:
        return [value for _, part in shared for value in part]
    unique = {}
    for part_keys, part in shared:
        for key, value in zip(part_keys, part):
            unique.setdefault(key, value)
    return [unique[key] for key in sorted(unique)]


def threads_per_process(nproc: int) -> int:
    """The CPU threads each of ``nproc`` processes of this machine gets: its cores shared out, at least 1. torchrun
    sets ``OMP_NUM_THREADS=1`` only where it is unset; an inherited larger value oversubscribes the cores (on 2 cores,
    2 processes of 2 threads each trained about 10 times as slowly as 2 of 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // nproc)


def train_processes(run_dir: Path | str, nproc: int, progress: bool = True) -> None:
    """Train the run folder ``run_dir`` (made by notebook 02: :meth:`localizer.engine.run.Run.create`) on
    ``nproc`` processes of this machine: ``python -m torch.distributed.run --standalone --nproc_per_node=N
    -m localizer train DATA --run-dir RUN --resume`` with the run's data, as ``run --nproc`` does before
    notebook 03 (which then finds the training done). ``--resume`` starts a run folder that has not
    trained yet, and continues one that was stopped. Each process gets :func:`threads_per_process` threads.

    Raises:
        RuntimeError: the training failed (its exit code; its errors were printed).
    """
    from localizer.engine.run import Run  # the run folder's layout lives there

    config = Run.open(run_dir).config
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "localizer", "train", config.data, "--run-dir", str(run_dir), "--resume",
               "--format", config.format, "--oxford-box", config.oxford_box,
               *(["--classes", config.classes] if config.classes else []), *([] if progress else ["--quiet"])]
    done = subprocess.run(command, env=os.environ | {"OMP_NUM_THREADS": str(threads_per_process(nproc))})
    if done.returncode:
        raise RuntimeError(f"training {run_dir} on {nproc} processes failed (exit code {done.returncode}): "
                           f"{shlex.join(command)}")
