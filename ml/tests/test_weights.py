"""Loading weights from files and from the Hugging Face Hub, and the errors a person gets when that fails."""

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ml.architectures import get_architecture
from ml.detector import Detector
from ml.errors import (
    ArchitectureMismatchError,
    ChecksumMismatchError,
    CorruptWeightsError,
    HubNotFoundError,
    HubUnavailableError,
    NotAStateDictError,
    WeightsNotFoundError,
)
from ml.tests.conftest import HubStandIn
from ml.weights import download_from_hub, load_into, read_state_dict, save_weights, verify_sha256

REPO = Path(__file__).resolve().parents[2]


def same_outputs(model_a, model_b) -> bool:
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return torch.equal(model_a.eval()(images), model_b.eval()(images))


def loaded(path, architecture: str = "resnet18", **options):
    arch = get_architecture(architecture)
    return load_into(arch.build(), read_state_dict(path, **options), architecture=architecture)


# --- Local files ------------------------------------------------------------------------------------------------


def test_safetensors_weights_round_trip_with_their_checksum(resnet18, resnet18_weights):
    path, sha256 = resnet18_weights

    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert same_outputs(loaded(path, expected_sha256=sha256), resnet18)


@pytest.mark.parametrize(
    "wrap", [lambda sd: sd, lambda sd: {"model": sd, "epoch": 7, "optimizer": {}}], ids=["state-dict", "checkpoint"]
)
def test_pth_state_dicts_and_training_checkpoints_load(resnet18, tmp_path, wrap):
    path = tmp_path / "detector.pth"
    torch.save(wrap(resnet18.state_dict()), path)

    assert same_outputs(loaded(path), resnet18)


