"""Timing a mode's steps: CUDA events on a GPU, wall clock and process CPU time on the CPU."""
import time

import torch

from .mode import Mode


def run_steps(mode: Mode, samples, n_steps: int, device: str, record: bool) -> None:
    """``n_steps`` steps of one mode; when ``record``, each step's seconds (and on cpu its process CPU
    seconds) and update number go onto the mode, and on cuda its memory peaks."""
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        resident = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        events = []
    for _ in range(n_steps):
        sample = samples[mode.num_updates % len(samples)]
        if record:
            mode.updates.append(mode.num_updates)
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            mode.step(sample)
            end.record()
            events.append((start, end))
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        mode.step(sample)
        if record:
            mode.times.append(time.perf_counter() - wall)
            mode.cpu_times.append(time.process_time() - cpu)
    if cuda:
        torch.cuda.synchronize()
        if record:
            mode.times.extend(s.elapsed_time(e) / 1000.0 for s, e in events)
            peak = torch.cuda.max_memory_allocated()
            mode.peak_mem = max(mode.peak_mem or 0, peak)
            mode.step_mem = max(mode.step_mem or 0, peak - resident)
