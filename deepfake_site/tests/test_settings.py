import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from deepfake_site.env import env_bool, env_choice, env_float, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k7#Qm2@vX9!pL4$wR8^tY1&zN6*bC3(dF5)gH0_jK-sM=uE+aB",
    "ALLOWED_HOSTS": "detector.example.com",
    "DATABASE_URL": "postgres://detector:secret@db.internal:5432/detector",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
}


def manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_secret_key_is_required_when_debug_is_off():
    result = manage("check", env={**PRODUCTION_ENV, "SECRET_KEY": ""})

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DB_CONN_MAX_AGE", "soon", "DB_CONN_MAX_AGE='soon' is not a whole number"),
        ("DATABASE_URL", "nosuchdb://x", "DATABASE_URL is not a valid database URL"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud' is not one of"),
        ("WEBHOOK_RETRY_DELAYS", "30,soon", "WEBHOOK_RETRY_DELAYS must be seconds separated by commas"),
        ("WEBHOOK_RETRY_DELAYS", "30,7200", "a minute shorter than CELERY_VISIBILITY_TIMEOUT (3600 s)"),
    ],
)
def test_bad_values_stop_the_process_with_the_variable_named(name, value, message):
    result = manage("check", env={name: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("A_BOOL", "Yes")
    monkeypatch.setenv("AN_INT", "42")
    monkeypatch.setenv("A_FLOAT", "0.25")
    monkeypatch.setenv("A_LIST", "a.example, b.example ,")
    monkeypatch.setenv("A_CHOICE", "S3")
    monkeypatch.setenv("EMPTY", "  ")

    assert env_bool("A_BOOL", False) is True
    assert env_int("AN_INT", 0, minimum=1) == 42
    assert env_float("A_FLOAT", 1.0) == 0.25
    assert env_list("A_LIST", []) == ["a.example", "b.example"]
    assert env_choice("A_CHOICE", "local", ("local", "s3")) == "s3"
    assert env_str("EMPTY", "default") == "default"
    assert env_int("UNSET_VARIABLE", 7) == 7
    with pytest.raises(ImproperlyConfigured, match="AN_INT=42 is above the maximum of 10"):
        env_int("AN_INT", 0, maximum=10)
    with pytest.raises(ImproperlyConfigured, match=r"A_FLOAT=0\.25 is below the minimum of 0\.5"):
        env_float("A_FLOAT", 1.0, minimum=0.5)
