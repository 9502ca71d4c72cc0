"""What the benchmarks share: the machine line written beside every result."""

import os
import platform
from pathlib import Path


def machine() -> str:
    """``AMD EPYC ..., 2 cores visible, Linux 6.x, Python 3.11.7``"""
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores visible, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")
