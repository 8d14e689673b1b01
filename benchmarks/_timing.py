"""Small helpers shared by the benchmark scripts: whole-process timing and a table printer."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence


def time_command(argv: Sequence[str], runs: int = 5, **kwargs: object) -> float:
    """Median wall time in seconds of running `argv` to completion `runs` times."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, **kwargs)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table (benchmarks print; no colours)."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
