"""Reading a real/ + fake/ folder: what counts as an image, what is skipped and why, the split, the dataset items."""

import numpy as np
import pytest
import torch

from conftest import image_bytes
from ml.data import (
    FAKE,
    REAL,
    ImageDataset,
    PairedBatchSampler,
    find_pairs,
    load_training_data,
    pair_key,
    scan_folder,
    stratified_split,
)
from ml.errors import TrainingDataError


def fill(folder, count: int, *, seed: int = 0, fmt: str = "PNG", size: int = 24) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[fmt]
    paths = []
    for index in range(count):
        path = folder / f"img_{seed}_{index:03d}{suffix}"
        path.write_bytes(image_bytes(size, size, fmt=fmt, seed=seed + index))
        paths.append(path)
    return paths


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "dataset"
    fill(root / "real", 10, seed=0)
    fill(root / "fake", 6, seed=100, fmt="JPEG")
    return root


def test_images_of_both_classes_are_found_with_their_labels(dataset):
    folder = scan_folder(dataset)

    assert folder.counts() == {"real": 10, "fake": 6}
    assert {s.label for s in folder.samples if s.path.parent.name == "real"} == {REAL}
    assert {s.label for s in folder.samples if s.path.parent.name == "fake"} == {FAKE}
    assert folder.skipped == []


def test_subfolders_are_read_and_other_files_ignored(dataset):
    fill(dataset / "fake" / "generator-b", 3, seed=200, fmt="WEBP")
    (dataset / "real" / "notes.txt").write_text("not an image")
    (dataset / "real" / ".DS_Store").write_bytes(b"\0\1\2")
    fill(dataset / "real" / ".thumbnails", 2, seed=300)  # hidden folder

    folder = scan_folder(dataset)

    assert folder.counts() == {"real": 10, "fake": 9}
    assert folder.skipped == []


