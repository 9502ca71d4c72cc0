"""What the benchmarks share: the machine line written beside every result, and perturbed short texts."""

import os
import platform
import random
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


BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in BENCHMARKS.md (appended when
    the markers are missing), written to a temporary file and renamed, so other sections are left as they are."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip(chr(10))}\n{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


WORDS = ["please", "asap", "thanks", "hi", "hello", "urgent", "again", "today", "now", "help", "ok", "pls", "sir",
         "madam", "team", "btw", "really", "still", "quick question", "hey there"]


def perturb(texts: list[str], n: int, seed: int) -> tuple[list[str], list[int]]:
    """n texts: banking77 texts with random words added, dropped, swapped or typos; and which text each came from."""
    rng = random.Random(seed)
    out, src = [], []
    for _ in range(n):
        k = rng.randrange(len(texts))
        src.append(k)
        w = texts[k].split()
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4:
                w.insert(rng.randint(0, len(w)), rng.choice(WORDS))
            elif op < 0.6 and len(w) > 3:
                w.pop(rng.randrange(len(w)))
            elif op < 0.8 and len(w) > 1:
                i = rng.randrange(len(w) - 1)
                w[i], w[i + 1] = w[i + 1], w[i]
            else:
                i = rng.randrange(len(w))
                if len(w[i]) > 3:
                    j = rng.randrange(len(w[i]) - 1)
                    w[i] = w[i][:j] + w[i][j + 1] + w[i][j] + w[i][j + 2:]
        out.append(" ".join(w) + (f" #{rng.randint(0, 999)}" if rng.random() < 0.3 else ""))
    return out, src
