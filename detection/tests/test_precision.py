"""bf16 or fp32 per model, decided by measuring the model when it is checked, and used by the workers that load it."""

from pathlib import Path

import pytest
from django.urls import reverse

from detection import engine, services
from detection.models import DetectorModel

pytestmark = pytest.mark.django_db

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference"


@pytest.fixture
def trained_model(settings):
    """The bundled reference model (trained: MobileNetV2 at 160 px), registered and not yet checked."""
    settings.INFERENCE_BACKEND = "torch"
    detector_model = DetectorModel(name="reference", version="1", architecture="mobilenet_v2", input_size=160)
    services.detector_model_store_weights(detector_model=detector_model, path=REFERENCE / "model.safetensors")
    detector_model.save()
    return detector_model


def test_checking_a_model_measures_bf16_against_fp32_and_stores_the_choice(settings, trained_model):
    settings.INFERENCE_PRECISION = "auto"

    checked = services.detector_model_prepare(detector_model_id=trained_model.pk)

    check = checked.precision_check
    assert checked.status == DetectorModel.Status.READY, checked.status_message
    assert check["precision"] in ("bf16", "fp32") and check["pictures"] == 8 and check["backend"] == "torch"
    assert 0 < check["max_abs_dp"] < 0.5 and 0.5 < check["min_heatmap_corr"] <= 1  # bf16 rounds, a little
    assert check["fp32_ms"] > 0 and check["bf16_ms"] > 0
    assert f"Runs in {check['precision']}: {check['reason']}." in checked.status_message
    assert engine.detector_load(checked).precision == check["precision"]


def test_a_set_precision_is_used_as_it_is_and_nothing_is_measured(settings, trained_model):
    settings.INFERENCE_PRECISION = "fp32"

    checked = services.detector_model_prepare(detector_model_id=trained_model.pk)

    assert checked.status == DetectorModel.Status.READY and checked.precision_check == {}
    checked.precision_check = {"precision": "bf16"}  # measured earlier, while INFERENCE_PRECISION was auto
    assert engine.detector_load(checked).precision == "fp32"
    settings.INFERENCE_PRECISION = "auto"
    assert engine.detector_load(checked).precision == "bf16"


def test_workers_reload_a_model_whose_choice_changed(trained_model):
    before = trained_model.cache_key

    trained_model.precision_check = {"precision": "bf16"}

    assert trained_model.cache_key != before


def test_the_admin_shows_the_choice_and_its_figures(settings, staff_client, trained_model):
    settings.INFERENCE_PRECISION = "auto"
    trained_model.precision_check = {
        "precision": "fp32", "reason": "bf16 moved a probability by 0.0294", "pictures": 8, "backend": "openvino",
        "max_abs_dp": 0.029431, "min_heatmap_corr": 0.997638, "fp32_ms": 11.43, "bf16_ms": 10.16,
    }  # fmt: skip
    trained_model.save()
    url = reverse("admin:detection_detectormodel_change", args=[trained_model.pk])

    html = staff_client.get(url).content.decode()

    assert "fp32: bf16 moved a probability by 0.0294. On 8 pictures with openvino: largest |Δp| 0.0294" in html
    assert "11.4 ms per picture in fp32 and 10.2 in bf16" in html
    settings.INFERENCE_PRECISION = "bf16"
    assert "bf16, as INFERENCE_PRECISION says" in staff_client.get(url).content.decode()


def test_a_measurement_that_fails_leaves_the_model_in_fp32_and_says_why(settings, trained_model, monkeypatch):
    import ml.precision

    def cannot_compile(*args, **kwargs):
        raise RuntimeError("bf16 is not supported by this backend")

    monkeypatch.setattr(ml.precision, "choose_precision", cannot_compile)
    settings.INFERENCE_PRECISION = "auto"

    checked = services.detector_model_prepare(detector_model_id=trained_model.pk)

    assert checked.status == DetectorModel.Status.READY
    assert checked.precision_check == {
        "precision": "fp32",
        "reason": "bf16 could not be measured (bf16 is not supported by this backend)",
    }
    assert engine.detector_load(checked).precision == "fp32"