class Payload:
    """An object whose unpickling would run code: it creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(resnet18, tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "detector.pth"
    torch.save({"state_dict": resnet18.state_dict(), "extra": Payload(marker)}, path)

    with pytest.raises(NotAStateDictError, match=r"holds Python objects .* refused because loading it could run code"):
        read_state_dict(path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_with_how_to_save_its_weights(resnet18, tmp_path):
    path = tmp_path / "detector.pth"
    torch.save(resnet18, path)

    with pytest.raises(NotAStateDictError) as caught:
        read_state_dict(path)

    assert "holds Python objects (ml.architectures.ResNetDetector), not only tensors" in str(caught.value)
    assert "Save the weights with torch.save(model.state_dict(), path) or as .safetensors." in str(caught.value)


@pytest.mark.parametrize(
    ("content", "found"), [([1, 2, 3], "list"), ({"lr": 0.1}, "dict"), (torch.zeros(3), "Tensor"), ({}, "dict")]
)
def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path, content, found):
    path = tmp_path / "detector.pth"
    torch.save(content, path)

    with pytest.raises(NotAStateDictError, match=f"does not contain a state dict .* it contains {found}"):
        read_state_dict(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=f"No weights file at {tmp_path / 'nope.safetensors'}"):
        read_state_dict(tmp_path / "nope.safetensors")


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def half_of(path: Path) -> Path:
    return written(path, path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: written(d / "m.safetensors", os.urandom(4096)), "not a readable .safetensors file"),
        (lambda d: half_of(d / "model.safetensors"), "not a readable .safetensors file"),
        (
            lambda d: written(d / "m.pth", b"\x80\x04definitely not a pickle"),
            "damaged or not a PyTorch file \\(Unsupported operand",
        ),
        (lambda d: half_of(d / "model.pth"), "damaged or not a PyTorch file"),
        (lambda d: written(d / "m.onnx", b"graph"), "use .safetensors \\(preferred\\) or .pth"),
    ],
    ids=["random-safetensors", "truncated-safetensors", "garbage-pth", "truncated-pth", "wrong-suffix"],
)
# torch warns about the garbage .pth's pickle header before refusing it; the refusal is what this test checks.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_corrupt_files_are_refused_with_the_reason(resnet18, tmp_path, make, message):
    save_weights(resnet18, tmp_path / "model.safetensors")
    torch.save(resnet18.state_dict(), tmp_path / "model.pth")

    with pytest.raises(CorruptWeightsError, match=message):
        read_state_dict(make(tmp_path))


def test_weights_of_another_architecture_report_the_mismatched_keys_and_shapes(resnet18_weights):
    path, _ = resnet18_weights

    with pytest.raises(ArchitectureMismatchError) as caught:
        loaded(path, "resnet50")

    error = caught.value
    assert "backbone.layer1.0.conv1.weight (64, 64, 3, 3) vs (64, 64, 1, 1) expected" in error.mismatched
    assert "head.0.weight (512, 512) vs (512, 2048) expected" in error.mismatched
    assert "backbone.layer1.0.conv3.weight" in error.missing  # ResNet-50's bottleneck blocks have a third conv
    assert error.unexpected == []
    message = str(error)
    assert message.startswith("These weights do not fit the “resnet50” architecture.")
    assert "shapes that differ (" in message and "missing keys (" in message and "more" in message
    assert "Check that the architecture chosen for the model is the one the weights were trained with." in message


def test_extra_and_missing_keys_are_listed(resnet18, tmp_path):
    state = dict(resnet18.state_dict())
    del state["head.8.bias"]
    state["head.9.weight"] = torch.zeros(1)
    path = tmp_path / "edited.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    with pytest.raises(ArchitectureMismatchError) as caught:
        loaded(path)

    assert (caught.value.missing, caught.value.unexpected, caught.value.mismatched) == (
        ["head.8.bias"],
        ["head.9.weight"],
        [],
    )
    assert "missing keys (1): head.8.bias; unexpected keys (1): head.9.weight" in str(caught.value)


def test_a_checksum_mismatch_names_both_checksums(resnet18_weights):
    path, sha256 = resnet18_weights
    wrong = "0" * 64

    with pytest.raises(ChecksumMismatchError) as caught:
        read_state_dict(path, expected_sha256=wrong)

    assert (caught.value.expected, caught.value.actual) == (wrong, sha256)
    assert f"has SHA-256 {sha256}, but {wrong} was expected" in str(caught.value)
    assert verify_sha256(path, sha256.upper()) == sha256  # the case of a pasted checksum does not matter


def test_a_detector_loads_from_weights_only_when_the_checksum_matches(resnet18, resnet18_weights):
    path, sha256 = resnet18_weights

    detector = Detector.from_weights(path, architecture="resnet18", expected_sha256=sha256, backend="torch")
    with pytest.raises(ChecksumMismatchError):
        Detector.from_weights(path, architecture="resnet18", expected_sha256="f" * 64, backend="torch")

    assert same_outputs(detector.model, resnet18)
    assert detector.input_size == 224


# --- The Hugging Face Hub ---------------------------------------------------------------------------------------


def test_a_hub_file_is_downloaded_into_the_cache_and_sent_the_token_only_on_the_hub(hub, resnet18_weights, tmp_path):
    path, sha256 = resnet18_weights

    downloaded = download_from_hub(
        repo_id="acme/private",
        filename="model.safetensors",
        token="hf_secret",
        cache_dir=tmp_path / "cache",
        endpoint=hub.url,
    )

    assert downloaded.read_bytes() == path.read_bytes()
    assert downloaded == tmp_path / "cache/models--acme--private/snapshots" / hub.COMMIT / "model.safetensors"
    assert (tmp_path / "cache/models--acme--private/blobs" / sha256).is_file()  # stored under X-Linked-Etag
    hub_calls = [auth for _, p, auth in hub.requests if "/resolve/" in p]
    cdn_calls = [auth for _, p, auth in hub.requests if p.startswith("/cdn/")]
    assert hub_calls and set(hub_calls) == {"Bearer hf_secret"}
    assert cdn_calls == [None]  # one download, and the token never leaves the hub


def test_the_cache_is_used_when_the_hub_goes_away(hub, tmp_path):
    options = {"repo_id": "acme/detector", "filename": "model.safetensors", "cache_dir": tmp_path / "cache"}
    first = download_from_hub(endpoint=hub.url, **options)
    hub.close()

    again = download_from_hub(endpoint=hub.url, **options)
    pinned = download_from_hub(endpoint=hub.url, revision=HubStandIn.COMMIT, **options)
    cache_only = download_from_hub(endpoint=hub.url, local_files_only=True, **options)

    assert first == again == pinned == cache_only
    assert len(hub.paths("GET")) == 1


def test_offline_mode_reads_the_cache_and_sends_nothing(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants

    options = {"repo_id": "acme/detector", "filename": "model.safetensors", "cache_dir": tmp_path / "cache"}
    cached = download_from_hub(endpoint=hub.url, **options)
    requests_before = len(hub.requests)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    assert download_from_hub(endpoint=hub.url, **options) == cached
    with pytest.raises(HubUnavailableError, match="offline mode \\(HF_HUB_OFFLINE=1\\) forbids downloading it"):
        download_from_hub(endpoint=hub.url, **{**options, "repo_id": "acme/private"})
    assert len(hub.requests) == requests_before


def prepopulated_cache(cache: Path, repo_id: str, filename: str, data: bytes, commit: str) -> Path:
    """The layout huggingface_hub keeps: blobs by content hash, a snapshot per commit, refs/main naming the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = repo / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hf_hub_offline_serves_a_prepopulated_cache_in_a_fresh_process(hub, resnet18_weights, tmp_path):
    path, sha256 = resnet18_weights
    cache = tmp_path / "hf-cache"
    snapshot = prepopulated_cache(cache, "acme/detector", "model.safetensors", path.read_bytes(), "a" * 40)
    code = (
        "from ml.weights import download_from_hub, read_state_dict\n"
        "p = download_from_hub(repo_id='acme/detector', filename='model.safetensors')\n"
        f"read_state_dict(p, expected_sha256='{sha256}')\n"
        "print(p)\n"
        "try:\n"
        "    download_from_hub(repo_id='acme/detector', filename='other.safetensors')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    # The endpoint is a live hub that has the file: only offline mode keeps the process from asking it.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": hub.url}

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120
    )

    assert result.returncode == 0, result.stderr
    found, refused = result.stdout.strip().splitlines()
    assert found == str(snapshot)
    assert refused.startswith("HubUnavailableError acme/detector/other.safetensors is not in the local Hugging Face")
    assert hub.requests == []


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


