"""Loading weights safely: from .safetensors (preferred) or .pth files, and from the Hugging Face Hub.

Nothing here unpickles arbitrary objects: .pth files go through torch.load(weights_only=True), which only
rebuilds tensors and plain containers. Every failure raises a WeightsError subclass whose message says what to do.
"""

import hashlib
import logging
import pickle
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file as save_safetensors
from torch import nn

from ml.architectures import get_architecture
from ml.errors import (
    ArchitectureMismatchError,
    ChecksumMismatchError,
    CorruptWeightsError,
    HubNotFoundError,
    HubUnavailableError,
    NotAStateDictError,
    WeightsNotFoundError,
)

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# Training checkpoints are dicts that hold the model's state dict under one of these keys.
_NESTED_KEYS = ("model", "state_dict", "model_state_dict")


def sha256_of(path: Path | str, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path | str, expected: str | None) -> str:
    """The file's SHA-256; raises ChecksumMismatchError when `expected` is given and differs."""
    actual = sha256_of(path)
    if expected and actual != expected.lower():
        raise ChecksumMismatchError(path, expected.lower(), actual)
    return actual


def read_state_dict(path: Path | str, *, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors stored in a weights file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"No weights file at {path}.")
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise CorruptWeightsError(
            f"{path.name} is not a weights file this product reads; use .safetensors (preferred) or .pth."
        )
    verify_sha256(path, expected_sha256)
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CorruptWeightsError(f"{path.name} is not a readable .safetensors file ({exc}).") from None
    return _read_pickled_state_dict(path)


def _read_pickled_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the first object it refused; any other unpickling failure means the bytes are not a pickle.
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused:
            raise NotAStateDictError(
                f"{path.name} holds Python objects ({refused[1]}), not only tensors, and is refused because loading "
                "it could run code. Save the weights with torch.save(model.state_dict(), path) or as .safetensors."
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
        raise CorruptWeightsError(
            f"{path.name} is damaged or not a PyTorch file ({detail[1] if detail else _first_line(exc)})."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CorruptWeightsError(f"{path.name} is damaged or not a PyTorch file ({_first_line(exc)}).") from None
    if isinstance(loaded, dict):
        for key in _NESTED_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise NotAStateDictError(
            f"{path.name} does not contain a state dict (a mapping of parameter names to tensors); "
            f"it contains {type(loaded).__name__}."
        )
    return loaded


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], *, architecture: str) -> nn.Module:
    """Load state_dict into model after checking that every key and shape matches; lists what does not."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)} expected"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise ArchitectureMismatchError(architecture, missing, unexpected, mismatched)
    model.load_state_dict(state_dict, strict=True)
    return model


def load_model(path: Path | str, *, architecture: str, expected_sha256: str | None = None) -> nn.Module:
    """The architecture built and loaded with the weights file (checked against expected_sha256 when given), in
    eval mode."""
    arch = get_architecture(architecture)
    return load_into(
        arch.build(), read_state_dict(path, expected_sha256=expected_sha256), architecture=arch.name
    ).eval()


def save_weights(model: nn.Module, path: Path | str, *, metadata: dict[str, str] | None = None) -> str:
    """Write the model's weights as .safetensors; returns the file's SHA-256."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_safetensors(state, str(path), metadata=metadata)
    return sha256_of(path)


def download_from_hub(
    *,
    repo_id: str,
    filename: str,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: Path | str | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
) -> Path:
    """Fetch a file from the Hugging Face Hub into its cache (or find it there) and return its local path.

    Honours the hub's cache and offline mode (HF_HUB_OFFLINE=1 or local_files_only=True: the cache only).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            token=token or None,
            cache_dir=cache_dir,
            endpoint=endpoint or None,
            local_files_only=local_files_only,
        )
    except GatedRepoError:
        raise HubNotFoundError(
            f"{repo_id} is gated or private and the token given cannot read it; set HUGGINGFACE_TOKEN to a token "
            "that has access."
        ) from None
    except RepositoryNotFoundError:
        raise HubNotFoundError(
            f"The Hugging Face repository “{repo_id}” does not exist, or it is private and no valid token was given "
            "(HUGGINGFACE_TOKEN)."
        ) from None
    except RevisionNotFoundError:
        raise HubNotFoundError(f"The repository “{repo_id}” has no revision “{revision}”.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise HubUnavailableError(
            _unavailable_message(where, exc, endpoint=endpoint, cache_only=local_files_only)
        ) from None
    except EntryNotFoundError:
        raise HubNotFoundError(f"The repository “{repo_id}” has no file “{filename}”.") from None
    except HfHubHTTPError as exc:
        raise HubUnavailableError(f"The hub refused or failed the download of {where}: {_first_line(exc)}") from None
    except OSError as exc:
        raise HubUnavailableError(f"The hub cannot be reached for {where}: {_first_line(exc)}") from None
    return Path(path)


def _unavailable_message(where: str, exc: BaseException, *, endpoint: str | None, cache_only: bool) -> str:
    """Why a file that is not in the cache could not be fetched either: offline mode, no hub there, or no network."""
    from huggingface_hub import constants
    from huggingface_hub.errors import FileMetadataError, OfflineModeIsEnabled

    cause = exc.__cause__ or exc
    if cache_only or constants.is_offline_mode() or isinstance(cause, OfflineModeIsEnabled):
        return (
            f"{where} is not in the local Hugging Face cache, and offline mode (HF_HUB_OFFLINE=1) forbids downloading "
            "it. Download it once with the network on, or upload the weights file instead."
        )
    hub = endpoint or constants.ENDPOINT
    if isinstance(cause, FileMetadataError):
        return (
            f"{where} cannot be downloaded: {hub} answered, but not like a Hugging Face Hub ({_first_line(cause)}). "
            "Check HUGGINGFACE_ENDPOINT, or upload the weights file instead."
        )
    return (
        f"{where} cannot be downloaded: the hub cannot be reached at {hub} ({_first_line(cause)}) and the file is not "
        "in the local cache. Check the network connection and HUGGINGFACE_ENDPOINT, or upload the weights file instead."
    )
