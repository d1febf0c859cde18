"""Detector models in the admin: adding from an upload, the Hub or a server path; checking; activating; evaluating.

Workers run inline (the model-jobs executor is replaced) and the Hugging Face Hub is a small server on the loopback
interface that speaks the Hub's download protocol, since there is no internet here.
"""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from safetensors.torch import load_file

from detection import dispatch, services
from detection.models import DetectorModel, ModelEvaluation
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:detection_detectormodel_changelist"


class InlineJobs:
    """Stands in for the model-jobs thread: the job runs at once, in the test's thread and transaction."""

    def submit(self, runner, job):
        job()


@pytest.fixture
def run_jobs(monkeypatch, settings, django_capture_on_commit_callbacks):
    """Model jobs (fetch, check, evaluate) run inline when the admin request's transaction commits."""
    settings.INFERENCE_BACKEND = "torch"  # loads in a fraction of a second; OpenVINO compiles for seconds
    monkeypatch.setattr(dispatch, "executor", lambda thread: InlineJobs())
    return lambda: django_capture_on_commit_callbacks(execute=True)


def add_form(**fields) -> dict:
    data = {
        "name": "detector",
        "version": "2",
        "description": "",
        "architecture": "resnet18",
        "input_size": 224,
        "threshold": 0.5,
        "source": "upload",
        "hub_repo": "",
        "hub_filename": "",
        "hub_revision": "",
        "server_path": "",
        "sha256": "",
    }
    data.update(fields)
    return data


def weights_upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/octet-stream")


def add(client, run_jobs, **fields):
    with run_jobs():
        response = client.post(reverse("admin:detection_detectormodel_add"), add_form(**fields), follow=True)
    return response


def page_messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- Who gets in ----------------------------------------------------------------------------------------------


def test_only_staff_reach_the_model_admin(client, user, django_user_model):
    url = reverse(CHANGELIST)
    assert client.get(url).status_code == 302  # anonymous: to the admin login

    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    staff_without_permissions = django_user_model.objects.create_user(username="intern", password="x", is_staff=True)
    client.force_login(staff_without_permissions)
    assert client.get(url).status_code == 403


# --- Adding -----------------------------------------------------------------------------------------------------


def test_uploaded_safetensors_are_stored_hashed_checked_and_logged(staff_client, run_jobs, detector_weights):
    response = add(staff_client, run_jobs, weights_file=weights_upload(detector_weights))

    assert response.status_code == 200
    model = DetectorModel.objects.get(name="detector", version="2")
    assert model.source == DetectorModel.Source.UPLOAD
    assert model.sha256 == sha256(detector_weights)
    assert Path(model.weights.path).read_bytes() == detector_weights.read_bytes()
    assert model.status == DetectorModel.Status.READY, model.status_message
    assert "probe image" in model.status_message
    assert not model.is_active
    assert "A worker is now loading its uploaded weights" in page_messages(response)
    assert LogEntry.objects.filter(object_id=str(model.pk), action_flag=ADDITION, user=staff_client.staff).exists()


def test_uploaded_pth_state_dict_is_accepted(staff_client, run_jobs, detector_weights, tmp_path):
    pth = tmp_path / "detector.pth"
    torch.save(load_file(detector_weights), pth)

    add(staff_client, run_jobs, weights_file=weights_upload(pth))

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.READY, model.status_message
    assert model.weights.name.endswith(".pth") and model.sha256 == sha256(pth)


def test_corrupt_weights_fail_the_check_and_cannot_be_activated(staff_client, run_jobs, active_model):
    corrupt = SimpleUploadedFile("broken.safetensors", b"\x00\x01not a safetensors file" * 100)

    add(staff_client, run_jobs, weights_file=corrupt)

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.FAILED
    assert "is not a readable .safetensors file" in model.status_message

    response = staff_client.post(
        reverse(CHANGELIST), {"action": "activate", "_selected_action": [model.pk]}, follow=True
    )
    assert "cannot be activated" in page_messages(response) and "not a readable" in page_messages(response)
    active_model.refresh_from_db()
    assert active_model.is_active and DetectorModel.objects.filter(is_active=True).count() == 1


def test_weights_of_another_architecture_fail_the_shape_check(staff_client, run_jobs, detector_weights):
    add(staff_client, run_jobs, architecture="resnet50", weights_file=weights_upload(detector_weights))

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.FAILED
    assert "do not fit the “resnet50” architecture" in model.status_message
    assert "shapes that differ" in model.status_message


