"""Provenance findings: what an image's or a video's own metadata claims about where it came from.

`provenance_read(source, media_type=...)` reads C2PA Content Credentials, EXIF, XMP, PNG text chunks and video
container tags, and returns a list of `Finding`s, most important first. It is pure Python (Pillow, c2pa-python,
PyAV and the standard library) so that it can run anywhere: in a worker, in a view, or in a test.

Severity vocabulary:

- "warning": the file itself says it is AI-generated, or its Content Credentials do not validate (altered after
  signing, bad signature, revoked or expired certificate).
- "notice": worth a look, not alarming on its own: edited with a known editor, Content Credentials that are intact
  but signed by a certificate on no trust list, or one source that could not be read.
- "info": plain facts: camera, software, dates, trusted Content Credentials, or that nothing was found.

Findings inform; they never override the detector's verdict. Metadata is stripped by most sites and can be
written by anyone, so a finding is a claim the file makes about itself, and a missing finding proves nothing.

Content Credentials (C2PA) are reported as one "content_credentials" finding whose details["validation"] is:

- "trusted" (info): the signature and the content hashes validate and the signer chains to a configured trust
  anchor. No trust list is configured here (there is no network to fetch one), so this appears only once
  `_C2PA_SETTINGS` is given trust anchors.
- "untrusted" (notice): the signature and the content hashes validate, but the certificate is on no trust list, so
  the signer's name is only what the certificate says about itself. Self-made and test certificates land here.
- "invalid" (warning): a validation failure other than trust: the content changed after signing, the signature does
  not match, or the certificate is expired, revoked or malformed.
- "not_checked" (notice): the file only links to a manifest stored online, which is never fetched.

Damaged or truncated C2PA data is a "metadata_error" notice, not a content_credentials finding.

Hostile input is expected: the whole read runs in a daemon thread under a wall-clock limit, packets and text chunks
above `_MAX_PACKET_BYTES` are skipped (with a finding saying so), XML with a DTD or entity declaration is refused
before it reaches the parser, C2PA remote manifests and OCSP are never fetched, every stored string is capped, and
an error in one source becomes a "metadata_error" finding while the other sources are still read.
"""

from __future__ import annotations

import io
import json
import math
import pathlib
import re
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, BinaryIO

import av
import c2pa
from PIL import ExifTags, Image, PngImagePlugin

KINDS = (
    "content_credentials",
    "ai_generated",
    "edited",
    "camera",
    "software",
    "dates",
    "no_metadata",
    "metadata_error",
)
SEVERITIES = ("warning", "notice", "info")

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
VIDEO_MEDIA_TYPES = ("video/mp4", "video/quicktime", "video/webm")

# Stored strings stay short enough to show in a page and to keep a finding small in a JSON column.
_MAX_STRING = 300
_MAX_MESSAGE = 500
_MAX_ITEMS = 20
_MAX_DEPTH = 4
# XMP packets, EXIF blocks and PNG text chunks above this are skipped unread: real ones are a few kilobytes.
_MAX_PACKET_BYTES = 1_000_000
# Pillow refuses image formats we do not accept, which keeps its rarer (and less hardened) decoders out of reach.
# (Multi-picture JPEGs still open: Pillow's JPEG opener hands them to its MPO plugin.)
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
# Remote manifests would make the server fetch a URL chosen by the uploader; OCSP would make it wait on the network.
_C2PA_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


@dataclass(frozen=True)
class Finding:
    """One fact the file's metadata states about itself.

    kind is one of KINDS, severity one of SEVERITIES. source names where it was read: "C2PA", "EXIF", "XMP",
    "PNG text", "container", or "file" for the file as a whole (unreadable, or the time limit ran out). details is
    made JSON-safe and small on creation (strings capped, lists and dicts truncated), whatever it is given.
    """

    kind: str
    severity: str
    message: str
    source: str
    details: dict

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown finding severity {self.severity!r}")
        # Frozen, so the clean-up goes through object.__setattr__: callers can rely on the invariants afterwards.
        object.__setattr__(self, "message", _cap(str(self.message), _MAX_MESSAGE))
        object.__setattr__(self, "source", _cap(str(self.source), 40))
        object.__setattr__(self, "details", _json_safe(dict(self.details or {})))

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "source": self.source,
            "details": json.loads(json.dumps(self.details)),
        }


def provenance_read(source: bytes | pathlib.Path, *, media_type: str, time_limit: float = 5.0) -> list[Finding]:
    """Never raises for any input; returns findings (at least one: "no_metadata" when nothing was found).

    source is the file's bytes or a path to it (either works for images and videos); media_type is one of
    IMAGE_MEDIA_TYPES or VIDEO_MEDIA_TYPES. After time_limit seconds the findings read so far are returned with a
    "metadata_error" finding saying where reading stopped; the abandoned reader finishes in its daemon thread.
    """
    try:
        return _read_with_time_limit(source, media_type, time_limit)
    except Exception as error:  # the contract is "never raises": the last resort still says what went wrong
        return _finalize([_error_finding("file", error)])


# --- orchestration --------------------------------------------------------------------------------------------------


class _Collector:
    """What the reading thread has found so far, and which source it is reading (for the time-limit message)."""

    def __init__(self):
        self.findings: list[Finding] = []
        self.reading = "file"

    def attempt(self, source: str, read, *args):
        """read(*args), or None after recording a "metadata_error" finding for source."""
        self.reading = source
        try:
            return read(*args)
        except Exception as error:
            self.findings.append(_error_finding(source, error))
            return None

    def collect(self, source: str, read, *args) -> None:
        self.findings.extend(self.attempt(source, read, *args) or [])


