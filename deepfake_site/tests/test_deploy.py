"""The deployment files, tested without a Docker engine.

The Dockerfile and docker-compose.yml are read as data; the commands they run (migrate, collectstatic, gunicorn,
the Celery worker and beat, the container health checks) are run here as real processes, in the image's
environment with its /app paths moved into a temporary folder.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pytest
import yaml

from deepfake_site.tests.test_settings import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
GPU_COMPOSE_FILE = ROOT / "docker-compose.gpu.yml"
APP_SERVICES = ("release", "web", "worker", "video-worker", "beat")
# Variables for interpolating the compose file, as an operator's .env would give them.
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD": "compose-test-password"}
# manage.py commands the compose file calls that are still being written: their check is expected to fail until then.
PENDING_MANAGE_COMMANDS: dict[str, str] = {}
STARTUP_DEADLINE = 180  # seconds a process may take to come up on a busy 2-core machine before the test gives up


# --- Reading the files ------------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), by stage name; continuation lines joined."""
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if logical and line.lstrip().startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker too
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        instruction, _, arguments = logical.strip().partition(" ")
        logical = ""
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\bAS\s+(\S+)", arguments, re.IGNORECASE)
            current = match.group(1) if match else arguments
            stages[current] = []
        stages[current].append((instruction, arguments.strip()))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return list(dockerfile_stages().values())[-1]


def image_env(tmp_path: Path) -> dict[str, str]:
    """The runtime stage's ENV, with every /app path moved under tmp_path and PATH left to this machine."""
    env = {}
    for instruction, arguments in final_stage():
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    env.pop("PATH", None)
    return {name: re.sub(r"^/app(?=/|$)", str(tmp_path / "app"), value) for name, value in env.items()}


def exec_form(arguments: str) -> list[str]:
    """A CMD or HEALTHCHECK CMD in JSON (exec) form, as a list."""
    return json.loads(arguments[arguments.index("[") :])


def compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text())


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, and $$ for $."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name)
        if (op == ":-" and not value) or (op == "-" and value is None):
            return arg
        if (op == ":?" and not value) or (op == "?" and value is None):
            raise ValueError(f"compose would refuse to start: {arg}")
        return value or ""

    return _VARIABLE.sub(replace, text)


def service_environment(service: str, **extra_variables: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment", {})
    variables = {**COMPOSE_VARIABLES, **extra_variables}
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


def service_commands(service: str) -> list[list[str]]:
    """The commands a service runs, one argument list per command: `sh -c "a && b"` gives two."""
    command = compose()["services"][service].get("command")
    if command is None:
        command = exec_form(next(arguments for instruction, arguments in final_stage() if instruction == "CMD"))
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def all_app_commands() -> list[list[str]]:
    return [command for service in APP_SERVICES for command in service_commands(service)]


def env_example_names() -> set[str]:
    """Every variable .env.example names, set or commented out."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


@cache
def manage_py_commands() -> frozenset[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", "help", "--commands"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return frozenset(result.stdout.split())


# --- Running the image's commands -------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This process's environment without any setting the product reads, so only what a test passes counts."""
    ignored = env_example_names() | set(PRODUCTION_ENV) | {"DJANGO_SETTINGS_MODULE", "WEB_CONCURRENCY"}
    return {name: value for name, value in os.environ.items() if name not in ignored}


def image_tree(tmp_path: Path) -> Path:
    """The files the runtime stage copies from the build context, laid out under tmp_path as the image has them.

    Commands run from here (the image's WORKDIR, /app moved to tmp_path/app) see only what the image would:
    no tests, no conftest.py, nothing .dockerignore leaves out.
    """
    workdir = PurePosixPath("/")
    for instruction, arguments in final_stage():
        if instruction == "WORKDIR":
            workdir = workdir / arguments
        if instruction != "COPY" or "--from=" in arguments:
            continue
        *sources, destination = (part for part in shlex.split(arguments) if not part.startswith("--"))
        target = tmp_path / (workdir / destination).relative_to("/")
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=_dockerignored_names, dirs_exist_ok=True)
            else:
                file_target = target / Path(source).name if destination.endswith("/") else target
                file_target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, file_target)
    return tmp_path / workdir.relative_to("/")