def test_bad_upload_fields_are_refused_and_nothing_is_stored(staff_client, run_jobs, detector_weights, _media_in_tmp):
    url = reverse("admin:detection_detectormodel_add")
    cases = [
        ({}, "Choose the weights file to upload."),
        ({"weights_file": SimpleUploadedFile("weights.txt", b"abc")}, "is not a weights file this product reads"),
        ({"weights_file": SimpleUploadedFile("w.safetensors", b"")}, "The submitted file is empty."),
        (
            {"weights_file": weights_upload(detector_weights), "sha256": "a" * 64},
            f"has SHA-256 {sha256(detector_weights)}, but {'a' * 64} was expected",
        ),
        ({"weights_file": weights_upload(detector_weights), "sha256": "xyz"}, "64 hexadecimal characters"),
        ({"source": "hub", "hub_repo": "not a repo", "hub_filename": "model.safetensors"}, "is not a repository"),
        ({"source": "path", "server_path": "relative/model.safetensors"}, "is not an absolute path"),
        ({"source": "path", "server_path": "/nowhere/model.safetensors"}, "There is no file at /nowhere"),
    ]
    for fields, message in cases:
        with run_jobs():
            response = staff_client.post(url, add_form(**fields))
        assert response.status_code == 200, fields
        assert message in response.content.decode(), (fields, message)
    assert not DetectorModel.objects.exists()
    assert not list((_media_in_tmp).rglob("*.*"))


def test_a_server_path_is_copied_into_storage_and_checked(staff_client, run_jobs, detector_weights):
    add(staff_client, run_jobs, source="path", server_path=str(detector_weights), sha256=sha256(detector_weights))

    model = DetectorModel.objects.get(version="2")
    assert model.source == DetectorModel.Source.PATH and model.status == DetectorModel.Status.READY
    assert Path(model.weights.path) != detector_weights
    assert Path(model.weights.path).read_bytes() == detector_weights.read_bytes()


def test_a_checksum_mismatch_at_arrival_stores_nothing(staff_client, run_jobs, detector_weights):
    add(staff_client, run_jobs, source="path", server_path=str(detector_weights), sha256="0" * 64)

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.FAILED
    assert f"has SHA-256 {sha256(detector_weights)}, but {'0' * 64} was expected" in model.status_message
    assert not model.weights


def test_weights_changed_after_the_check_are_caught_before_activation(staff_client, run_jobs, detector_weights):
    add(staff_client, run_jobs, weights_file=weights_upload(detector_weights))
    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.READY
    stored = Path(model.weights.path)
    stored.write_bytes(stored.read_bytes()[:-16] + b"\x00" * 16)  # same size, different content

    response = staff_client.post(reverse("admin:detection_detectormodel_activate", args=[model.pk]), follow=True)

    model.refresh_from_db()
    assert not model.is_active and model.status == DetectorModel.Status.FAILED
    assert "but" in model.status_message and "was expected" in model.status_message
    assert "cannot be used" in page_messages(response)
    # Checking again loads through the same verification, so the model stays unusable.
    with run_jobs():
        staff_client.post(reverse("admin:detection_detectormodel_recheck", args=[model.pk]))
    model.refresh_from_db()
    assert model.status == DetectorModel.Status.FAILED and "was expected" in model.status_message


# --- The Hugging Face Hub -------------------------------------------------------------------------------------