@dataclass(frozen=True)
class _Asset:
    media_type: str
    data: bytes | None = None
    path: pathlib.Path | None = None

    @property
    def is_video(self) -> bool:
        return self.media_type.startswith("video/")

    def stream(self) -> BinaryIO:
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.data)


def _read_with_time_limit(source, media_type, time_limit) -> list[Finding]:
    limit = _sane_time_limit(time_limit)
    collector = _Collector()
    worker = threading.Thread(
        target=_read_everything, args=(source, media_type, collector), name="provenance-read", daemon=True
    )
    worker.start()
    worker.join(limit)
    findings = list(collector.findings)  # a snapshot: an abandoned worker may still append
    if worker.is_alive():
        findings.append(
            Finding(
                "metadata_error",
                "notice",
                f"Reading metadata stopped after {limit:g} s while reading the {collector.reading} metadata; "
                "only what was found before then is shown.",
                collector.reading,
                {"time_limit_seconds": limit, "stopped_in": collector.reading},
            )
        )
    return _finalize(findings)


def _sane_time_limit(time_limit) -> float:
    try:
        limit = float(time_limit)
    except (TypeError, ValueError):
        return 5.0
    if math.isnan(limit) or limit <= 0:
        return 5.0
    return min(limit, 600.0)


def _read_everything(source, media_type, collector: _Collector) -> None:
    try:
        asset = collector.attempt("file", _asset_from, source, media_type)
        if asset is None:
            return
        collector.collect("C2PA", _c2pa_findings, asset)
        if asset.is_video:
            collector.collect("container", _container_findings, asset)
        else:
            _read_image_metadata(asset, collector)
    except Exception as error:  # an exception escaping a thread would only be printed, and the finding lost
        collector.findings.append(_error_finding(collector.reading, error))


def _asset_from(source, media_type) -> _Asset:
    kind = str(media_type or "").split(";", 1)[0].strip().lower()
    if kind == "image/jpg":
        kind = "image/jpeg"
    if isinstance(source, bytes | bytearray | memoryview):
        return _Asset(kind, data=bytes(source))
    if isinstance(source, str | pathlib.PurePath):
        path = pathlib.Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path.name!r}")
        return _Asset(kind, path=path)
    raise TypeError(f"expected bytes or a path, got {type(source).__name__}")


def _read_image_metadata(asset: _Asset, collector: _Collector) -> None:
    with asset.stream() as stream:
        image = collector.attempt("file", _open_image, stream)
        if image is None:
            return
        with image:
            collector.collect("EXIF", _exif_findings, image)
            collector.collect("XMP", _xmp_findings, image)
            if image.format == "PNG":
                collector.collect("PNG text", _png_text_findings, image)


def _open_image(stream: BinaryIO) -> Image.Image:
    """Pillow parses the header and metadata here; pixels are never decoded."""
    try:
        return Image.open(stream, formats=_PILLOW_FORMATS)
    except Image.UnidentifiedImageError:
        raise ValueError("it is not a JPEG, PNG or WebP image") from None


def _finalize(findings: list[Finding]) -> list[Finding]:
    """De-duplicate (first wins, so C2PA beats EXIF beats XMP), order by severity then kind, add "no_metadata"."""
    unique: list[Finding] = []
    seen: set[tuple] = set()
    for finding in findings:
        key = _fact_key(finding)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    if not any(finding.kind not in ("metadata_error", "no_metadata") for finding in unique):
        unique = [finding for finding in unique if finding.kind != "no_metadata"] + [_no_metadata_finding()]
    return sorted(unique, key=lambda finding: (SEVERITIES.index(finding.severity), KINDS.index(finding.kind)))


def _fact_key(finding: Finding) -> tuple:
    """Two findings state the same fact when they name the same tool or source type, or say the same thing."""
    for name in ("tool", "digital_source_type", "date"):
        if finding.details.get(name):
            return (finding.kind, name, str(finding.details[name]).lower())
    return (finding.kind, finding.message)


def _no_metadata_finding() -> Finding:
    return Finding(
        "no_metadata",
        "info",
        "No provenance metadata was found. Many sites strip metadata on upload, so its absence proves nothing "
        "either way.",
        "file",
        {},
    )


def _error_finding(source: str, error: BaseException) -> Finding:
    what = "the file" if source == "file" else f"the {source} metadata"
    return Finding(
        "metadata_error",
        "notice",
        f"Could not read {what} ({_reason(error)}); the other sources were still checked.",
        source,
        {"error": type(error).__name__, "reason": _reason(error)},
    )


def _too_large_finding(source: str, what: str, size: int, limit: int = _MAX_PACKET_BYTES) -> Finding:
    return Finding(
        "metadata_error",
        "notice",
        f"{what} is {_megabytes(size)}, above the {_megabytes(limit)} limit, so it was not read.",
        source,
        {"size_bytes": size, "limit_bytes": limit},
    )


# --- tools named in metadata ----------------------------------------------------------------------------------------

