import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from deepfake_site.celery import app as celery_app
from detection import dispatch


class InlineExecutor:
    """Stands in for the in-process runner's thread pool: the analysis runs at once, in the test's thread."""

    def submit(self, runner, job):
        job()  # not through the runner, which logs failures: here they fail the test


@pytest.fixture
def run_inline(monkeypatch, django_capture_on_commit_callbacks):
    """Analyses run synchronously, in the test's thread, when their submission's transaction commits.

    Under a test's transaction nothing commits, so wrap submissions (and deletions) in `with run_inline():`, which runs
    the on-commit callbacks as the block ends.
    """
    monkeypatch.setattr(dispatch, "executor", lambda thread: InlineExecutor())
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def staff_client(client, django_user_model):
    """A client signed in as a superuser (client.staff)."""
    staff = django_user_model.objects.create_superuser(username="root", email="root@example.com", password="x")
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def api_client(user):
    """An API client with a Bearer token of `user`."""
    from rest_framework.test import APIClient

    from accounts.services import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='tests')[1]}")
    return client


@pytest.fixture
def upload(make_image_bytes):
    """An uploaded file as Django hands it to views: upload("cat.png", fmt="PNG", seed=2) or upload("x", data=b"")."""

    def make(name: str = "photo.jpg", *, data: bytes | None = None, fmt: str = "JPEG", **image_options):
        content = make_image_bytes(fmt=fmt, **image_options) if data is None else data
        return SimpleUploadedFile(name, content, content_type="application/octet-stream")

    return make


# --- Real Celery workers --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_subprocesses() -> str:
    """The URL of the test database itself, so a worker process sees what the test committed."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Worker:
    """A real `celery worker` subprocess (one prefork child) on the test database, media folder and broker, taking
    the tasks of the given queues (images: "celery", videos: "videos")."""

    def __init__(self, *, broker_url: str, media: Path, data_dir: Path, log: Path, queues: str = "celery"):
        self.log = log
        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": database_url_for_subprocesses(),
            "DATA_DIR": str(data_dir),
            "MEDIA_ROOT": str(media),
            "TORCH_THREADS": "1",
            "LOG_LEVEL": "info",
            "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
        }
        command = [sys.executable, "-m", "celery", "-A", "deepfake_site", "worker", "--pool=prefork"]
        command += [
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--queues={queues}",
            "-n",
            "test@%h",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(lambda: " ready." in self.output() or self.process.poll() is not None, timeout=120, what="worker")
        assert self.process.poll() is None, f"the worker exited:\n{self.output()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        result = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def forget_broker_connections() -> None:
    """Drop the Celery app's pooled connections, so the next message opens one to the current broker URL.

    The app's pools are kombu's process-wide ones, so they are reset there: closing them in place would leave
    closed pools registered for the next test to acquire from.
    """
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(settings):
    """Point this process's Celery app (the web side) at a broker URL; restores the embedded default after."""

    def use(url: str) -> str:
        settings.CELERY_BROKER_URL = url
        celery_app.conf.broker_url = url
        forget_broker_connections()
        return url

    yield use
    celery_app.conf.broker_url = None
    forget_broker_connections()


@pytest.fixture
def start_worker(tmp_path, _media_in_tmp):
    workers = []

    def start(broker_url: str, *, queues: str = "celery") -> Worker:
        worker = Worker(
            broker_url=broker_url,
            media=_media_in_tmp,
            data_dir=tmp_path / "worker-data",
            log=tmp_path / f"worker-{len(workers)}.log",
            queues=queues,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def redis_broker(redis_url, broker):
    """The shared Redis server, on a database of its own, emptied before the test."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return broker(redis_url)


class RedisServer:
    """A private redis-server on a free port, so a test can take the broker down and bring it back."""

    def __init__(self, workdir: Path):
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10, what="redis-server")
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
