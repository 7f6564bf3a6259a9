"""The process a research tool measures in: its command line, torch's threads, glibc's allocator, the device."""
import ctypes
import ctypes.util
import platform
import shlex
import sys
from typing import Optional

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h


def start(parse, argv):
    """(the command line as run, its parsed arguments): the line goes first on stdout, so a saved
    output says what made it; ``--threads`` applies before any torch work."""
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    print(command, flush=True)
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return command, args


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def set_malloc_thresholds(trim: Optional[int] = None, mmap: Optional[int] = None) -> bool:
    """glibc ``mallopt``: free memory above ``trim`` bytes at the heap's top goes back to the system,
    allocations of ``mmap`` bytes or more get a mapping of their own (both freed to the system when
    freed). True if glibc accepted every setting given, False where the C library is not glibc."""
    settings = [(option, value) for option, value in ((M_TRIM_THRESHOLD, trim), (M_MMAP_THRESHOLD, mmap))
                if value is not None]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return all([bool(libc.mallopt(option, value)) for option, value in settings])
    except (OSError, AttributeError):  # not glibc
        return False