# First match wins and generators come first: "Adobe Firefly" must not be taken for an Adobe editor.
_GENERATORS = [
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Midjourney", r"midjourney"),
        ("DALL·E", r"\bdall[\s·\-_.]?e\b"),
        ("ComfyUI", r"\bcomfy\s?ui\b"),
        ("Automatic1111", r"automatic\s?1111|\ba1111\b|stable-diffusion-webui"),
        ("InvokeAI", r"\binvoke\s?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("SD.Next", r"\bsd\.next\b"),
        ("Stable Diffusion", r"stable[\s_-]?diffusion|\bsdxl\b|\bdreamstudio\b"),
        ("Adobe Firefly", r"\bfirefly\b"),
        ("Google Imagen", r"\bimagen\b"),
        ("Google Gemini", r"\bgemini\b"),
        ("NovelAI", r"\bnovel\s?ai\b"),
        ("Flux", r"\bflux(\.1)?\b"),
        ("Leonardo.Ai", r"\bleonardo\b"),
        ("Ideogram", r"\bideogram\b"),
        ("Civitai", r"\bcivitai\b"),
        ("ChatGPT", r"\bchatgpt\b|\bgpt-4o\b|\bopenai\b"),
        ("Sora", r"\bsora\b"),
        ("Runway", r"\brunway\s?(ml|gen-?\d)\b|\brunwayml\b"),
        ("Kling", r"\bkling\b"),
        ("Pika", r"\bpika\b"),
        ("Bing Image Creator", r"\bbing image creator\b"),
        ("Craiyon", r"\bcraiyon\b"),
        ("Playground AI", r"\bplayground\s?ai\b"),
        ("Meta AI", r"\bmeta ai\b|\bimagine with meta\b"),
    )
]
_EDITORS = [
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Adobe Photoshop", r"photoshop"),
        ("Adobe Lightroom", r"lightroom"),
        ("GIMP", r"\bgimp\b"),
        ("Snapseed", r"snapseed"),
        ("Affinity Photo", r"\baffinity\b"),
        ("Pixelmator", r"pixelmator"),
        ("Canva", r"\bcanva\b"),
        ("FaceApp", r"faceapp"),
        ("Facetune", r"facetune"),
        ("Photopea", r"photopea"),
        ("Paint.NET", r"paint\.net"),
        ("PicsArt", r"picsart"),
        ("Luminar", r"\bluminar\b"),
        ("Capture One", r"\bcapture one\b"),
        ("darktable", r"\bdarktable\b"),
        ("RawTherapee", r"rawtherapee"),
        ("Krita", r"\bkrita\b"),
        ("Meitu", r"\bmeitu\b"),
        ("PhotoDirector", r"photodirector"),
        ("Remini", r"\bremini\b"),
        ("Topaz", r"\btopaz\b"),
        ("VSCO", r"\bvsco\b"),
        ("Adobe Premiere", r"\bpremiere\b"),
        ("Adobe After Effects", r"\bafter effects\b"),
        ("DaVinci Resolve", r"\bdavinci resolve\b"),
        ("Final Cut Pro", r"\bfinal cut\b"),
        ("CapCut", r"\bcapcut\b"),
        ("iMovie", r"\bimovie\b"),
    )
]
# FFmpeg's libraries sign their output as "Lavf61.7.100" (muxer) or "Lavc61.19.100 libx264" (encoder).
_FFMPEG = re.compile(r"^lav[fc]\d", re.IGNORECASE)


def _classify_tool(text: str) -> tuple[str, str] | None:
    """("ai_generated", name) or ("edited", name) when text names a known generator or editor."""
    for name, pattern in _GENERATORS:
        if pattern.search(text):
            return "ai_generated", name
    for name, pattern in _EDITORS:
        if pattern.search(text):
            return "edited", name
    return None


def _tool_finding(value, *, source: str, where: str) -> Finding | None:
    """A generator is a warning, an editor a notice, any other software a plain fact."""
    text = _clean(value)
    if not text:
        return None
    details = {"value": text, "field": where}
    match _classify_tool(text):
        case ("ai_generated", name):
            message = f"Claims to be generated by {name} ({where})."
            return Finding("ai_generated", "warning", message, source, {"tool": name, **details})
        case ("edited", name):
            return Finding("edited", "notice", f"Edited with {name} ({where}).", source, {"tool": name, **details})
    name = "FFmpeg" if _FFMPEG.match(text) else text
    label = name if name == "FFmpeg" else f"“{name}”"
    return Finding("software", "info", f"Processed with {label} ({where}).", source, {"tool": name, **details})


# Values of IPTC's digital source type vocabulary that mean the content was made by a model or an algorithm.
_AI_SOURCE_TYPES = {
    "trainedalgorithmicmedia": ("trainedAlgorithmicMedia", "was generated by a trained AI model"),
    "compositewithtrainedalgorithmicmedia": (
        "compositeWithTrainedAlgorithmicMedia",
        "combines its content with material generated by a trained AI model",
    ),
    "algorithmicmedia": ("algorithmicMedia", "was generated by an algorithm"),
}


def _ai_source_type(value) -> tuple[str, str] | None:
    """(code, phrase) when value is an AI digital source type, as a bare code or as the full IPTC URI."""
    code = _clean(value).rstrip("/").rsplit("/", 1)[-1].lower()
    return _AI_SOURCE_TYPES.get(code)


def _digital_source_finding(value, *, source: str, where: str, subject: str = "it", agent: str = "") -> Finding | None:
    found = _ai_source_type(value)
    if found is None:
        return None
    code, phrase = found
    by = f" with {agent}" if agent else ""
    return Finding(
        "ai_generated",
        "warning",
        f"States that {subject} {phrase}{by} ({where}, digital source type {code}).",
        source,
        {"digital_source_type": code, "field": where, "software_agent": agent},
    )


# --- C2PA Content Credentials ---------------------------------------------------------------------------------------

