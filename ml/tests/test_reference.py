"""The reference model's card carries a generalisation table: its own held-out split, then kinds it never saw."""

import pytest
from PIL import ImageOps

from conftest import photo_with_faces
from ml.evaluate import evaluate_package
from ml.package import write_package
from ml.reference import cross_kind_table
from ml.tests.conftest import calibrated_model


@pytest.fixture
def face_data(tmp_path):
    data = tmp_path / "data"
    for name in ("real", "fake"):
        (data / name).mkdir(parents=True)
    for number, place in enumerate([(100, 80, 220), (400, 150, 260), (600, 200, 240), (250, 100, 300)] * 2):
        photo = photo_with_faces([place], width=900, height=600)
        photo = ImageOps.mirror(photo) if number >= 4 else photo
        photo.save(data / "real" / f"face-{number}.jpg", quality=90)
        ImageOps.posterize(photo, 3).save(data / "fake" / f"face-{number}.jpg", quality=90)
    return data


def test_the_table_has_the_held_out_split_then_each_stand_in_kind(face_data, tmp_path):
    card = {"name": "t", "version": "1", "architecture": "resnet18", "input_size": 64, "threshold": 0.5}
    card["data"] = {"train_dir": str(face_data), "val_fraction": 0.5, "split_seed": 1}
    package = tmp_path / "package"
    write_package(calibrated_model("resnet18", seed=1), package, card)
    in_kind = evaluate_package(package, face_data, output_dir=tmp_path / "own", subset="validation", progress=False)

    table = cross_kind_table(package, face_data, in_kind, tmp_path / "scratch", progress=False)

    assert [row["data"] for row in table["rows"]] == ["data (held-out)", "face-swap", "self-blended"]
    assert [row["trained_on_this_folder"] for row in table["rows"]] == [True, False, False]
    # The stand-ins are made from the very real faces the model held out: 4 of 8, each with its fake.
    assert [row["counts"] for row in table["rows"]] == [{"real": 4, "fake": 4}] * 3
    assert all(0 <= row["roc_auc"] <= 1 for row in table["rows"]) and "stand-ins" in table["about"]
