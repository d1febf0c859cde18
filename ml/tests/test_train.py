"""Training end to end on a small generated folder: package, checkpoints, --resume, early stopping, bad input."""

import shutil

import pytest
import torch
from PIL import Image

from ml.detector import Detector
from ml.errors import MLError, TrainingDataError
from ml.package import WEIGHTS_FILE, load_package
from ml.synthetic import write_dataset
from ml.train import ResumeError, TrainConfig, main, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    write_dataset(root, 20, size=64, seed=3)  # 20 real + 20 fake: 32 to train, 8 to validate
    return root


def config(data_dir, output_dir, **options) -> TrainConfig:
    defaults = {
        "architecture": "resnet18",
        "input_size": 64,
        "epochs": 1,
        "batch_size": 8,
        "workers": 0,
        "threads": 1,  # steadier than two threads on a machine whose cores other work keeps busy
        "pretrained": False,
        "progress": False,
    }
    return TrainConfig(data_dir=data_dir, output_dir=output_dir, **{**defaults, **options})


@pytest.fixture(scope="module")
def one_epoch(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    return output, train(config(data_dir, output))


def test_one_epoch_writes_a_package_the_detector_loads(one_epoch):
    output, result = one_epoch

    assert result.package_dir == output / "package"
    _model, card = load_package(result.package_dir)
    assert (card["architecture"], card["input_size"]) == ("resnet18", 64)
    assert 0 < card["threshold"] < 1
    detector = Detector.from_weights(
        result.package_dir / WEIGHTS_FILE,
        architecture="resnet18",
        input_size=64,
        threshold=card["threshold"],
        expected_sha256=card["sha256"],
        backend="torch",
        precision="fp32",
    )
    (prediction,) = detector.predict([Image.new("RGB", (80, 60), (120, 120, 120))])
    assert 0 <= prediction.probability_fake <= 1


def test_the_model_card_describes_data_training_and_metrics(one_epoch, data_dir):
    _, result = one_epoch
    card = result.card

    assert card["data"]["counts"] == {"train": {"real": 16, "fake": 16}, "validation": {"real": 4, "fake": 4}}
    assert card["data"]["train_dir"] == str(data_dir.resolve())
    validation = card["metrics"]["validation"]
    assert validation["count"] == 8 and validation["threshold"] == card["threshold"]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "confusion_matrix"):
        assert key in validation
    hyper = card["training"]["hyperparameters"]
    assert (hyper["optimizer"], hyper["lr"], hyper["batch_size"]) == ("AdamW", 1e-4, 8)
    assert hyper["pretrained"] == {"requested": False, "loaded": False}
    assert card["training"]["epochs_run"] == 1 and card["training"]["best_epoch"] == 1
    assert card["training"]["stopped_because"] == "reached the last epoch (1)"
    assert card["training"]["distributed"]["world_size"] == 1
    assert card["threshold_rule"].startswith("maximise Youden's J")


def test_checkpoints_hold_the_last_and_the_best_epoch(one_epoch):
    output, result = one_epoch

    last = torch.load(output / "checkpoints" / "last.pth", weights_only=True)
    best = torch.load(output / "checkpoints" / "best.pth", weights_only=True)
    model, _ = load_package(result.package_dir)

    assert (last["epoch"], last["architecture"], last["input_size"]) == (1, "resnet18", 64)
    assert {"optimizer", "scheduler", "history", "best"} <= set(last)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(best["model"][key], value)


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(data_dir, tmp_path):
    straight = train(config(data_dir, tmp_path / "straight", epochs=2, patience=5))
    train(config(data_dir, tmp_path / "interrupted", epochs=1, patience=5))
    resumed = train(
        config(
            data_dir,
            tmp_path / "interrupted",
            epochs=2,
            patience=5,
            resume=tmp_path / "interrupted" / "checkpoints" / "last.pth",
        )
    )

    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.card["training"]["resumed_from"].endswith("last.pth")
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    final_straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.pth", weights_only=True)["model"]
    final_resumed = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.pth", weights_only=True)["model"]
    for key, value in final_straight.items():
        torch.testing.assert_close(final_resumed[key], value, msg=key)


def test_training_stops_early_when_validation_stops_improving(data_dir, tmp_path):
    # The same pictures as real and as fake: no model can rank them, so the ROC-AUC stays 0.5 after epoch 1.
    validation = tmp_path / "validation"
    shutil.copytree(data_dir / "real", validation / "real")
    shutil.copytree(data_dir / "real", validation / "fake")

    result = train(config(data_dir, tmp_path / "run", epochs=6, patience=2, val_dir=validation))

    assert len(result.history) == 3
    assert result.card["training"]["stopped_because"] == "early stopping: no better validation ROC-AUC for 2 epochs"
    assert result.card["training"]["best_epoch"] == 1
    assert result.card["data"]["split"] == "explicit validation folder"


def test_paired_training_keeps_pairs_together_in_the_split(data_dir, tmp_path):
    result = train(config(data_dir, tmp_path / "run", paired=True))

    card = result.card
    assert card["data"]["split"] == "stratified random split, real/fake pairs kept together"
    assert card["data"]["counts"] == {"train": {"real": 16, "fake": 16}, "validation": {"real": 4, "fake": 4}}
    assert card["training"]["hyperparameters"]["paired_batches"] is True
    assert result.history[0]["train_images"] == 32