# Actions that change what the picture shows; opening, converting or resizing do not.
_C2PA_EDIT_ACTIONS = {
    "c2pa.edited": "edited",
    "c2pa.filtered": "filtered",
    "c2pa.color_adjustments": "colour adjustments",
    "c2pa.cropped": "cropped",
    "c2pa.drawing": "drawing",
    "c2pa.placed": "placed elements",
    "c2pa.removed": "removed elements",
}
# What a failure code means to a person; codes not listed here show c2pa's own explanation.
_C2PA_FAILURE_REASONS = {
    "assertion.dataHash.mismatch": "the content changed after it was signed",
    "assertion.bmffHash.mismatch": "the content changed after it was signed",
    "assertion.boxesHash.mismatch": "the content changed after it was signed",
    "assertion.collectionHash.mismatch": "the content changed after it was signed",
    "assertion.hashedURI.mismatch": "a signed statement was changed after signing",
    "claimSignature.mismatch": "the signature does not match the signed claim",
    "signingCredential.expired": "the signing certificate had expired",
    "signingCredential.revoked": "the signing certificate was revoked",
    "signingCredential.invalid": "the signing certificate is not valid for signing",
}
_C2PA_UNTRUSTED = "signingCredential.untrusted"
# Errors about the manifest itself, as opposed to a file c2pa could not parse at all.
_C2PA_MANIFEST_ERRORS = (
    c2pa.C2paError.Verify,
    c2pa.C2paError.Manifest,
    c2pa.C2paError.Decoding,
    c2pa.C2paError.Json,
    c2pa.C2paError.Assertion,
    c2pa.C2paError.Signature,
)


def _c2pa_findings(asset: _Asset) -> list[Finding]:
    with asset.stream() as stream, c2pa.Context.from_dict(_C2PA_SETTINGS) as context:
        try:
            reader = c2pa.Reader.try_create(asset.media_type or None, stream, None, context)
        except c2pa.C2paError as error:
            return _c2pa_error_findings(error)
        if reader is None:
            return []
        with reader:
            store = json.loads(reader.json())
    return _manifest_store_findings(store)


def _c2pa_error_findings(error: c2pa.C2paError) -> list[Finding]:
    reason = _reason(error)
    if isinstance(error, c2pa.C2paError.NotSupported) or str(error).startswith("NotSupported"):
        return []  # a type c2pa does not read (WebM) or bytes that are no media at all: nothing to report here
    # c2pa 0.38.1 raises the plain C2paError with a "Remote:" prefix, not its RemoteManifest subclass.
    if isinstance(error, c2pa.C2paError.RemoteManifest) or str(error).startswith("Remote"):
        url = _cap(re.sub(r"^.*?\burl\s*", "", str(error)), _MAX_STRING)
        return [
            Finding(
                "content_credentials",
                "notice",
                "Refers to Content Credentials stored online, which were not fetched, so they were not checked.",
                "C2PA",
                {"validation": "not_checked", "remote_url": url},
            )
        ]
    if isinstance(error, _C2PA_MANIFEST_ERRORS):
        message = f"Content Credentials (C2PA) data is present but could not be read ({reason}); it may be damaged."
    else:
        message = f"The Content Credentials (C2PA) reader could not parse the file ({reason})."
    return [Finding("metadata_error", "notice", message, "C2PA", {"error": type(error).__name__, "reason": reason})]


def _manifest_store_findings(store: dict) -> list[Finding]:
    manifests = store.get("manifests") if isinstance(store, dict) else None
    active_label = store.get("active_manifest") if isinstance(store, dict) else None
    active = manifests.get(active_label) if isinstance(manifests, dict) and isinstance(active_label, str) else None
    if not isinstance(active, dict):
        raise ValueError("the manifest store has no active manifest")
    actions = _c2pa_actions(active)
    findings = [_c2pa_signature_finding(store, active, actions)]
    findings += _c2pa_ai_findings(manifests, active_label)
    findings += _c2pa_edit_findings(actions)
    return findings


def _c2pa_actions(manifest: dict) -> list[dict]:
    actions = []
    for assertion in _as_list(manifest.get("assertions")):
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            data = assertion.get("data")
            listed = _as_list(data.get("actions")) if isinstance(data, dict) else []
            actions += [action for action in listed if isinstance(action, dict)]
    return actions[:100]


def _software_agent(action: dict) -> str:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = " ".join(_clean(agent.get(part)) for part in ("name", "version") if agent.get(part))
    return _clean(agent)


def _claim_generator(manifest: dict) -> str:
    for info in _as_list(manifest.get("claim_generator_info")):
        if isinstance(info, dict) and info.get("name"):
            return " ".join(_clean(info.get(part)) for part in ("name", "version") if info.get(part))
    return _clean(manifest.get("claim_generator"))


def _c2pa_failures(store: dict) -> list[dict]:
    results = store.get("validation_results")
    active_results = results.get("activeManifest") if isinstance(results, dict) else None
    if isinstance(active_results, dict):
        failures = _as_list(active_results.get("failure"))
    else:  # older stores only have the flat list, where every entry is a failure
        failures = _as_list(store.get("validation_status"))
    return [failure for failure in failures if isinstance(failure, dict) and failure.get("code")]


def _c2pa_validation(store: dict) -> tuple[str, list[dict]]:
    """("trusted" | "untrusted" | "invalid", the failures that are not about trust)."""
    failures = [failure for failure in _c2pa_failures(store) if failure["code"] != _C2PA_UNTRUSTED]
    state = str(store.get("validation_state") or "").lower()
    if state == "invalid" or failures:
        return "invalid", failures
    if state == "trusted":
        return "trusted", []
    return "untrusted", []


