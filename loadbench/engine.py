"""The engine alone, as a worker runs it: `detection.engine.analyze` on the active model, no web server, queue,
database writes or storage. Run by python -m loadbench in the benchmark's environment (its database and settings).

    python -m loadbench.engine PHOTO.jpg [PHOTO.jpg ...] --processes 2 --threads 1 --seconds 20

For each photo: the median time of one analysis in one process (the engine's own time, what one client waits for at
best), then analyses per second with --processes processes analysing at once for --seconds (what the cores sustain).
Prints JSON.
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path


def _analyse(photo: Path, threads: int, processes: int, seconds: float, repeats: int, barrier, results) -> None:
    """In a fresh process: load the active model as a worker does and warm up; then, once every process is ready,
    analyse `repeats` times (seconds=0) or for `seconds`, and report the durations and the time it took."""
    import django

    django.setup()
    from detection import engine, selectors

    engine.worker_start(threads=threads, processes=processes)
    model = selectors.detector_model_get_active()
    data = photo.read_bytes()
    for _ in range(3):
        engine.analyze(model, data, keep_original=True)
    barrier.wait()
    durations, started = [], time.perf_counter()
    while (len(durations) < repeats) if not seconds else (time.perf_counter() - started < seconds):
        begun = time.perf_counter()
        engine.analyze(model, data, keep_original=True)
        durations.append((time.perf_counter() - begun) * 1000)
    results.put((durations, time.perf_counter() - started))


def _run(photo: Path, *, processes: int, threads: int, seconds: float, repeats: int) -> list[tuple[list, float]]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_analyse, args=(photo, threads, processes, seconds, repeats, barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get() for _ in children]
    for child in children:
        child.join()
    return outcomes


def measure(photo: Path, *, processes: int, threads: int, seconds: float, repeats: int = 15) -> dict:
    """One process alone (the engine's own time per analysis), then `processes` at once (analyses per second)."""
    ((alone, _),) = _run(photo, processes=1, threads=threads, seconds=0, repeats=repeats)
    together = _run(photo, processes=processes, threads=threads, seconds=seconds, repeats=0)
    return {
        "photo": photo.name,
        "engine_ms_p50": statistics.median(alone),
        "engine_ms_min": min(alone),
        "processes": processes,
        "threads": threads,
        "throughput_per_s": sum(len(durations) / elapsed for durations, elapsed in together),
        "engine_ms_p50_under_load": statistics.median([d for durations, _ in together for d in durations]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadbench.engine", description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, nargs="+")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    results = [measure(p, processes=args.processes, threads=args.threads, seconds=args.seconds) for p in args.photos]
    json.dump(results, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
