"""`manage.py ensure_active_model`: keeps the active model, or activates the configured Hugging Face model."""

import shutil

import pytest
from django.core.management import CommandError, call_command

from detection.models import DetectorModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache, laid out as huggingface_hub writes it, holding one repository."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def publish(repo_id: str, filename: str, source) -> None:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(COMMIT)
        (repo / "snapshots" / COMMIT).mkdir(parents=True)
        shutil.copy(source, repo / "snapshots" / COMMIT / filename)

    return publish


def run_command() -> str:
    from io import StringIO

    out = StringIO()
    call_command("ensure_active_model", stdout=out)
    return out.getvalue()


def test_an_active_model_is_kept(db, active_model):
    output = run_command()

    assert f"Active detector model: {active_model}" in output
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]


def test_the_configured_hub_model_is_downloaded_validated_and_activated(db, settings, hub_cache, detector_weights):
    hub_cache("acme/deepfake-detector", "model.safetensors", detector_weights)
    settings.HUGGINGFACE_REPO = "acme/deepfake-detector"
    settings.MODEL_FILENAME = "model.safetensors"
    settings.MODEL_ARCHITECTURE = "resnet18"
    settings.INFERENCE_BACKEND = "torch"
    settings.INFERENCE_PRECISION = "fp32"

    output = run_command()

    model = DetectorModel.objects.get(is_active=True)
    assert (model.source, model.hub_repo, model.architecture) == ("hub", "acme/deepfake-detector", "resnet18")
    assert model.status == "ready" and len(model.sha256) == 64
    assert "fetching model.safetensors from the Hugging Face repo acme/deepfake-detector" in output


def test_a_hub_model_that_cannot_be_had_stops_the_command_with_the_reason(db, settings, hub_cache):
    settings.HUGGINGFACE_REPO = "acme/missing"
    settings.MODEL_FILENAME = "model.safetensors"
    settings.MODEL_ARCHITECTURE = "resnet18"

    with pytest.raises(CommandError, match=r"could not be used: .*acme/missing"):
        run_command()

    assert not DetectorModel.objects.filter(is_active=True).exists()
    assert DetectorModel.objects.get().status == "failed"


@pytest.fixture
def fast_engine(settings):
    settings.INFERENCE_BACKEND = "torch"
    settings.INFERENCE_PRECISION = "fp32"


def test_the_bundled_reference_model_is_registered_and_activated(db, fast_engine):
    from detection.management.commands.ensure_active_model import BUNDLED_MODEL_DIR
    from ml.package import read_card

    output = run_command()

    card = read_card(BUNDLED_MODEL_DIR)
    model = DetectorModel.objects.get(is_active=True)
    assert "registering the bundled reference model" in output
    assert (model.architecture, model.input_size, model.sha256) == ("mobilenet_v2", 160, card["sha256"])
    assert model.status == "ready" and model.face_framing == card["faces"]["framing"] == 1.25
    assert model.threshold == pytest.approx(card["threshold"])
    assert "Research and evaluation use only" in model.card["terms"]
    in_kind, *other_kinds = model.card["generalisation"]["rows"]
    assert in_kind["trained_on_this_folder"] and in_kind["roc_auc"] >= 0.99  # its held-out OpenForensics faces
    assert [row["data"] for row in other_kinds] == ["face-swap", "self-blended"]


def test_a_replaced_reference_model_is_activated_again_not_registered_twice(db, fast_engine):
    run_command()
    reference = DetectorModel.objects.get(is_active=True)
    DetectorModel.objects.filter(pk=reference.pk).update(is_active=False)

    output = run_command()

    assert "activating the bundled reference model" in output
    assert list(DetectorModel.objects.filter(is_active=True)) == [reference]
    assert DetectorModel.objects.count() == 1


def test_without_the_bundled_model_the_starter_model_is_made(db, monkeypatch):
    from detection.management.commands import ensure_active_model

    calls = []
    monkeypatch.setattr(ensure_active_model, "BUNDLED_MODEL_DIR", ensure_active_model.BUNDLED_MODEL_DIR / "missing")
    monkeypatch.setattr(ensure_active_model, "call_command", lambda name, **kwargs: calls.append(name))

    with pytest.raises(CommandError, match="make_starter_model finished without activating a model"):
        run_command()

    assert calls == ["make_starter_model"]