def _c2pa_signature_finding(store: dict, active: dict, actions: list[dict]) -> Finding:
    signature = active.get("signature_info") if isinstance(active.get("signature_info"), dict) else {}
    common_name, organisation = _clean(signature.get("common_name")), _clean(signature.get("issuer"))
    signer = common_name or organisation or "an unnamed signer"
    if common_name and organisation and organisation != common_name:
        signer = f"{common_name} ({organisation})"
    generator = _claim_generator(active)
    made_with = f", made with {generator}" if generator else ""
    validation, failures = _c2pa_validation(store)
    details = {
        "validation": validation,
        "validation_state": _clean(store.get("validation_state")),
        "signer": common_name,
        "signer_organisation": organisation,
        "claim_generator": generator,
        "signed_at": _clean(signature.get("time")),
        "actions": [_clean(action.get("action")) for action in actions],
        "failures": [_clean(failure["code"]) for failure in failures],
    }
    if validation == "invalid":
        reasons = "; ".join(dict.fromkeys(_c2pa_failure_reason(failure) for failure in failures)) or "invalid"
        message = f"Content Credentials signed by {signer} do not validate: {reasons}."
        return Finding("content_credentials", "warning", message, "C2PA", details)
    if validation == "trusted":
        message = f"Signed with Content Credentials by {signer}{made_with}; the signer is on the trust list."
        return Finding("content_credentials", "info", message, "C2PA", details)
    message = (
        f"Signed with Content Credentials by {signer}{made_with}; the signature and content are intact, but the "
        "certificate is on no trust list, so the signer's name is unverified."
    )
    return Finding("content_credentials", "notice", message, "C2PA", details)


def _c2pa_failure_reason(failure: dict) -> str:
    code = _clean(failure.get("code"))
    reason = _C2PA_FAILURE_REASONS.get(code) or _clean(failure.get("explanation")) or "failed"
    return f"{reason} ({code})"


def _c2pa_ai_findings(manifests: dict, active_label: str) -> list[Finding]:
    """AI source types anywhere in the store: in actions, in IPTC assertions, in ingredients' own manifests."""
    findings = []
    labels = [active_label] + [label for label in manifests if label != active_label]
    for label in labels[:_MAX_ITEMS]:
        subject = "it" if label == active_label else "an ingredient"
        for holder, value in _values_under_key(manifests[label], "digitalsourcetype"):
            action = _clean(holder.get("action"))
            finding = _digital_source_finding(
                value,
                source="C2PA",
                where=f"C2PA action {action}" if action else "C2PA assertion",
                subject=subject,
                agent=_software_agent(holder),
            )
            if finding is not None:
                findings.append(finding)
    return findings


def _values_under_key(tree, key: str, budget: int = 10_000) -> list[tuple[dict, Any]]:
    """(holding dict, value) for every key whose name, lower-cased, without prefix or underscores, equals key."""
    found, pending = [], [tree]
    while pending and budget > 0:
        node = pending.pop()
        budget -= 1
        if isinstance(node, dict):
            for name, value in node.items():
                if str(name).rsplit(":", 1)[-1].replace("_", "").lower() == key and isinstance(value, str):
                    found.append((node, value))
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)
    return found[:_MAX_ITEMS]


def _c2pa_edit_findings(actions: list[dict]) -> list[Finding]:
    findings = []
    edits = [action for action in actions if action.get("action") in _C2PA_EDIT_ACTIONS]
    agents = list(dict.fromkeys(agent for agent in map(_software_agent, actions) if agent))
    for agent in agents:
        if (_classify_tool(agent) or ("", ""))[0] == "ai_generated":
            findings.append(_tool_finding(agent, source="C2PA", where="C2PA action software agent"))
    if edits:
        names = ", ".join(dict.fromkeys(_C2PA_EDIT_ACTIONS[action["action"]] for action in edits))
        edit_agents = list(dict.fromkeys(agent for agent in map(_software_agent, edits) if agent))
        tool = (_classify_tool(edit_agents[0]) or ("", edit_agents[0]))[1] if edit_agents else ""
        with_tool = f" with {tool}" if tool else ""
        findings.append(
            Finding(
                "edited",
                "notice",
                f"Content Credentials record edits{with_tool}: {names} (C2PA actions).",
                "C2PA",
                {"tool": tool, "actions": [action["action"] for action in edits], "software_agents": edit_agents},
            )
        )
    return findings


# --- EXIF -----------------------------------------------------------------------------------------------------------


def _exif_findings(image: Image.Image) -> list[Finding]:
    # Read from the raw block rather than image.getexif(): for PNG that would decode the whole image to look for a
    # trailing eXIf chunk.
    raw = image.info.get("exif")
    if not raw:
        return []
    if len(raw) > _MAX_PACKET_BYTES:
        return [_too_large_finding("EXIF", "The EXIF block", len(raw))]
    exif = Image.Exif()
    exif.load(raw)
    details_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    findings = [
        _camera_finding(exif.get(ExifTags.Base.Make), exif.get(ExifTags.Base.Model), "EXIF", "EXIF Make/Model"),
        _tool_finding(exif.get(ExifTags.Base.Software), source="EXIF", where="EXIF Software"),
        _exif_dates_finding(details_ifd.get(ExifTags.Base.DateTimeOriginal), exif.get(ExifTags.Base.DateTime)),
        _generation_parameters_finding(
            _exif_user_comment(details_ifd.get(ExifTags.Base.UserComment)), "EXIF", "EXIF UserComment"
        ),
    ]
    return [finding for finding in findings if finding is not None]


