"""Every environment variable the settings read is documented in README.md and listed in .env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCES = sorted((ROOT / "deepfake_site").glob("*.py"))
ENV_READ = re.compile(r"\benv_[a-z]+\(\s*\"([A-Z][A-Z0-9_]+)\"")


def variables_read_by_settings() -> set[str]:
    return {name for source in SETTINGS_SOURCES for name in ENV_READ.findall(source.read_text())}


def test_the_settings_read_variables_at_all():
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "MAX_FILE_SIZE_MB"} <= variables_read_by_settings()


def test_every_variable_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))

    assert sorted(variables_read_by_settings() - documented) == []


def test_every_variable_is_in_env_example():
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))

    assert sorted(variables_read_by_settings() - listed) == []
