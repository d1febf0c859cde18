"""The layers hold: the web side never loads PyTorch, and Django code reaches the ml engine through one door."""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "cv2", "onnxruntime", "openvino", "ml.detector", "ml.runtime")
# What the engine's docstring allows outside it: plain data, and the commands that wrap an ml command line.
ALLOWED_ML_IMPORTS = {"ml", "ml.errors"}
ML_COMMANDS = {"train_detector.py", "evaluate_detector.py", "make_starter_model.py"}


def test_importing_the_web_side_does_not_import_pytorch():
    script = (
        "import django, json, sys; django.setup();"
        "import deepfake_site.urls, detection.views, detection.api.views, detection.admin, detection.services,"
        " detection.tasks, detection.forms_admin, accounts.views;"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "deepfake_site.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def ml_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ml":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ml")
    return found


def test_django_code_reaches_the_ml_engine_through_detection_engine_only():
    sources = [
        path
        for app in ("detection", "accounts", "deepfake_site")
        for path in (ROOT / app).rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts
    ]
    through_other_doors = {
        str(path.relative_to(ROOT)): sorted(ml_imports(path) - ALLOWED_ML_IMPORTS)
        for path in sources
        if path.name != "engine.py" and path.name not in ML_COMMANDS and ml_imports(path) - ALLOWED_ML_IMPORTS
    }

    assert through_other_doors == {}


def test_services_and_tasks_do_not_import_each_other():
    for path in (ROOT / "detection" / "services").glob("*.py"):
        assert "detection.tasks" not in path.read_text(), path
    assert "from detection import dispatch" not in (ROOT / "detection" / "tasks.py").read_text()