def _camera_finding(make, model, source: str, where: str, verb: str = "Taken") -> Finding | None:
    make, model = _clean(make), _clean(model)
    if not (make or model):
        return None
    # Many makers repeat their name in the model ("Canon" + "Canon EOS R5").
    camera = model if make and model.lower().startswith(make.lower()) else " ".join(filter(None, (make, model)))
    return Finding("camera", "info", f"{verb} with {camera} ({where}).", source, {"make": make, "model": model})


def _exif_dates_finding(taken, modified) -> Finding | None:
    taken, modified = _exif_date(taken), _exif_date(modified)
    if not (taken or modified):
        return None
    details = {"taken": taken, "modified": modified}
    if taken and modified and modified != taken:
        details["modified_after_taken"] = True
        message = f"Taken on {taken} and last modified on {modified} (EXIF DateTimeOriginal/DateTime)."
    elif taken:
        message = f"Taken on {taken} (EXIF DateTimeOriginal)."
    else:
        message = f"Last modified on {modified} (EXIF DateTime)."
    return Finding("dates", "info", message, "EXIF", details)


def _exif_date(value) -> str:
    """EXIF writes "2024:01:02 10:11:12"; people read "2024-01-02 10:11:12"."""
    text = _clean(value)
    return re.sub(r"^(\d{4}):(\d{2}):(\d{2})", r"\1-\2-\3", text)


def _exif_user_comment(value) -> str:
    """UserComment starts with an 8-byte character-code prefix; Automatic1111 writes its parameters here in JPEGs."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes) or len(value) > _MAX_PACKET_BYTES:
        return ""
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        # The byte order follows the EXIF block's, which is not passed along; ASCII text shows which it is.
        order = "utf-16-le" if body[1:2] == b"\x00" else "utf-16-be"
        return body.decode(order, "replace")
    return body.decode("utf-8", "replace")


# --- XMP ------------------------------------------------------------------------------------------------------------

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XMP = "{http://ns.adobe.com/xap/1.0/}"
_XMP_MM = "{http://ns.adobe.com/xap/1.0/mm/}"
_ST_EVT = "{http://ns.adobe.com/xap/1.0/sType/ResourceEvent#}"
_IPTC_EXT = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
_XMP_EDIT_ACTIONS = {"edited", "saved", "derived", "converted", "filtered", "cropped"}
_DTD_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _xmp_findings(image: Image.Image) -> list[Finding]:
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet:
        return []
    if len(packet) > _MAX_PACKET_BYTES:
        return [_too_large_finding("XMP", "The XMP packet", len(packet))]
    root = _parse_xmp(packet)
    findings = [
        _tool_finding(tool, source="XMP", where="XMP CreatorTool") for tool in _xmp_values(root, _XMP + "CreatorTool")
    ]
    findings += [
        _digital_source_finding(value, source="XMP", where="XMP Iptc4xmpExt:DigitalSourceType")
        for value in _xmp_values(root, _IPTC_EXT + "DigitalSourceType")
    ]
    findings += _xmp_history_findings(root)
    return [finding for finding in findings if finding is not None]


def _parse_xmp(packet: bytes | str) -> ElementTree.Element:
    """Parse with ElementTree, refusing any DTD first: without one, no entity can be declared, let alone expanded."""
    text = packet if isinstance(packet, str) else _decode_xml(packet)
    if _DTD_DECLARATION.search(text):
        raise ValueError("the XMP packet declares a DTD or entities, which are refused")
    # Parsing the str (not bytes) means expat reads exactly the text checked above, whatever encoding it declares.
    # S314: defusedxml is not installed; the DTD refusal above is the part of it that matters for XMP.
    return ElementTree.fromstring(text.strip("\x00 \t\r\n"))  # noqa: S314


def _decode_xml(packet: bytes) -> str:
    for encoding in ("utf-8", "utf-16"):
        try:
            return packet.decode(encoding)
        except UnicodeDecodeError:
            continue
    return packet.decode("latin-1")


def _xmp_values(root: ElementTree.Element, name: str) -> list[str]:
    """A property's values, whether RDF wrote it as an attribute, an element, a resource or a list."""
    values = []
    for element in root.iter():
        if name in element.attrib:
            values.append(element.attrib[name])
        if element.tag == name:
            items = [item.text for item in element.iter(_RDF + "li") if item.text and item.text.strip()]
            values += [element.get(_RDF + "resource")] if element.get(_RDF + "resource") else items
            if not items and element.text and element.text.strip():
                values.append(element.text)
    return list(dict.fromkeys(filter(None, map(_clean, values))))[:_MAX_ITEMS]


def _rdf_field(node: ElementTree.Element, name: str) -> str:
    for element in node.iter():
        if name in element.attrib:
            return _clean(element.attrib[name])
        if element.tag == name and element.text:
            return _clean(element.text)
    return ""


def _xmp_history_findings(root: ElementTree.Element) -> list[Finding]:
    findings, actions_without_tool = [], []
    events = [event for history in root.iter(_XMP_MM + "History") for event in history.iter(_RDF + "li")]
    for event in events[:200]:
        action, agent = _rdf_field(event, _ST_EVT + "action"), _rdf_field(event, _ST_EVT + "softwareAgent")
        is_edit = action.lower() in _XMP_EDIT_ACTIONS
        if agent and (_classify_tool(agent) or is_edit):
            finding = _tool_finding(agent, source="XMP", where=f"XMP edit history, {action or 'step'}")
            if finding.kind == "software":  # an unknown program that edited the file
                message = f"Edited with “{agent}” (XMP edit history, {action})."
                finding = Finding("edited", "notice", message, "XMP", {"tool": agent, "action": action})
            findings.append(finding)
        elif is_edit:
            actions_without_tool.append(action)
    if actions_without_tool and not findings:
        steps = ", ".join(dict.fromkeys(actions_without_tool))
        findings.append(
            Finding("edited", "notice", f"The XMP edit history records: {steps}.", "XMP", {"actions": steps})
        )
    return findings