def test_unreadable_image_files_are_skipped_and_counted_with_the_reason(dataset):
    (dataset / "real" / "empty.jpg").write_bytes(b"")
    (dataset / "fake" / "text.png").write_text("hello")
    truncated = image_bytes(64, 64, fmt="JPEG")
    (dataset / "fake" / "truncated.jpg").write_bytes(truncated[: len(truncated) // 3])

    folder = scan_folder(dataset)

    assert folder.counts() == {"real": 10, "fake": 6}
    reasons = {s.path.name: s.reason for s in folder.skipped}
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.jpg"}
    assert "not an image" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "damaged or truncated" in reasons["truncated.jpg"]


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(TrainingDataError, match=r"does not exist"):
        scan_folder(tmp_path / "nowhere")


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(TrainingDataError, match=r"is a file"):
        scan_folder(tmp_path / "data.zip")


def test_a_folder_without_the_class_folders_says_how_to_lay_it_out(tmp_path):
    fill(tmp_path / "images", 3)
    with pytest.raises(TrainingDataError, match=r"has no real/ and no fake/ folder\. Put authentic images in"):
        scan_folder(tmp_path)


def test_a_class_with_only_unreadable_files_is_refused_and_the_count_given(dataset):
    for path in (dataset / "fake").iterdir():
        path.write_bytes(b"garbage")

    with pytest.raises(TrainingDataError, match=r"fake has no readable image \(6 image files could not be decoded\)"):
        scan_folder(dataset)


def test_an_empty_class_folder_is_refused(dataset):
    for path in (dataset / "real").iterdir():
        path.unlink()

    with pytest.raises(TrainingDataError, match=r"real has no readable image\. Both classes are needed"):
        scan_folder(dataset)


def test_the_split_keeps_each_class_balance_and_is_the_same_for_the_same_seed(tmp_path):
    root = tmp_path / "d"
    fill(root / "real", 20, seed=0, size=24)
    fill(root / "fake", 10, seed=50, size=24)
    samples = scan_folder(root).samples

    train, validation = stratified_split(samples, val_fraction=0.2, seed=7)
    again = stratified_split(list(reversed(samples)), val_fraction=0.2, seed=7)
    other = stratified_split(samples, val_fraction=0.2, seed=8)

    assert sorted(s.label for s in validation) == [REAL] * 4 + [FAKE] * 2
    assert sorted(s.label for s in train) == [REAL] * 16 + [FAKE] * 8
    assert not {s.path for s in train} & {s.path for s in validation}
    assert (train, validation) == again
    assert {s.path for s in other[1]} != {s.path for s in validation}


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_a_validation_fraction_outside_0_1_is_refused(dataset, fraction):
    with pytest.raises(TrainingDataError, match=r"between 0 and 1"):
        stratified_split(scan_folder(dataset).samples, val_fraction=fraction, seed=0)


def test_a_class_too_small_to_split_is_refused_with_the_way_out(tmp_path):
    root = tmp_path / "d"
    fill(root / "real", 5, size=24)
    fill(root / "fake", 1, seed=9, size=24)

    with pytest.raises(TrainingDataError, match=r"fake class has 1 readable image\(s\).*--val-dir"):
        load_training_data(root)


def test_an_explicit_validation_folder_is_used_whole(dataset, tmp_path):
    validation_root = tmp_path / "validation"
    fill(validation_root / "real", 3, seed=500)
    fill(validation_root / "fake", 2, seed=600)
    (validation_root / "fake" / "broken.png").write_bytes(b"x")

    data = load_training_data(dataset, val_dir=validation_root)

    assert data.description["counts"] == {"train": {"real": 10, "fake": 6}, "validation": {"real": 3, "fake": 2}}
    assert data.description["split"] == "explicit validation folder"
    assert data.description["skipped_files"] == 1
    assert [s.path.name for s in data.skipped] == ["broken.png"]


def test_the_random_split_is_described_for_the_model_card(dataset):
    data = load_training_data(dataset, val_fraction=0.3, seed=3)

    assert data.description["counts"] == {"train": {"real": 7, "fake": 4}, "validation": {"real": 3, "fake": 2}}
    assert (data.description["split_seed"], data.description["val_fraction"]) == (3, 0.3)
    assert data.description["train_dir"] == str(dataset.resolve())


def test_dataset_items_are_normalised_tensors_of_the_input_size_with_float_labels(dataset):
    samples = scan_folder(dataset).samples
    items = ImageDataset(samples, 32)

    image, label = items[0]
    fake_image, fake_label = items[[s.label for s in samples].index(FAKE)]

    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.item() == samples[0].label and fake_label.item() == 1.0
    # ImageNet normalisation puts pixel values roughly in [-2.2, 2.7]; raw 0-255 or 0-1 values would not fit.
    assert image.min() < 0 < image.max() <= 2.7
    assert not torch.equal(image, fake_image)


def test_dataset_items_go_through_the_augmentation(dataset):
    samples = scan_folder(dataset).samples
    flipped = ImageDataset(samples, 32, augment=lambda image: image.transpose(0))  # FLIP_LEFT_RIGHT

    plain_image, _ = ImageDataset(samples, 32)[0]
    flipped_image, _ = flipped[0]

    np.testing.assert_allclose(flipped_image.numpy(), plain_image.flip(-1).numpy(), atol=1e-5)


def test_a_cached_dataset_decodes_each_file_once_and_augments_every_time(dataset):
    samples = scan_folder(dataset).samples
    flips = iter([False, True])
    cached = ImageDataset(samples, 32, augment=lambda image: image.transpose(0) if next(flips) else image, cache=True)

    first, _ = cached[0]
    samples[0].path.unlink()  # read from memory from now on
    second, _ = cached[0]

    np.testing.assert_allclose(second.numpy(), first.flip(-1).numpy(), atol=1e-5)


def test_a_file_that_disappears_during_training_names_the_file(dataset):
    samples = scan_folder(dataset).samples
    samples[0].path.unlink()

    with pytest.raises(TrainingDataError, match=samples[0].path.name):
        ImageDataset(samples, 32)[0]


@pytest.fixture
def paired_dataset(tmp_path):
    """real/NAME.png and fake/NAME.jpg for 10 names, plus 2 real and 1 fake without a partner."""
    root = tmp_path / "paired"
    for index in range(10):
        for name, fmt, suffix in (("real", "PNG", ".png"), ("fake", "JPEG", ".jpg")):
            (root / name / "set-a").mkdir(parents=True, exist_ok=True)
            data = image_bytes(24, 24, fmt=fmt, seed=index)
            (root / name / "set-a" / f"{index:03d}{suffix}").write_bytes(data)
    fill(root / "real", 2, seed=50)
    fill(root / "fake", 1, seed=60)
    return root


def test_pairs_are_found_by_their_name_inside_the_class_folder(paired_dataset):
    samples = scan_folder(paired_dataset).samples

    pairs, others = find_pairs(samples)

    assert len(pairs) == 10 and len(others) == 3
    for real, fake in pairs:
        assert samples[real].label == REAL and samples[fake].label == FAKE
        assert samples[real].path.stem == samples[fake].path.stem
        assert pair_key(samples[real]) == pair_key(samples[fake]) == f"set-a/{samples[real].path.stem}"


def test_a_paired_split_keeps_each_pair_on_one_side(paired_dataset):
    samples = scan_folder(paired_dataset).samples

    train, validation = stratified_split(samples, val_fraction=0.2, seed=1, paired=True)

    train_keys = {pair_key(s) for s in train if "set-a" in str(s.path)}
    validation_keys = {pair_key(s) for s in validation if "set-a" in str(s.path)}
    assert len(validation_keys) == 2 and len(train_keys) == 8 and not train_keys & validation_keys
    assert len(train) + len(validation) == len(samples)
    assert (train, validation) == stratified_split(samples, val_fraction=0.2, seed=1, paired=True)
    # Unpaired, the same folder splits real and fake pictures of one pair apart for some seed.
    assert any(
        {pair_key(s) for s in stratified_split(samples, val_fraction=0.2, seed=seed)[1]}
        & {pair_key(s) for s in stratified_split(samples, val_fraction=0.2, seed=seed)[0]}
        for seed in range(5)
    )


def test_paired_batches_hold_whole_pairs_and_cover_each_pair_once(paired_dataset):
    samples = scan_folder(paired_dataset).samples
    sampler = PairedBatchSampler(samples, 4, generator=torch.Generator().manual_seed(0))

    batches = list(sampler)

    assert len(batches) == len(sampler) == 5  # 10 pairs, 2 per batch; the 3 leftovers make no full batch
    for batch in batches:
        assert len(batch) == 4
        assert sorted(samples[i].label for i in batch) == [REAL, REAL, FAKE, FAKE]
        assert len({pair_key(samples[i]) for i in batch}) == 2
    assert len({i for batch in batches for i in batch}) == 20


def test_paired_batches_are_shared_out_between_processes(paired_dataset):
    samples = scan_folder(paired_dataset).samples

    shards = [
        list(PairedBatchSampler(samples, 4, generator=torch.Generator().manual_seed(3), rank=rank, world_size=2))
        for rank in (0, 1)
    ]

    assert len(shards[0]) == len(shards[1]) == 2
    seen = [i for shard in shards for batch in shard for i in batch]
    assert len(seen) == len(set(seen)) == 16


def test_face_datasets_frame_the_largest_face_after_the_degradation(tmp_path):
    from conftest import photo_with_faces
    from ml.augment import downscale
    from ml.data import REAL, Sample
    from ml.faces import default_finder, main_face_crop
    from ml.preprocessing import to_array

    photo = photo_with_faces([(80, 120, 240), (620, 260, 150)])
    photo.save(tmp_path / "two.png")
    sample = Sample(tmp_path / "two.png", REAL)

    framed, _ = ImageDataset([sample], 64, faces=True)[0]
    halved, _ = ImageDataset([sample], 64, faces=True, degrade=lambda image: downscale(image, 0.5))[0]

    expected = main_face_crop(photo)
    (largest, _) = default_finder().find(photo)
    assert expected.width == round(largest.side * 1.25)
    np.testing.assert_allclose(framed.numpy(), to_array(expected, 64), atol=1e-5)
    assert not np.allclose(halved.numpy(), framed.numpy(), atol=1e-2)  # found again in the halved photo
    np.testing.assert_allclose(halved.numpy(), to_array(main_face_crop(downscale(photo, 0.5)), 64), atol=1e-5)