class SleepRecorder:
    """Stands in for the time module of huggingface_hub's HTTP helpers: its retries wait without the test waiting."""

    def __init__(self):
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


def test_an_unreachable_hub_says_so_after_retrying(tmp_path, monkeypatch):
    import huggingface_hub.utils._http

    clock = SleepRecorder()
    monkeypatch.setattr(huggingface_hub.utils._http, "time", clock)
    endpoint = closed_port_url()

    with pytest.raises(HubUnavailableError) as caught:
        download_from_hub(repo_id="acme/detector", filename="model.safetensors", cache_dir=tmp_path, endpoint=endpoint)

    assert len(clock.waits) >= 3  # a passing network glitch does not fail a download
    message = str(caught.value)
    assert message.startswith(
        f"acme/detector/model.safetensors cannot be downloaded: the hub cannot be reached at {endpoint}"
    )
    assert "not in the local cache. Check the network connection and HUGGINGFACE_ENDPOINT" in message


def test_a_server_that_is_not_a_hub_says_so(tmp_path):
    not_a_hub = HubStandIn({})
    not_a_hub.answer = lambda request, body: not_a_hub.send(request, 200, {"Content-Length": "2"}, b"ok", body)
    try:
        with pytest.raises(HubUnavailableError, match="answered, but not like a Hugging Face Hub"):
            download_from_hub(
                repo_id="acme/detector", filename="model.safetensors", cache_dir=tmp_path, endpoint=not_a_hub.url
            )
    finally:
        not_a_hub.close()


@pytest.mark.parametrize(
    ("repo_id", "filename", "revision", "token", "message"),
    [
        ("acme/nothing", "model.safetensors", None, None, "The Hugging Face repository “acme/nothing” does not exist"),
        ("acme/private", "model.safetensors", None, None, "or it is private and no valid token was given"),
        ("acme/private", "model.safetensors", None, "hf_wrong", "(HUGGINGFACE_TOKEN)"),
        ("acme/detector", "missing.safetensors", None, None, "has no file “missing.safetensors”"),
        ("acme/detector", "model.safetensors", "v9", None, "has no revision “v9”"),
    ],
    ids=["no-repo", "private-no-token", "private-wrong-token", "no-file", "no-revision"],
)
def test_what_the_hub_does_not_have_is_named(hub, tmp_path, repo_id, filename, revision, token, message):
    with pytest.raises(HubNotFoundError) as caught:
        download_from_hub(
            repo_id=repo_id, filename=filename, revision=revision, token=token, cache_dir=tmp_path, endpoint=hub.url
        )

    assert message in str(caught.value)