# --- PNG text chunks ------------------------------------------------------------------------------------------------

_A1111_FIELDS = re.compile(r"\b(Steps|Sampler|CFG scale|Seed|Size|Model|Model hash|Version):\s*([^,\n]{1,120})")


def _png_text_findings(image: Image.Image) -> list[Finding]:
    # image.info holds the text chunks before the pixel data, which is where generators write them; image.text
    # would decode the whole image to reach trailing chunks. Pillow's own caps (MAX_TEXT_CHUNK for compressed
    # chunks, MAX_TEXT_MEMORY in total) apply while opening and are read, never changed, here.
    limit = min(_MAX_PACKET_BYTES, PngImagePlugin.MAX_TEXT_CHUNK)
    chunks = {key: value for key, value in image.info.items() if isinstance(value, str)}
    findings: list[Finding | None] = []
    readable = {}
    for key, value in chunks.items():
        if len(value) > limit:
            what = f"The PNG text chunk “{_cap(key, 80)}”"
            findings.append(_too_large_finding("PNG text", what, len(value), limit))
        elif key != "XML:com.adobe.xmp":
            readable[key] = value
    findings += _png_generator_findings(readable)
    return [finding for finding in findings if finding is not None]


def _png_generator_findings(chunks: dict[str, str]) -> list[Finding | None]:
    findings: list[Finding | None] = []
    lowered = {key.lower(): value for key, value in chunks.items()}
    if "parameters" in lowered:
        findings.append(
            _generation_parameters_finding(lowered["parameters"], "PNG text", "PNG text chunk “parameters”")
        )
    for key in ("prompt", "workflow"):
        if key in lowered:
            findings.append(_comfyui_finding(key, lowered[key]))
    for key in ("dream", "sd-metadata", "invokeai_metadata", "invokeai_graph"):
        if key in lowered:
            findings.append(_generator_chunk_finding("InvokeAI", key, lowered[key]))
    # Comment first: with NovelAI's settings it says more than the Software chunk naming the same tool.
    if "comment" in lowered:
        findings.append(_png_comment_finding(lowered))
    if "software" in lowered:
        findings.append(_tool_finding(lowered["software"], source="PNG text", where="PNG text chunk “Software”"))
    return findings


def _generation_parameters_finding(text: str, source: str, where: str) -> Finding | None:
    """Automatic1111, Forge and SD.Next write the prompt, then a "Steps: 20, Sampler: …, Seed: …" line."""
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        return None
    # The settings line comes last, after a prompt of any length; only the ends are searched, to bound the work.
    settings_part = text[-20_000:]
    fields = {name.lower().replace(" ", "_"): _clean(value) for name, value in _A1111_FIELDS.findall(settings_part)}
    named = _classify_tool(text[:2000])
    if "fooocus" in text[:2000].lower() or "fooocus" in settings_part.lower():
        tool, generator = "Fooocus", "Fooocus"
    elif "steps" in fields or "sampler" in fields:
        tool, generator = "Automatic1111", "Stable Diffusion in Automatic1111/Forge"
    elif named and named[0] == "ai_generated":
        tool = generator = named[1]
    else:
        return None  # text that neither looks like generation settings nor names a generator claims nothing
    return Finding(
        "ai_generated",
        "warning",
        f"Claims to be generated by {generator} ({where}).",
        source,
        {"tool": tool, "field": where, "parameters": fields, "excerpt": _cap(text, _MAX_STRING)},
    )


def _comfyui_finding(key: str, text: str) -> Finding | None:
    """ComfyUI writes its node graph as JSON: "prompt" in the API form, "workflow" in the editor's form."""
    graph = _json_or_none(text)
    if not isinstance(graph, dict):
        return _generator_chunk_finding(None, key, text)
    nodes = [node for node in list(graph.values())[:500] if isinstance(node, dict)]
    nodes += [node for node in _as_list(graph.get("nodes"))[:500] if isinstance(node, dict)]
    if not any("class_type" in node or "type" in node for node in nodes):
        return _generator_chunk_finding(None, key, text)
    inputs = [node.get("inputs") for node in nodes if isinstance(node.get("inputs"), dict)]
    models = [_clean(values.get(name)) for values in inputs for name in ("ckpt_name", "unet_name") if values.get(name)]
    prompts = [
        _clean(node["inputs"].get("text"))
        for node in nodes
        if "CLIPTextEncode" in str(node.get("class_type")) and isinstance(node.get("inputs"), dict)
    ]
    return Finding(
        "ai_generated",
        "warning",
        f"Claims to be generated by ComfyUI (PNG text chunk “{key}”).",
        "PNG text",
        {"tool": "ComfyUI", "field": key, "models": models[:5], "prompt_excerpt": " | ".join(filter(None, prompts))},
    )


def _generator_chunk_finding(generator: str | None, key: str, text: str) -> Finding:
    """A chunk only image generators write; the generator is named when the chunk's name or content says which."""
    named = generator or (_classify_tool(text[:2000]) or ("", ""))[1]
    what = f"generated by {named}" if named else "generated by an image generator"
    return Finding(
        "ai_generated",
        "warning",
        f"Claims to be {what} (PNG text chunk “{_cap(key, 80)}”).",
        "PNG text",
        {"tool": named or key, "field": key, "excerpt": _cap(text, _MAX_STRING)},
    )


