"""Timing and peak memory of a step, on the CPU or a CUDA device.

    seconds = timed(step, device)             # one call, synchronised
    medians = interleaved_medians({'a': step_a, 'b': step_b}, 5, device)
    extra = peak_memory(step, device)         # bytes above the start

Peak memory is what the step allocates above what was allocated when it
started (activations, gradients, workspaces; not the weights or optimizer
state that exist before it), as PyTorch's allocators count it: on CUDA
``torch.cuda.max_memory_allocated``; on the CPU, where PyTorch keeps no
such counter, the running sum of the allocation and free events that
``torch.profiler`` records with ``profile_memory=True`` (tensors only:
not Python objects, not memory a library allocates by itself).
"""
import os
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Callable, Dict, Optional

import torch
from torch.profiler import ProfilerActivity, profile


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], device: torch.device) -> float:
    """Seconds of one ``step()``, from and to a synchronised device."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(
        steps: Dict[str, Callable[[], object]],
        repeats: int,
        device: torch.device,
        warmup: int = 1,
        progress: Optional[Callable[[], None]] = None) -> Dict[str, float]:
    """Median seconds of every step, run in turns so that they share the
    machine's noise: ``warmup`` untimed rounds, then ``repeats`` timed
    rounds of one call each. ``progress()`` is called after every call."""
    times = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            seconds = timed(step, device)
            if round_ >= warmup:
                times[name].append(seconds)
            if progress is not None:
                progress()
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory(step: Callable[[], object], device: torch.device) -> int:
    """Bytes that one ``step()`` allocates at its peak above what was
    allocated when it started (see the module docstring for how)."""
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - start)
    # the profiler's C++ library logs to file descriptor 2 whatever its
    # level (start and stop banners, allocations it cannot attribute)
    with _native_stderr_silenced(), profile(
            activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes())
                    for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]'
                    and e.device_type() == torch.autograd.DeviceType.CPU)
    in_use = peak = 0
    for _, nbytes in events:
        in_use += nbytes
        peak = max(peak, in_use)
    return peak


@contextmanager
def _native_stderr_silenced():
    """File descriptor 2 (and so ``sys.stderr``) to /dev/null; exceptions
    still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
