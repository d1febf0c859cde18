"""End-to-end load benchmark: gunicorn and Celery workers on 127.0.0.1 with PostgreSQL and Redis, many API clients.

    make load-benchmark                          # or: python -m loadbench [--clients 1,4,16] [--megapixels 0.3,1,4]

Needs PostgreSQL (postgres@127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379), and locust
(requirements-bench.txt). It creates a database of its own (deepfake_loadbench, dropped and made again), uses Redis
databases 14 (broker) and 13 (cache), and a scratch folder for media; nothing of the development set-up is touched.

1. Set-up: migrate, activate the default model (manage.py ensure_active_model: the bundled reference model), a user
   and an API token; photos of each size (a photo with a face, JPEG quality 90).
2. The engine alone on the same cores (loadbench.engine): one analysis in one worker-like process, and analyses per
   second with as many processes as the Celery worker has.
3. gunicorn (--web-processes × --web-threads) and one Celery worker (--worker-processes, each with its share of the
   cores), then for each photo size and client count, locust headless for --seconds: each client uploads with
   ?wait= and uploads again as soon as it has its answer. The first --warmup seconds are left out of the figures.
4. After each phase the queue is drained; lost analyses are those never finished.

Prints a table and writes everything to --output (JSON): analyses per second, end-to-end p50/p95/p99, errors, lost
analyses, and where the time went (queue, decode, faces, inference, heatmap and pictures, storing, and the web
side: upload, request handling and the ?wait polling). Record the machine's load with the figures: locust runs on
the same cores.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "deepfake_loadbench"
SERVER = "postgres://postgres@127.0.0.1:5432"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m loadbench", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per phase (default 1,4,16)")
    parser.add_argument("--megapixels", default="0.3,1,4", help="photo sizes (default 0.3,1,4)")
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds left out at each phase's start")
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--worker-processes", type=int, default=2, help="Celery worker concurrency (default 2)")
    parser.add_argument("--engine-seconds", type=float, default=20, help="length of the engine-alone throughput run")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "loadbench" / time.strftime("%Y%m%d-%H%M%S"))
    return parser.parse_args(argv)


def environment(scratch: Path, args) -> dict[str, str]:
    threads = max(1, (os.cpu_count() or 1) // args.worker_processes)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"{SERVER}/{DATABASE}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "DATA_DIR": str(scratch / "data"),
        "MEDIA_ROOT": str(scratch / "media"),
        "API_THROTTLE_RATE": "off",
        "UPLOAD_THROTTLE_RATE": "off",
        "API_MAX_WAIT_SECONDS": "120",
        "CELERY_WORKER_CONCURRENCY": str(args.worker_processes),
        "TORCH_THREADS": str(threads),
        "LOG_LEVEL": "warning",
    }


def fresh_database() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DATABASE}")


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


CREATE_TOKEN = """
from django.contrib.auth import get_user_model
from accounts.services import api_token_create
user = get_user_model().objects.create_user("loadbench", "loadbench@example.com", "load-bench-password-1")
print(api_token_create(user=user, name="load benchmark")[1])
"""


def make_photos(folder: Path, megapixels: list[float]) -> dict[float, Path]:
    """A 4:3 photo (scikit-image's coffee) with a face (its astronaut's) at a third of its height, per size."""
    import skimage.data
    from PIL import Image

    from ml.probe import astronaut_face

    folder.mkdir(parents=True, exist_ok=True)
    background = Image.fromarray(skimage.data.coffee()).convert("RGB")
    face = astronaut_face()
    photos = {}
    for size in megapixels:
        width = round((size * 1_000_000 * 4 / 3) ** 0.5)
        height = round(width * 3 / 4)
        photo = background.resize((width, height), Image.Resampling.LANCZOS)
        side = height // 3
        photo.paste(face.resize((side, side), Image.Resampling.LANCZOS), (width // 3, height // 4))
        photos[size] = folder / f"photo-{size:g}mp.jpg"
        photo.save(photos[size], quality=90)
    return photos


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"{what} did not start within {timeout:.0f} s")


def web_is_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_servers(env: dict, args, scratch: Path) -> list[subprocess.Popen]:
    web = start(
        [
            *(sys.executable, "-m", "gunicorn", "deepfake_site.wsgi", "--bind", f"127.0.0.1:{args.port}"),
            *("--workers", str(args.web_processes), "--threads", str(args.web_threads), "--timeout", "180"),
        ],
        env,
        scratch / "gunicorn.log",
    )
    worker_log = scratch / "worker.log"
    worker = start(
        [
            *(sys.executable, "-m", "celery", "-A", "deepfake_site", "worker", "--pool=prefork", "--loglevel=INFO"),
            *(f"--concurrency={args.worker_processes}", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env,
        worker_log,
    )
    wait_until(lambda: web_is_up(args.port), timeout=60, what="gunicorn")
    wait_until(lambda: " ready." in worker_log.read_text(errors="replace"), timeout=180, what="the Celery worker")
    return [web, worker]


def unfinished_analyses() -> dict[str, int]:
    import psycopg

    with psycopg.connect(f"{SERVER}/{DATABASE}") as connection:
        rows = connection.execute("SELECT status, count(*) FROM detection_analysis GROUP BY status").fetchall()
    return dict(rows)


def run_phase(env: dict, args, photo: Path, clients: int, records: Path, *, seconds: float | None = None) -> float:
    """Locust headless for --seconds (its output beside the records); returns when it started (epoch seconds)."""
    started = time.time()
    command = [
        *(sys.executable, "-m", "locust", "-f", str(ROOT / "loadbench" / "locustfile.py"), "--headless"),
        *("--users", str(clients), "--spawn-rate", str(clients), "--run-time", f"{seconds or args.seconds:g}s"),
        *("--stop-timeout", "150", "--host", f"http://127.0.0.1:{args.port}", "--only-summary"),
        *("--loglevel", "WARNING"),
    ]
    phase_env = {**env, "LOADBENCH_IMAGE": str(photo), "LOADBENCH_RECORDS": str(records)}
    with records.with_suffix(".log").open("w") as log:
        subprocess.run(command, cwd=ROOT, env=phase_env, stdout=log, stderr=subprocess.STDOUT, check=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # drain: nothing queued or running
        counts = unfinished_analyses()
        if not counts.get("queued") and not counts.get("running"):
            break
        time.sleep(1)
    return started


STAGES = ("queue_ms", "decode_ms", "faces_ms", "inference_ms", "heatmap_ms", "storing_ms", "web_ms")


def stage_times(record: dict) -> dict[str, float]:
    """Where one analysis's time went; storing is the worker's time outside the engine's stages, web the rest of
    the client's wait (upload, request handling, the ?wait polling, the answer)."""
    engine = sum(record.get(k) or 0 for k in ("decode_ms", "faces_ms", "inference_ms", "heatmap_ms"))
    return {
        **{k: record.get(k) or 0 for k in ("queue_ms", "decode_ms", "faces_ms", "inference_ms", "heatmap_ms")},
        "storing_ms": max(0.0, (record.get("worker_ms") or 0) - engine),
        "web_ms": max(0.0, record["e2e_ms"] - (record.get("queue_ms") or 0) - (record.get("worker_ms") or 0)),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(records: list[dict], *, started: float, seconds: float, warmup: float) -> dict:
    """The phase's figures from the records of requests sent after the warm-up."""
    window_start, window_end = started + warmup, started + seconds
    counted = [r for r in records if r["sent_at"] >= window_start]
    done = [r for r in counted if r["status_code"] == 201 and r["status"] == "done"]
    finished_in_window = [r for r in done if r["sent_at"] + r["e2e_ms"] / 1000 <= window_end]
    latencies = [r["e2e_ms"] for r in done]
    stages = {k: statistics.mean(stage_times(r)[k] for r in done) for k in STAGES} if done else {}
    return {
        "requests": len(counted),
        "errors": len(counted) - len(done),
        "error_codes": sorted({f"{r['status_code']} {r['status']}" for r in counted if r not in done}),
        "analyses_per_s": len(finished_in_window) / (window_end - window_start),
        "p50_ms": percentile(latencies, 50) if done else None,
        "p95_ms": percentile(latencies, 95) if done else None,
        "p99_ms": percentile(latencies, 99) if done else None,
        "mean_ms": statistics.mean(latencies) if done else None,
        "stages_ms": stages,
    }


def format_table(results: list[dict], engine: dict) -> str:
    lines = [
        "| photo | clients | analyses/s | p50 ms | p95 ms | p99 ms | errors | engine alone: ms, analyses/s | "
        + " | ".join(f"{s.removesuffix('_ms')} ms (share)" for s in STAGES)
        + " |",
        "| --- " * (8 + len(STAGES)) + "|",
    ]
    for r in results:
        e = engine[r["photo"]]
        lines.append(
            f"| {r['photo']} | {r['clients']} | {r['analyses_per_s']:.2f} | {r['p50_ms'] or 0:.0f} | "
            f"{r['p95_ms'] or 0:.0f} | {r['p99_ms'] or 0:.0f} | {r['errors']} | "
            f"{e['engine_ms_p50']:.0f}, {e['throughput_per_s']:.2f} | "
            + " | ".join(
                f"{r['stages_ms'].get(s, 0):.0f} ({r['stages_ms'].get(s, 0) / (r['mean_ms'] or 1):.0%})" for s in STAGES
            )
            + " |"
        )
    return "\n".join(lines)


def goals(results: list[dict], engine: dict, lost: int) -> list[str]:
    verdicts = []
    for r in results:
        e = engine[r["photo"]]
        if r["clients"] == 1:
            ratio = (r["p50_ms"] or float("inf")) / e["engine_ms_p50"]
            verdicts.append(f"{r['photo']}, 1 client: p50 is {ratio:.2f}× the engine's own time (goal ≤ 1.5)")
        if r["clients"] >= 16:
            share = r["analyses_per_s"] / e["throughput_per_s"]
            verdicts.append(
                f"{r['photo']}, {r['clients']} clients: {share:.0%} of the engine's throughput (goal ≥ 80 %), "
                f"{r['errors']} errors (goal 0)"
            )
    verdicts.append(f"lost analyses (never finished): {lost} (goal 0)")
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    megapixels = [float(m) for m in args.megapixels.split(",")]
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loadbench-") as scratch_name:
        scratch = Path(scratch_name)
        env = environment(scratch, args)
        fresh_database()
        subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=False, capture_output=True)
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_active_model")
        env["LOADBENCH_TOKEN"] = manage(env, "shell", "-c", CREATE_TOKEN).strip().splitlines()[-1]
        photos = make_photos(scratch / "photos", megapixels)
        print(f"load before: {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
        engine_run = subprocess.run(
            [
                *(sys.executable, "-m", "loadbench.engine", *map(str, photos.values())),
                *("--processes", str(args.worker_processes), "--threads", env["TORCH_THREADS"]),
                *("--seconds", f"{args.engine_seconds:g}"),
            ],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        engine = {e["photo"]: e for e in json.loads(engine_run.stdout)}
        print(json.dumps(engine, indent=1), flush=True)
        servers = start_servers(env, args, scratch)
        results = []
        try:
            # Each worker process finishes loading its model after the worker says it is ready: prime them all.
            run_phase(env, args, photos[megapixels[0]], args.worker_processes, scratch / "priming.jsonl", seconds=5)
            for size, photo in photos.items():
                for count in clients:
                    records_file = args.output / f"records-{size:g}mp-{count}.jsonl"
                    started = run_phase(env, args, photo, count, records_file)
                    records = [json.loads(line) for line in records_file.read_text().splitlines()]
                    summary = summarise(records, started=started, seconds=args.seconds, warmup=args.warmup)
                    results.append({"photo": photo.name, "megapixels": size, "clients": count, **summary})
                    print(format_table(results[-1:], engine).splitlines()[-1], flush=True)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=60)
        statuses = unfinished_analyses()
        lost = sum(count for status, count in statuses.items() if status != "done")
        load_after = Path("/proc/loadavg").read_text().split()[:3]
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "engine": engine,
        "phases": results,
        "analyses_by_status": statuses,
        "lost": lost,
        "load_after": load_after,
        "goals": goals(results, engine, lost),
    }
    (args.output / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(format_table(results, engine))
    print("\n".join(report["goals"]))
    print(f"load after: {load_after}; report: {args.output / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
