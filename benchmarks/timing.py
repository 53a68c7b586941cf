"""Wall-clock timing shared by the benchmark scripts."""

import statistics
import time


def median_seconds(fn, repeats):
    """The median wall time of `repeats` calls of fn (a function returning a tensor, which is waited
    for), after one untimed call (tracing, first-run setup)."""
    fn().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
