import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from detection import services, tasks


class InlineExecutor:
    """Stands in for the in-process runner's thread pool: the analysis runs at once, in the test's thread."""

    def submit(self, function, analysis_id, task_id):
        services.analysis_run(analysis_id=analysis_id, task_id=task_id)


@pytest.fixture
def run_inline(monkeypatch, django_capture_on_commit_callbacks):
    """Analyses run synchronously, in the test's thread, when their submission's transaction commits.

    Under a test's transaction nothing commits, so wrap submissions (and deletions) in `with run_inline():`, which runs
    the on-commit callbacks as the block ends.
    """
    monkeypatch.setattr(tasks, "_in_process_executor", InlineExecutor)
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def upload(make_image_bytes):
    """An uploaded file as Django hands it to views: upload("cat.png", fmt="PNG", seed=2) or upload("x", data=b"")."""

    def make(name: str = "photo.jpg", *, data: bytes | None = None, fmt: str = "JPEG", **image_options):
        content = make_image_bytes(fmt=fmt, **image_options) if data is None else data
        return SimpleUploadedFile(name, content, content_type="application/octet-stream")

    return make
