"""The CPU a process edits on: how many cores it may use and how many are busy, the torch thread count that follows,
and the CPU inference settings (``channels_last``, whether bfloat16 is native).

Reads the process's affinity mask, the cgroup (container) CPU quota in ``/sys/fs/cgroup/cpu.max`` and the running
tasks in ``/proc``, each where the platform has it; nothing else of the package depends on them.
"""

from __future__ import annotations

import math
import os

__all__ = ["available_cpus", "bf16_is_fast", "optimize_for_cpu", "recommended_num_threads"]


def available_cpus() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup (container) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def recommended_num_threads(num_processes: int = 1, background_threads: int = 0, use_load: bool = True) -> int:
    """Intra-op torch threads for the UNet: this process's share of the cores, minus cores kept for
    ``background_threads``, minus cores other programs keep busy right now (when the process sees the whole
    machine). At least 1. ``led-edit`` keeps no core for its detection thread: it runs in bursts (0.14 s per
    photo) and costs the UNet less than a thread fewer would (on 2 idle cores, batches of 8: 3.15 faces/s beside 2
    torch threads, 2.50 beside 1).

    Too many threads is far worse than too few on a small CPU: torch's OpenMP threads wait for each other at every
    operation, so one thread on a core that another program also uses stalls all of them (measured on 2 cores with
    a training run beside: one UNet step 0.1 s with 1 thread, 0.4-2.7 s with 2).
    """
    cores = available_cpus()
    share = max(1, cores // max(1, num_processes))
    busy = 0
    if use_load and num_processes == 1 and cores == (os.cpu_count() or cores):
        busy = _busy_cores()
    return max(1, min(share - background_threads, cores - busy))


def _busy_cores() -> int:
    """Cores other programs keep busy: the tasks of other processes running now (the median of 5 looks at
    ``procs_running`` over 25 ms, so a short blip does not count), or the 1-minute load average where ``/proc`` is
    unavailable. Not the load average first: it still counts a job that ended a minute ago (e.g. the previous
    ``led-edit`` of a loop) and misses one that started seconds ago."""
    import time

    try:
        average = int(os.getloadavg()[0] + 0.3)
    except (AttributeError, OSError):
        return 0
    try:
        samples = []
        for _ in range(5):
            with open("/proc/stat", encoding="ascii") as handle:
                running = next(int(line.split()[1]) for line in handle if line.startswith("procs_running"))
            own = 0
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/stat", encoding="ascii") as handle:
                        own += handle.read().rsplit(")", 1)[1].split()[0] == "R"
                except (OSError, IndexError):
                    pass
            samples.append(max(0, running - own))
            time.sleep(0.005)
        return sorted(samples)[len(samples) // 2]
    except (OSError, StopIteration, ValueError):
        return average


def optimize_for_cpu(pipe):
    """The inference settings ``led-edit`` uses: the UNet in eval mode with the ``channels_last`` memory format
    (convolutions 10-20% faster on CPUs with oneDNN; results equal to within one grey level). Returns ``pipe``.

    Do not ``save_pretrained`` a pipeline after this without ``pipe.unet.to(memory_format=torch.contiguous_format)``.
    """
    import torch

    pipe.unet.eval()
    pipe.unet.to(memory_format=torch.channels_last)
    return pipe


def bf16_is_fast() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bfloat16 autocast makes the UNet
    1.4-1.9x faster; elsewhere it is emulated and slower than float32."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False