def _dockerignored_names(directory: str, names: list[str]) -> set[str]:
    relative = Path(directory).relative_to(ROOT)
    return {name for name in names if dockerignored(str(relative / name))}


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What a container of the image sees, on SQLite in tmp_path and without a broker unless overridden."""
    env = {
        **clean_env(),
        **image_env(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"],
        "ALLOWED_HOSTS": "detector.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "",
        "WEB_CONCURRENCY": "1",
        # Like the image's PATH: the virtualenv's programs first, also for commands run through `sh -c`.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **overrides,
    }
    Path(env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def run(argv: list[str], env: dict[str, str], *, cwd: Path = ROOT, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        as_local(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def as_local(argv: list[str]) -> list[str]:
    """The container's argv for this machine: its programs come from this virtualenv."""
    program, *arguments = argv
    if program in {"python", "python3"}:
        return [sys.executable, *arguments]
    local = Path(sys.executable).parent / program
    return [str(local) if local.exists() else program, *arguments]


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path, *, cwd: Path):
    """A long-running process in its own process group, always stopped with all its children at the end."""
    with log.open("w") as output:
        process = subprocess.Popen(
            as_local(argv), cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def http_get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One request, answered as it is: no proxy, no redirect followed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(answer, process: subprocess.Popen, log: Path, what: str):
    """Calls answer() until it returns something truthy; fails if the process dies or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        result = answer()
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"{what} did not come up within {STARTUP_DEADLINE} s:\n{log.read_text()[-4000:]}")


# --- The compose file -------------------------------------------------------------------------------------------


def test_compose_runs_web_workers_database_and_broker_from_one_image_with_named_volumes():
    config = compose()
    services = config["services"]

    assert set(services) >= {"db", "redis", *APP_SERVICES}
    assert config["volumes"].keys() >= {"postgres-data", "redis-data", "media", "model-cache"}
    assert "postgres-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, f"web, worker, beat and release must share one image, not {images}"
    for name in APP_SERVICES:
        assert services[name]["build"]["context"] == "."
        assert services[name]["env_file"] == ".env"
    for name in ("web", "worker", "video-worker", "beat"):
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
    assert services["release"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_images_and_videos_have_a_worker_each_on_their_own_queue(settings):
    services = compose()["services"]

    def queues(name: str) -> str:
        command = services[name]["command"]
        return command[command.index("--queues") + 1]

    assert queues("worker") == "celery" and queues("video-worker") == settings.VIDEO_QUEUE
    assert settings.CELERY_TASK_ROUTES["detection.tasks.video_run_task"]["queue"] == settings.VIDEO_QUEUE


def test_compose_points_the_app_at_its_own_database_broker_and_volumes():
    services = compose()["services"]
    environment = service_environment("web")
    image = image_env(Path("/"))

    assert urlparse(environment["DATABASE_URL"]).hostname == "db"
    assert urlparse(environment["DATABASE_URL"]).password == COMPOSE_VARIABLES["POSTGRES_PASSWORD"]
    assert urlparse(environment["CELERY_BROKER_URL"]).hostname == "redis"
    assert environment["DEBUG"] == "false"
    # The volumes are mounted where the settings and the image put media and the model caches.
    mounts = {Path(target): volume for volume, target in (entry.split(":")[:2] for entry in services["web"]["volumes"])}
    assert mounts[Path(environment["MEDIA_ROOT"])] == "media"
    caches = [environment["MODEL_CACHE_DIR"], *(image[name] for name in ("MODEL_CACHE_DIR", "HF_HOME", "TORCH_HOME"))]
    for cache_dir in [*caches, image["XDG_CACHE_HOME"], image["MPLCONFIGDIR"]]:
        assert any(Path(cache_dir).is_relative_to(target) and mounts[target] == "model-cache" for target in mounts)
    with pytest.raises(ValueError, match=r"set POSTGRES_PASSWORD in \.env"):
        service_environment("web", POSTGRES_PASSWORD="")


@pytest.mark.parametrize("command", all_app_commands(), ids=shlex.join)
def test_every_compose_command_names_a_program_the_project_has(command):
    program, *arguments = command
    if program in {"python", "python3"}:
        assert arguments[0] == "manage.py"
        assert (ROOT / "manage.py").is_file()
        return  # the command itself is checked against manage.py's list below
    assert program in {"gunicorn", "celery"}, f"unexpected program {program}"
    assert (Path(sys.executable).parent / program).exists(), f"{program} is not installed"
    if program == "gunicorn":
        module, _, attribute = arguments[0].partition(":")
        script = f"import {module} as m; assert callable(m.{attribute or 'application'})"
        assert run(["python", "-c", script], env=clean_env()).returncode == 0
    else:
        from celery import Celery
        from celery.bin.celery import celery as celery_cli

        app_module = arguments[arguments.index("-A") + 1]
        app = __import__(f"{app_module}.celery", fromlist=["app"]).app
        assert isinstance(app, Celery)
        assert app.main == app_module
        assert arguments[arguments.index("-A") + 2] in celery_cli.commands


def manage_py_command_params():
    names = sorted({command[2] for command in all_app_commands() if command[1:2] == ["manage.py"]})
    return [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=False, reason=PENDING_MANAGE_COMMANDS[name])]
            if name in PENDING_MANAGE_COMMANDS
            else [],
        )
        for name in names
    ]


@pytest.mark.parametrize("name", manage_py_command_params())
def test_every_manage_py_command_in_compose_exists(name):
    assert name in manage_py_commands(), f"manage.py has no command {name!r}"


def test_gpu_override_gives_the_worker_cuda_pytorch_and_the_gpus():
    base = compose()["services"]["worker"]
    worker = compose(GPU_COMPOSE_FILE)["services"]["worker"]

    assert worker["build"]["args"]["TORCH_INDEX_URL"] == ""
    assert "ARG TORCH_INDEX_URL" in DOCKERFILE.read_text()
    assert worker["image"] != base["image"], "the GPU image must not overwrite the CPU image's tag"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


# --- The Dockerfile ---------------------------------------------------------------------------------------------


def copy_sources() -> list[str]:
    """Sources of the COPY instructions that take from the build context."""
    sources = []
    for stage in dockerfile_stages().values():
        for instruction, arguments in stage:
            if instruction in {"COPY", "ADD"}:
                parts = [part for part in shlex.split(arguments) if not part.startswith("--")]
                if "--from=" not in arguments:
                    sources.extend(parts[:-1])
    return sources


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps a path (or a folder holding it) out of the build context."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        alternatives = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        for candidate in candidates:
            if any(fnmatchcase(candidate, alternative) for alternative in alternatives) or (
                pattern.startswith("**/") and any(fnmatchcase(part, alternatives[1]) for part in parts)
            ):
                ignored = not negated
    return ignored


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context():
    sources = copy_sources()

    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not dockerignored(source), f".dockerignore leaves {source} out of the build context"
    stage_names = set(dockerfile_stages())
    for stage in dockerfile_stages().values():
        for instruction, arguments in stage:
            match = re.search(r"--from=(\S+)", arguments)
            if instruction == "COPY" and match:
                assert match.group(1) in stage_names


def test_dockerignore_keeps_secrets_and_local_data_out():
    for path in (".env", ".env.production", ".venv/bin/python", "data/db.sqlite3", ".git/HEAD", "ml/tests/x.py"):
        assert dockerignored(path), path
    assert not dockerignored(".env.example")


def test_the_image_has_every_top_level_package_templates_and_static_files():
    copied = {Path(source).parts[0] for source in copy_sources()}
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and not dockerignored(path.name) and path.name != "tests"
    }

    assert packages, "no package found"
    assert packages | {"manage.py", "templates", "static"} <= copied


def test_the_image_tree_has_the_code_without_tests(tmp_path):
    app = image_tree(tmp_path)

    assert (app / "manage.py").is_file()
    assert (app / "deepfake_site" / "wsgi.py").is_file()
    assert (app / "deploy" / "healthcheck.py").is_file()
    assert not list(app.rglob("tests")), "tests are left out of the image"
    assert not (app / "conftest.py").exists()


def test_the_image_runs_gunicorn_as_a_non_root_user_with_a_health_check():
    instructions = dict(final_stage())

    assert instructions["USER"].split(":")[0] not in {"root", "0"}
    assert exec_form(instructions["CMD"])[:2] == ["gunicorn", "deepfake_site.wsgi"]
    health_check = exec_form(instructions["HEALTHCHECK"])
    assert health_check[0] == "python"
    assert health_check[1] in copy_sources()


# --- The image's commands, run for real -------------------------------------------------------------------------


def test_check_deploy_passes_in_the_images_production_environment(tmp_path):
    app = image_tree(tmp_path)
    env = {**production_env(tmp_path), **service_environment("web"), **image_paths(tmp_path)}

    result = run(["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env, cwd=app)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def image_paths(tmp_path: Path) -> dict[str, str]:
    """The compose file's container paths, moved under tmp_path like the image's own."""
    environment = service_environment("web")
    return {
        name: re.sub(r"^/app(?=/|$)", str(tmp_path / "app"), value)
        for name, value in environment.items()
        if value.startswith("/app")
    }


def collectstatic_command() -> tuple[dict[str, str], list[str]]:
    """The environment and argv of the Dockerfile's collectstatic step."""
    for instruction, arguments in final_stage():
        if instruction == "RUN" and "collectstatic" in arguments:
            step = next(part for part in arguments.split("&&") if "collectstatic" in part)
            words = shlex.split(step)
            assignments = [word for word in words if re.match(r"^[A-Z_]+=", word)]
            return dict(word.split("=", 1) for word in assignments), words[len(assignments) :]
    raise AssertionError("the Dockerfile has no collectstatic step")


def test_image_commands_migrate_collect_static_and_serve_health_with_gunicorn(tmp_path):
    app = image_tree(tmp_path)
    env = production_env(tmp_path, USE_X_FORWARDED_PROTO="true")
    build_env, collectstatic = collectstatic_command()
    assert build_env["DEBUG"] == "false"
    assert len(build_env["SECRET_KEY"]) >= 50

    collected = run(collectstatic, env={**env, **build_env}, cwd=app)
    assert collected.returncode == 0, collected.stderr
    assert list(Path(env["STATIC_ROOT"]).glob("css/site.*.css")), "collectstatic wrote no hashed stylesheet"

    migrate = service_commands("release")[0]
    assert migrate[:3] == ["python", "manage.py", "migrate"]
    migrated = run(migrate, env=env, cwd=app)
    assert migrated.returncode == 0, migrated.stderr

    port = free_port()
    gunicorn = replace_option(service_commands("web")[0], "--bind", f"127.0.0.1:{port}")
    log = tmp_path / "gunicorn.log"
    with running(gunicorn, env, log, cwd=app) as server:

        def health():
            try:
                return http_get(f"http://127.0.0.1:{port}/health", {"Host": "detector.example.com"})
            except OSError:
                return None  # not listening yet

        status, headers, body = wait_for(health, server, log, "gunicorn")
        assert status in {200, 503}, body[:500]
        assert headers["Content-Type"] == "application/json"
        answer = json.loads(body)
        assert answer["status"] == ("ok" if status == 200 else "error")
        assert answer["checks"]["database"]["status"] == "ok", answer
        assert answer["checks"]["broker"]["status"] == "disabled", answer

        # The image's own health check: healthy exactly when /health says 200, with the production Host header.
        health_check = exec_form(dict(final_stage())["HEALTHCHECK"])
        probe_env = {**env, "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/health"}
        probe = run(health_check, env=probe_env, cwd=app, timeout=60)
        assert probe.returncode == (0 if status == 200 else 1), probe.stdout + probe.stderr
        assert f"answered {status}" in probe.stdout

        # Pages and WhiteNoise's hashed static files, as served behind a TLS-terminating proxy.
        https = {"Host": "detector.example.com", "X-Forwarded-Proto": "https"}
        status, headers, page = http_get(f"http://127.0.0.1:{port}/", https)
        if status == 302:  # the home page may ask visitors to sign in: the sign-in page has the same layout
            status, headers, page = http_get(f"http://127.0.0.1:{port}{headers['Location']}", https)
        assert status == 200, page[:500]
        stylesheet = re.search(rb"/static/css/site\.[0-9a-f]{12}\.css", page)
        assert stylesheet, "the page does not link the hashed stylesheet"
        status, headers, _ = http_get(f"http://127.0.0.1:{port}{stylesheet.group().decode()}", https)
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        # Plain HTTP is redirected to HTTPS everywhere but /health.
        status, headers, _ = http_get(f"http://127.0.0.1:{port}/", {"Host": "detector.example.com"})
        assert status == 301
        assert headers["Location"].startswith("https://detector.example.com/")


def test_health_check_reports_unhealthy_when_nothing_answers(tmp_path):
    health_check = exec_form(dict(final_stage())["HEALTHCHECK"])

    probe = run(
        health_check,
        env={**clean_env(), "HEALTHCHECK_URL": f"http://127.0.0.1:{free_port()}/health"},
        cwd=image_tree(tmp_path),
    )

    assert probe.returncode == 1
    assert "did not answer" in probe.stdout


@pytest.mark.redis
def test_worker_command_starts_and_answers_its_health_check_ping(tmp_path, redis_url):
    broker = urlparse(redis_url)._replace(path="/14").geturl()
    app = image_tree(tmp_path)
    env = production_env(tmp_path, CELERY_BROKER_URL=broker)
    # As in compose, the release command has migrated the database before the worker starts.
    migrated = run(service_commands("release")[0], env=env, cwd=app)
    assert migrated.returncode == 0, migrated.stderr
    node_host = f"deploytest-{uuid.uuid4().hex[:8]}"
    worker = [*service_commands("worker")[0], "--hostname", f"celery@{node_host}", "--concurrency", "1"]
    health_check = compose()["services"]["worker"]["healthcheck"]["test"]
    assert health_check[0] == "CMD-SHELL"
    ping = ["sh", "-c", interpolate(health_check[1], {})]
    log = tmp_path / "worker.log"

    with running(worker, env, log, cwd=app) as process:

        def answers():
            return run(ping, env={**env, "HOSTNAME": node_host}, cwd=app, timeout=120).returncode == 0

        wait_for(answers, process, log, "the Celery worker")
        result = run(ping, env={**env, "HOSTNAME": node_host}, cwd=app, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"celery@{node_host}: OK" in result.stdout
    assert "pong" in result.stdout
    assert "Traceback" not in log.read_text(), "a worker process failed to start"


@pytest.mark.redis
def test_beat_command_starts(tmp_path, redis_url):
    broker = urlparse(redis_url)._replace(path="/14").geturl()
    app = image_tree(tmp_path)
    env = production_env(tmp_path, CELERY_BROKER_URL=broker)
    beat = replace_option(service_commands("beat")[0], "--schedule", str(tmp_path / "celerybeat-schedule"))
    log = tmp_path / "beat.log"

    with running(beat, env, log, cwd=app) as process:
        wait_for(lambda: "beat: Starting" in log.read_text(), process, log, "Celery beat")