class FakeHub:
    """Answers /{repo}/resolve/{revision}/{file} like huggingface.co, including its X-Error-Code headers."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, files: dict[tuple[str, str], bytes]):
        self.files = files
        self.authorizations: list[str | None] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, *, body: bool):
                hub.authorizations.append(self.headers.get("Authorization"))
                parts = self.path.lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self.fail(404, "RepoNotFound")
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if not any(key[0] == repo for key in hub.files):
                    return self.fail(401, "RepoNotFound")
                if revision not in {"main", hub.COMMIT}:
                    return self.fail(404, "RevisionNotFound")
                data = hub.files.get((repo, filename))
                if data is None:
                    return self.fail(404, "EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def fail(self, status: int, code: str):
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(settings, monkeypatch, tmp_path, detector_weights):
    import huggingface_hub.constants

    server = FakeHub({("acme/detector", "model.safetensors"): detector_weights.read_bytes()})
    settings.HUGGINGFACE_ENDPOINT = server.url
    settings.HUGGINGFACE_TOKEN = "hf_test_token"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    yield server
    server.close()


def test_a_hub_model_is_downloaded_by_the_worker_with_the_token(staff_client, run_jobs, hub, detector_weights):
    response = add(staff_client, run_jobs, source="hub", hub_repo="acme/detector", hub_filename="model.safetensors")

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.READY, model.status_message
    assert model.source == DetectorModel.Source.HUB and model.sha256 == sha256(detector_weights)
    assert Path(model.weights.path).read_bytes() == detector_weights.read_bytes()
    assert "Bearer hf_test_token" in hub.authorizations
    assert "acme/detector/model.safetensors from the Hugging Face Hub" in page_messages(response)


@pytest.mark.parametrize(
    ("repo", "filename", "revision", "message"),
    [
        (
            "acme/nothing-here",
            "model.safetensors",
            "",
            "The Hugging Face repository “acme/nothing-here” does not exist",
        ),
        ("acme/detector", "missing.safetensors", "", "has no file “missing.safetensors”"),
        ("acme/detector", "model.safetensors", "v9", "has no revision “v9”"),
    ],
)
def test_a_hub_repo_file_or_revision_that_does_not_exist_fails_clearly(
    staff_client, run_jobs, hub, repo, filename, revision, message
):
    add(staff_client, run_jobs, source="hub", hub_repo=repo, hub_filename=filename, hub_revision=revision)

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.FAILED
    assert message in model.status_message
    assert not model.weights


def test_an_unreachable_hub_fails_clearly(staff_client, run_jobs, hub, settings):
    hub.close()  # nothing listens on that loopback port any more
    add(staff_client, run_jobs, source="hub", hub_repo="acme/detector", hub_filename="model.safetensors")

    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.FAILED
    assert "the hub cannot be reached" in model.status_message


def test_a_model_stays_pending_with_a_message_when_the_queue_is_down(
    staff_client, detector_weights, broker, django_capture_on_commit_callbacks
):
    broker("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:detection_detectormodel_add"), add_form(weights_file=weights_upload(detector_weights))
        )

    assert response.status_code == 302
    model = DetectorModel.objects.get(version="2")
    assert model.status == DetectorModel.Status.PENDING and model.sha256 == sha256(detector_weights)
    assert "The task queue could not be reached" in model.status_message
    assert "Check the weights again" in model.status_message


# --- Activating, deactivating, deleting -------------------------------------------------------------------------


@pytest.fixture
def second_model(db, detector_weights):
    model = DetectorModel(name="detector", version="2", architecture="resnet18", status=DetectorModel.Status.READY)
    services.detector_model_store_weights(detector_model=model, path=detector_weights)
    model.save()
    return model


def test_the_database_allows_one_active_model_only(active_model, second_model):
    with pytest.raises(IntegrityError), transaction.atomic():
        DetectorModel.objects.filter(pk=second_model.pk).update(is_active=True)
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]


def test_activating_switches_the_active_model_in_one_step_and_logs_both(staff_client, active_model, second_model):
    response = staff_client.post(
        reverse(CHANGELIST), {"action": "activate", "_selected_action": [second_model.pk]}, follow=True
    )

    assert list(DetectorModel.objects.filter(is_active=True)) == [second_model]
    assert "“detector 2” is now the active model, replacing “test-detector 1”" in page_messages(response)
    logged = {entry.object_id: entry.change_message for entry in LogEntry.objects.filter(action_flag=CHANGE)}
    assert logged[str(second_model.pk)] == "Activated, replacing “test-detector 1”."
    assert logged[str(active_model.pk)] == "Deactivated: “detector 2” was activated in its place."


def test_activating_two_models_at_once_is_refused(staff_client, active_model, second_model):
    response = staff_client.post(
        reverse(CHANGELIST),
        {"action": "activate", "_selected_action": [active_model.pk, second_model.pk]},
        follow=True,
    )

    assert "Choose exactly one model to activate" in page_messages(response)
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]
    assert not LogEntry.objects.exists()


def test_a_pending_model_cannot_be_activated(staff_client, active_model, second_model):
    DetectorModel.objects.filter(pk=second_model.pk).update(
        status=DetectorModel.Status.PENDING, status_message="Waiting for a worker to fetch and check the weights."
    )
    response = staff_client.post(reverse("admin:detection_detectormodel_activate", args=[second_model.pk]), follow=True)

    assert "cannot be activated: Waiting for a worker" in page_messages(response)
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]


def test_the_activate_page_asks_first(staff_client, active_model, second_model):
    response = staff_client.get(reverse("admin:detection_detectormodel_activate", args=[second_model.pk]))

    assert response.status_code == 200
    assert "“test-detector 1” stops being active in the same step" in response.content.decode()
    assert not DetectorModel.objects.get(pk=second_model.pk).is_active


def test_there_is_no_deactivating_a_model_only_activating_another(staff_client, active_model):
    page = staff_client.get(reverse(CHANGELIST)).content.decode()
    response = staff_client.post(
        reverse(CHANGELIST), {"action": "deactivate", "_selected_action": [active_model.pk]}, follow=True
    )

    assert 'value="activate"' in page and 'value="deactivate"' not in page
    assert response.status_code == 200
    active_model.refresh_from_db()
    assert active_model.is_active


def test_the_active_model_cannot_be_deleted_in_code_either(active_model, second_model):
    with pytest.raises(ValidationError, match="is the only active model and cannot be deleted"):
        DetectorModel.objects.filter(pk__in=[active_model.pk, second_model.pk]).delete()
    with pytest.raises(ValidationError, match="is the only active model and cannot be deleted"):
        active_model.delete()

    assert DetectorModel.objects.count() == 2


def test_deleting_the_active_model_is_refused_on_its_page_and_in_bulk(staff_client, active_model, second_model):
    response = staff_client.post(
        reverse("admin:detection_detectormodel_delete", args=[active_model.pk]), {"post": "yes"}, follow=True
    )
    assert "cannot be deleted. Activate another model first." in page_messages(response)

    response = staff_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [active_model.pk, second_model.pk], "post": "yes"},
        follow=True,
    )
    assert "Nothing was deleted" in page_messages(response)
    assert DetectorModel.objects.count() == 2 and Path(active_model.weights.path).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_an_inactive_model_is_deleted_with_its_weights_and_logged(
    staff_client, active_model, second_model, django_capture_on_commit_callbacks
):
    weights = Path(second_model.weights.path)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:detection_detectormodel_delete", args=[second_model.pk]), {"post": "yes"}, follow=True
        )

    assert response.status_code == 200
    assert not DetectorModel.objects.filter(pk=second_model.pk).exists() and not weights.exists()
    assert LogEntry.objects.filter(object_id=str(second_model.pk), action_flag=DELETION).exists()


def test_the_list_counts_each_models_analyses_and_links_to_them(staff_client, active_model, second_model, user):
    AnalysisFactory.create_batch(3, owner=user, detector_model=active_model)

    response = staff_client.get(reverse(CHANGELIST))

    link = reverse("admin:detection_analysis_changelist") + f"?detector_model__id__exact={active_model.pk}"
    html = response.content.decode()
    assert f'<a href="{link}">3 analyses</a>' in html
    assert "0 analyses</a>" in html
    listed = staff_client.get(link)
    assert listed.context["cl"].result_count == 3


# --- Evaluating -------------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path, make_image_bytes) -> Path:
    root = tmp_path / "dataset"
    for label, offset in (("real", 0), ("fake", 10)):
        (root / label).mkdir(parents=True)
        for index in range(4):
            (root / label / f"{index}.png").write_bytes(make_image_bytes(96, 96, fmt="PNG", seed=offset + index))
    return root


def test_an_evaluation_stores_metrics_curves_and_shows_them(staff_client, run_jobs, active_model, dataset):
    url = reverse("admin:detection_detectormodel_evaluate", args=[active_model.pk])
    with run_jobs():
        response = staff_client.post(url, {"dataset_path": str(dataset)}, follow=True)

    evaluation = ModelEvaluation.objects.get()
    assert evaluation.status == ModelEvaluation.Status.DONE, evaluation.error_message
    metrics = evaluation.report["metrics"]
    assert metrics["counts"] == {"real": 4, "fake": 4} and metrics["threshold"] == active_model.threshold
    assert evaluation.roc_curve.read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert evaluation.pr_curve.read()[:8] == b"\x89PNG\r\n\x1a\n"
    active_model.refresh_from_db()
    assert active_model.metrics["evaluation"]["accuracy"] == metrics["accuracy"]
    assert active_model.metrics["evaluation"]["dataset"] == str(dataset)
    assert "A worker is evaluating" in page_messages(response)
    assert LogEntry.objects.filter(change_message__startswith="Started an evaluation on").exists()

    page = staff_client.get(reverse("admin:detection_detectormodel_change", args=[active_model.pk])).content.decode()
    roc = reverse("admin:detection_detectormodel_curve", args=[evaluation.pk, "roc"])
    assert f'src="{roc}"' in page and f"{metrics['accuracy']:.4f}" in page and "ROC-AUC" in page
    curve = staff_client.get(roc)
    assert curve.status_code == 200 and curve["Content-Type"] == "image/png"


def test_an_evaluation_needs_a_folder_with_real_and_fake(staff_client, active_model, dataset, tmp_path):
    url = reverse("admin:detection_detectormodel_evaluate", args=[active_model.pk])
    for path, message in (
        ("data", "is not an absolute path"),
        (str(tmp_path / "nowhere"), "There is no folder at"),
        (str(dataset / "real"), "has no real/ and no fake/ subfolder"),
    ):
        response = staff_client.post(url, {"dataset_path": path})
        assert response.status_code == 200 and message in response.content.decode(), path
    assert not ModelEvaluation.objects.exists()


def test_an_evaluation_that_cannot_read_its_images_fails_with_the_reason(
    staff_client, run_jobs, active_model, tmp_path
):
    empty = tmp_path / "empty"
    (empty / "real").mkdir(parents=True)
    (empty / "fake").mkdir()
    with run_jobs():
        staff_client.post(
            reverse("admin:detection_detectormodel_evaluate", args=[active_model.pk]), {"dataset_path": str(empty)}
        )

    evaluation = ModelEvaluation.objects.get()
    assert evaluation.status == ModelEvaluation.Status.FAILED
    assert "has no readable image" in evaluation.error_message
    assert "evaluation" not in DetectorModel.objects.get(pk=active_model.pk).metrics


# --- Editing --------------------------------------------------------------------------------------------------


def test_changing_the_architecture_checks_the_weights_again(staff_client, run_jobs, active_model, second_model):
    url = reverse("admin:detection_detectormodel_change", args=[second_model.pk])
    form = {
        "name": "detector",
        "version": "2",
        "description": "",
        "architecture": "resnet50",
        "input_size": 224,
        "threshold": 0.5,
    }
    with run_jobs():
        response = staff_client.post(url, form, follow=True)

    assert "its weights are being checked again" in page_messages(response)
    second_model.refresh_from_db()
    assert second_model.architecture == "resnet50" and second_model.status == DetectorModel.Status.FAILED
    assert "do not fit the “resnet50” architecture" in second_model.status_message
    assert LogEntry.objects.filter(object_id=str(second_model.pk), action_flag=CHANGE).exists()


def test_the_active_models_shape_cannot_be_edited(staff_client, active_model):
    url = reverse("admin:detection_detectormodel_change", args=[active_model.pk])
    form = {"name": "renamed", "version": "1", "description": "", "architecture": "resnet50", "input_size": 64}
    response = staff_client.post(url, {**form, "threshold": 0.7}, follow=True)

    assert response.status_code == 200
    active_model.refresh_from_db()
    assert (active_model.name, active_model.threshold) == ("renamed", 0.7)
    assert (active_model.architecture, active_model.input_size) == ("resnet18", 224)
    assert active_model.is_active and active_model.status == DetectorModel.Status.READY


def test_the_model_page_shows_the_training_metrics_as_a_table(staff_client, active_model):
    DetectorModel.objects.filter(pk=active_model.pk).update(
        metrics={"validation": {"count": 200, "threshold": 0.41, "accuracy": 0.9312, "roc_auc": 0.97}}
    )

    html = staff_client.get(reverse("admin:detection_detectormodel_change", args=[active_model.pk])).content.decode()

    assert "<th>validation" in html and "<td>0.9312</td>" in html and "<td>200</td>" in html
    assert "None yet." in html  # no evaluation
    assert "Not in the model card" in html  # no generalisation table


def test_the_model_page_shows_the_cards_table_across_kinds(staff_client, active_model):
    row = {"roc_auc": 0.99, "average_precision": 0.98, "accuracy": 0.97, "f1": 0.96, "counts": {"real": 5, "fake": 5}}
    card = {
        "generalisation": {
            "about": "Stand-in kinds <made here>.",
            "rows": [
                {**row, "data": "openforensics-train (held-out)", "trained_on_this_folder": True},
                {**row, "data": "face-swap", "roc_auc": 0.4657, "trained_on_this_folder": False},
            ],
        }
    }
    DetectorModel.objects.filter(pk=active_model.pk).update(card=card)

    html = staff_client.get(reverse("admin:detection_detectormodel_change", args=[active_model.pk])).content.decode()

    assert "<p>Stand-in kinds &lt;made here&gt;.</p>" in html
    assert "<th>openforensics-train (held-out)<br><small>the kind it was trained on" in html
    assert "<th>face-swap<br><small>a kind it never saw in training</small></th>" in html
    assert "<td>0.4657</td>" in html and "<td>10</td>" in html
