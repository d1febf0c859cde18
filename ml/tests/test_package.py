"""Model packages: weights plus a JSON model card, written and read back, and every way a package can be broken."""

import json
import re

import pytest
import torch

from ml.architectures import get_architecture
from ml.errors import ArchitectureMismatchError, ChecksumMismatchError
from ml.package import CARD_FILE, WEIGHTS_FILE, PackageError, code_version, load_package, read_card, write_package

CARD = {"name": "test model", "version": "1", "architecture": "resnet18", "input_size": 64, "threshold": 0.42}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return get_architecture("resnet18").build().eval()


@pytest.fixture
def package(model, tmp_path):
    write_package(model, tmp_path / "package", dict(CARD, metrics={"validation": {"roc_auc": 0.9}}))
    return tmp_path / "package"


def test_a_package_round_trips_weights_and_card(model, package):
    loaded, card = load_package(package)

    assert sorted(p.name for p in package.iterdir()) == [WEIGHTS_FILE, CARD_FILE]
    assert {k: card[k] for k in CARD} == CARD
    assert card["metrics"] == {"validation": {"roc_auc": 0.9}}
    assert not loaded.training
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_the_card_records_checksum_date_and_code_version(package):
    from ml.weights import sha256_of

    card = read_card(package)

    assert card["sha256"] == sha256_of(package / WEIGHTS_FILE)
    assert card["created_at"].endswith("+00:00")
    # The checkout's commit (others may commit meanwhile, so only its form is checked); None outside git.
    assert code_version() is None or re.fullmatch(r"[0-9a-f]{40}", card["code_version"])


def test_a_missing_package_is_named(tmp_path):
    with pytest.raises(PackageError, match=r"no model package at .*nowhere"):
        read_card(tmp_path / "nowhere")


def test_a_folder_without_card_says_what_a_package_holds(tmp_path):
    with pytest.raises(PackageError, match=r"has no model_card\.json; a model package holds model\.safetensors"):
        read_card(tmp_path)


def test_a_card_that_is_not_json_is_refused(package):
    (package / CARD_FILE).write_text("{not json")
    with pytest.raises(PackageError, match=r"is not readable JSON"):
        read_card(package)


def test_a_card_without_the_required_keys_lists_them(package):
    (package / CARD_FILE).write_text(json.dumps({"name": "x", "architecture": "resnet18"}))
    with pytest.raises(PackageError, match=r"lacks input_size, threshold, sha256"):
        read_card(package)


def test_a_card_that_is_not_an_object_is_refused(package):
    (package / CARD_FILE).write_text("[1, 2]")
    with pytest.raises(PackageError, match=r"lacks name, architecture"):
        read_card(package)


def test_weights_changed_after_packaging_are_refused(package):
    data = bytearray((package / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (package / WEIGHTS_FILE).write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatchError, match=r"not the one that was registered"):
        load_package(package)


def test_a_card_naming_another_architecture_is_refused(model, tmp_path):
    write_package(model, tmp_path / "p", dict(CARD, architecture="resnet50"))

    with pytest.raises(ArchitectureMismatchError, match=r"do not fit the “resnet50” architecture"):
        load_package(tmp_path / "p")
