"""Where a process runs: its rank among torchrun's processes, its device and its arithmetic.

Training, evaluation, prediction and the benchmarks all take their process and device from here, so
``actnet evaluate`` under torchrun puts each rank on its own GPU exactly as ``actnet train`` does.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from actnet.errors import ActnetError


def dist_info() -> tuple[int, int]:
    """(rank, world size): from torch.distributed when initialised, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def finish_distributed() -> None:
    """Leave torchrun's process group together: every rank waits for the others, then the group is destroyed (a
    rank that exits while another still works in the group can abort the whole job)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_rank() -> int:
    """This process's index among the processes of its node (torchrun's ``LOCAL_RANK``): its GPU."""
    return int(os.environ.get("LOCAL_RANK", 0))


def model_device(preference: str) -> torch.device:
    """``cuda:<LOCAL_RANK>`` unless ``--device cpu`` or there is no GPU."""
    if preference == "gpu" and not torch.cuda.is_available():
        raise ActnetError("--device gpu: no CUDA GPU is visible to PyTorch")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def setup_distributed(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU) when there is more than one process."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if restart is None:
            dist.init_process_group(backend)
        else:  # torchrun keeps its store across restarts: keys of this attempt only, not the dead group's addresses
            store, rank, size = next(dist.rendezvous("env://"))
            store = dist.PrefixStore(f"actnet/attempt-{restart}", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=size)
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(world))
    return dist_info()


def cpu_threads(world: int) -> int:
    """Threads per process on the CPU: ``ACTNET_CPU_THREADS`` when set, else the node's cores shared between the
    processes on it (torchrun's ``LOCAL_WORLD_SIZE``). Thread counts change how CPU kernels sum, so runs compared
    bit for bit need the same count per process."""
    text = os.environ.get("ACTNET_CPU_THREADS", "")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ActnetError(f"ACTNET_CPU_THREADS={text!r}: give a positive number of threads")
        return int(text)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return max(1, (os.cpu_count() or 1) // local)


class _Gather(torch.autograd.Function):
    """All ranks' tensors concatenated; the backward pass sums every rank's gradient for this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # each rank's loss reaches every rank's rows
        rows = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * rows : (dist.get_rank() + 1) * rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (the same shape on all ranks), concatenated in rank order along the first dimension, with
    gradients flowing back to the rank each part came from. A no-op in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _Gather.apply(x)


def mean_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the ranks (every rank gets it); ``x`` itself in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def uses_bf16(precision: str, device: torch.device) -> bool:
    """``train.precision``: bf16 when asked, or by default (``auto``) on a GPU; fp32 otherwise (a CPU without bf16
    units runs it an order of magnitude slower)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast_for(precision: str, device: torch.device):
    """A context factory: bf16 autocast when :func:`uses_bf16`, else nothing."""
    if uses_bf16(precision, device):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU): timings read the clock only after this."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