def _png_comment_finding(chunks: dict[str, str]) -> Finding | None:
    """NovelAI writes Software "NovelAI", the prompt in Description and its settings as JSON in Comment."""
    comment = chunks["comment"]
    settings = _json_or_none(comment)
    generator_keys = ("steps", "sampler", "seed", "uc", "scale", "cfg_scale")
    if not (isinstance(settings, dict) and any(key in settings for key in generator_keys)):
        named = _classify_tool(comment[:2000])
        return _tool_finding(comment, source="PNG text", where="PNG text chunk “Comment”") if named else None
    software = _classify_tool(chunks.get("software", ""))
    tool = software[1] if software and software[0] == "ai_generated" else "an image generator"
    parameters = {
        key: settings[key] for key in ("steps", "sampler", "seed", "scale", "width", "height") if key in settings
    }
    return Finding(
        "ai_generated",
        "warning",
        f"Claims to be generated by {tool} (PNG text chunk “Comment” with generator settings).",
        "PNG text",
        {
            "tool": tool,
            "field": "Comment",
            "parameters": parameters,
            "prompt_excerpt": _cap(chunks.get("description", ""), _MAX_STRING),
        },
    )


# --- video containers -----------------------------------------------------------------------------------------------

# Handler names every muxer writes ("VideoHandler", "Core Media Audio"): they say nothing about provenance.
_GENERIC_HANDLER = re.compile(r"handler$|^core media\b|^(video|sound|audio|data|text|subtitle|metadata)$", re.I)
# QuickTime and MP4 write zero (1904 or 1970) when no creation time was set.
_UNSET_DATE = re.compile(r"^(1904|1970)-01-01")


def _container_findings(asset: _Asset) -> list[Finding]:
    target = str(asset.path) if asset.path is not None else io.BytesIO(asset.data)
    with av.open(target, metadata_errors="replace") as container:
        scopes = [("container", dict(container.metadata))]
        scopes += [(f"{stream.type} stream", dict(stream.metadata)) for stream in list(container.streams)[:_MAX_ITEMS]]
    findings = []
    for scope, tags in scopes:
        findings += _container_tag_findings(scope, {str(key).lower(): value for key, value in tags.items()})
    return [finding for finding in findings if finding is not None]


def _container_tag_findings(scope: str, tags: dict[str, str]) -> list[Finding | None]:
    def where(key: str) -> str:
        return f"{scope} tag “{key}”"

    findings: list[Finding | None] = [
        _camera_finding(
            tags.get("com.apple.quicktime.make") or tags.get("make"),
            tags.get("com.apple.quicktime.model") or tags.get("model"),
            "container",
            f"{scope} make/model tags",
            verb="Recorded",
        )
    ]
    for key in ("encoder", "com.apple.quicktime.software", "software", "com.android.version"):
        if key in tags:
            findings.append(_tool_finding(tags[key], source="container", where=where(key)))
    handler = _clean(tags.get("handler_name"))
    if handler and not _GENERIC_HANDLER.search(handler):
        findings.append(_tool_finding(handler, source="container", where=where("handler_name")))
    for key in ("comment", "description"):
        if key in tags:
            findings.append(_container_comment_finding(tags[key], where(key)))
    for key in ("creation_time", "com.apple.quicktime.creationdate", "date"):
        created = _clean(tags.get(key))
        if created and not _UNSET_DATE.match(created):
            readable = created.replace("T", " ").removesuffix(".000000Z").removesuffix("Z")
            findings.append(
                Finding("dates", "info", f"Created on {readable} ({where(key)}).", "container", {"date": created})
            )
    return findings


def _container_comment_finding(comment, where: str) -> Finding | None:
    text = _clean(comment)
    if not text:
        return None
    if _classify_tool(text):
        return _tool_finding(text, source="container", where=where)
    # No kind fits a free-text comment better than "software": it is a note the writing program left.
    return Finding("software", "info", f"Carries the comment “{text}” ({where}).", "container", {"value": text})


# --- small helpers --------------------------------------------------------------------------------------------------


def _cap(text: str, limit: int = _MAX_STRING) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(value) -> str:
    """Metadata text as a short, printable str: decoded, NUL padding and control characters dropped, capped."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value[: _MAX_STRING * 4].decode("utf-8", "replace")
    text = str(value)[: _MAX_STRING * 4]
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text).strip()
    return _cap(text, _MAX_STRING)


def _json_safe(value, depth: int = 0):
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str | bytes):
        return _clean(value) if isinstance(value, bytes) else _cap(value, _MAX_STRING)
    if depth >= _MAX_DEPTH:
        return _cap(str(value), _MAX_STRING)
    if isinstance(value, dict):
        items = [(key, item) for key, item in value.items() if item is not None][:_MAX_ITEMS]
        return {_cap(str(key), 80): _json_safe(item, depth + 1) for key, item in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item, depth + 1) for item in list(value)[:_MAX_ITEMS] if item is not None]
    return _cap(str(value), _MAX_STRING)


def _as_list(value) -> list:
    return value if isinstance(value, list) else []


def _json_or_none(text: str):
    if len(text) > _MAX_PACKET_BYTES:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _reason(error: BaseException) -> str:
    """The error's text without object addresses ("<_io.BytesIO object at 0x…>"), which mean nothing to a reader."""
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the data", str(error)) or type(error).__name__
    return _cap(text, 200)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
