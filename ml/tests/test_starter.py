"""The starter model's held-out report on photo crops alone: the subset is found by the generated file names."""

from ml.starter import photo_pairs
from ml.synthetic import write_dataset


def test_the_photo_subset_holds_exactly_the_photo_crops_of_both_classes(tmp_path):
    description = write_dataset(tmp_path / "test", 10, size=32, seed=4)
    subset = photo_pairs(tmp_path / "test", tmp_path / "photos")

    for label in ("real", "fake"):
        names = sorted(path.name for path in (subset / label).iterdir())
        assert len(names) == description["photo_crops"] > 0
        assert all(name.split(".")[0].endswith("_photo") for name in names)
        assert (tmp_path / "test" / label / names[0]).read_bytes() == (subset / label / names[0]).read_bytes()


def test_without_sample_photographs_there_is_no_photo_subset(tmp_path):
    write_dataset(tmp_path / "test", 6, size=32, seed=4, photos=[])  # procedural pictures only
    assert photo_pairs(tmp_path / "test", tmp_path / "photos") is None
    assert not (tmp_path / "photos").exists()