def test_the_cosine_schedule_brings_the_learning_rate_down_to_nearly_zero(data_dir, tmp_path):
    result = train(config(data_dir, tmp_path / "run", epochs=2, schedule="cosine", lr=1e-3))

    first, last = (h["lr"] for h in result.history)
    assert 1e-3 > first > last and last < 0.05 * 1e-3
    assert result.card["training"]["hyperparameters"]["scheduler"] == "cosine decay from lr to 0 over the epochs"


def test_resuming_with_another_architecture_says_how_to_continue(one_epoch, data_dir, tmp_path):
    output, _ = one_epoch

    with pytest.raises(ResumeError, match=r"trained as resnet18 at 64 px, but this run asks for resnet50 at 64 px"):
        train(config(data_dir, tmp_path, architecture="resnet50", resume=output / "checkpoints" / "last.pth"))


def test_resuming_from_a_file_that_is_not_a_checkpoint_is_refused(one_epoch, data_dir, tmp_path):
    output, _ = one_epoch
    with pytest.raises(ResumeError, match=r"not a training checkpoint written by ml\.train"):
        train(config(data_dir, tmp_path, resume=output / "package" / WEIGHTS_FILE))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ResumeError, match=r"not a readable checkpoint"):
        train(config(data_dir, tmp_path, resume=tmp_path / "broken.pth"))
    with pytest.raises(ResumeError, match=r"no checkpoint at"):
        train(config(data_dir, tmp_path, resume=tmp_path / "missing.pth"))


def test_an_existing_run_is_not_overwritten(one_epoch, data_dir):
    output, _ = one_epoch
    with pytest.raises(MLError, match=r"already holds a training run.*--resume"):
        train(config(data_dir, output))


def test_a_one_class_folder_is_refused(tmp_path):
    write_dataset(tmp_path / "data", 4, size=32, seed=1)
    shutil.rmtree(tmp_path / "data" / "fake")
    (tmp_path / "data" / "fake").mkdir()

    with pytest.raises(TrainingDataError, match=r"fake has no readable image"):
        train(config(tmp_path / "data", tmp_path / "run"))


def test_too_few_images_for_one_batch_says_what_to_change(data_dir, tmp_path):
    with pytest.raises(TrainingDataError, match=r"32 training images, fewer than one batch of 64.*--batch-size"):
        train(config(data_dir, tmp_path / "run", batch_size=64))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"epochs": 0}, "--epochs must be at least 1"),
        ({"batch_size": 1}, "--batch-size must be at least 2"),
        ({"lr": 0}, "--lr must be positive"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"schedule": "step"}, "--schedule must be one of plateau, cosine"),
        ({"input_size": 16}, "input size must be at least 32"),
        ({"architecture": "vgg"}, "Unknown architecture “vgg”"),
    ],
)
def test_impossible_options_are_refused_before_any_work(data_dir, tmp_path, option, message):
    with pytest.raises(MLError, match=message):
        train(config(data_dir, tmp_path / "run", **option))
    assert not (tmp_path / "run").exists()


def test_the_command_line_shows_progress_and_the_result(data_dir, tmp_path, capsys):
    status = main([str(data_dir), "--output", str(tmp_path / "run"), "--architecture", "resnet18", *SMALL])

    captured = capsys.readouterr()
    assert status == 0
    assert "epoch 1/1" in captured.err and "val_auc=" in captured.err and "loss=" in captured.err
    assert f"wrote {tmp_path / 'run' / 'package'}" in captured.out
    assert "validation: roc_auc" in captured.out


def test_the_command_line_reports_user_mistakes_without_a_traceback(tmp_path, capsys):
    status = main([str(tmp_path / "missing"), "--output", str(tmp_path / "run"), "--architecture", "resnet18"])

    err = capsys.readouterr().err
    assert status == 2
    assert err == f"error: The data folder {tmp_path / 'missing'} does not exist.\n"


SMALL = [
    "--input-size",
    "64",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--threads",
    "1",
    "--no-pretrained",
]


def test_a_face_model_records_its_framing_in_the_card(data_dir, tmp_path):
    from ml.faces import face_card

    result = train(config(data_dir, tmp_path / "faces", faces=True, cache_images=True))

    assert result.card["faces"] == face_card() and result.card["faces"]["framing"] == 1.25
    assert load_package(result.package_dir)[1]["faces"] == face_card()


def test_self_blended_training_needs_only_real_pictures(data_dir, tmp_path):
    reals_only = tmp_path / "reals"
    reals_only.mkdir()
    (reals_only / "real").symlink_to(data_dir / "real")

    result = train(config(reals_only, tmp_path / "run", self_blended=1.0, ignore_fakes=True, faces=True))

    counts = result.card["data"]["counts"]
    assert counts == {"train": {"real": 16, "fake": 16}, "validation": {"real": 4, "fake": 4}}
    assert result.card["data"]["self_blended"]["real_fakes"] == "left out"
    assert list(result.card["data"]["self_blended"]["recipe"]["blend_ratios"]) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_ignoring_the_fakes_without_self_blending_is_refused(data_dir, tmp_path):
    with pytest.raises(MLError, match="--ignore-fakes needs --self-blended"):
        train(config(data_dir, tmp_path / "run", ignore_fakes=True))
