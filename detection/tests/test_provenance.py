"""Provenance findings from files built in each test: EXIF, XMP, PNG text, C2PA, video tags and hostile input.

No database and nothing downloaded: images come from Pillow, the video from PyAV, and the C2PA signing certificates
from `cryptography`, all made here.
"""

import datetime
import io
import json
import os
import struct
import time

import av
import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from detection import provenance
from detection.provenance import KINDS, Finding, provenance_read

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def image_bytes(fmt: str = "JPEG", **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def exif_with(software: str = "", make: str = "", model: str = "", taken: str = "", modified: str = "") -> Image.Exif:
    exif = Image.Exif()
    for tag, value in ((ExifTags.Base.Software, software), (ExifTags.Base.Make, make), (ExifTags.Base.Model, model)):
        if value:
            exif[tag] = value
    if modified:
        exif[ExifTags.Base.DateTime] = modified
    if taken:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    return exif


def png_with_text(**chunks: str) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return image_bytes("PNG", pnginfo=info)


def xmp_packet(body: str) -> bytes:
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">
   {body}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def kinds(findings: list[Finding]) -> list[str]:
    return [finding.kind for finding in findings]


def one(findings: list[Finding], kind: str) -> Finding:
    matching = [finding for finding in findings if finding.kind == kind]
    assert len(matching) == 1, [finding.as_dict() for finding in findings]
    return matching[0]


def assert_well_formed(findings: list[Finding]) -> None:
    """Every result: at least one finding, valid kinds, most severe first, JSON-safe."""
    assert findings
    assert all(finding.kind in KINDS for finding in findings)
    ranks = [("warning", "notice", "info").index(finding.severity) for finding in findings]
    assert ranks == sorted(ranks)
    json.dumps([finding.as_dict() for finding in findings])


# --- EXIF -----------------------------------------------------------------------------------------------------------


def test_exif_camera_editor_and_dates():
    exif = exif_with(
        make="Canon",
        model="Canon EOS R5",
        software="Adobe Photoshop 25.0 (Windows)",
        taken="2024:03:01 10:11:12",
        modified="2024:03:02 08:00:00",
    )
    findings = provenance_read(image_bytes(exif=exif), media_type="image/jpeg")

    assert_well_formed(findings)
    assert one(findings, "camera").message == "Taken with Canon EOS R5 (EXIF Make/Model)."
    edited = one(findings, "edited")
    assert (edited.severity, edited.source, edited.details["tool"]) == ("notice", "EXIF", "Adobe Photoshop")
    dates = one(findings, "dates")
    assert dates.details == {
        "taken": "2024-03-01 10:11:12",
        "modified": "2024-03-02 08:00:00",
        "modified_after_taken": True,
    }
    assert "last modified on 2024-03-02 08:00:00" in dates.message
    assert "no_metadata" not in kinds(findings)


def test_exif_software_naming_a_generator_is_an_ai_warning():
    findings = provenance_read(image_bytes(exif=exif_with(software="Midjourney v6")), media_type="image/jpeg")

    generated = one(findings, "ai_generated")
    assert generated.severity == "warning"
    assert "Midjourney" in generated.message
    assert findings[0] is generated


def test_plain_software_is_information():
    findings = provenance_read(image_bytes(exif=exif_with(software="HDR+ 1.0.540104767zd")), media_type="image/jpeg")

    software = one(findings, "software")
    assert software.severity == "info"
    assert software.details["value"] == "HDR+ 1.0.540104767zd"


def test_webp_carries_exif_too():
    findings = provenance_read(image_bytes("WEBP", exif=exif_with(software="GIMP 2.10.36")), media_type="image/webp")

    assert one(findings, "edited").details["tool"] == "GIMP"


def test_automatic1111_parameters_in_a_jpeg_user_comment():
    parameters = "a lighthouse at dusk\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 42, Size: 512x512"
    exif = exif_with()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + parameters.encode("utf-16-be")

    findings = provenance_read(image_bytes(exif=exif), media_type="image/jpeg")

    generated = one(findings, "ai_generated")
    assert generated.details["tool"] == "Automatic1111"
    assert generated.details["parameters"]["seed"] == "42"


# --- XMP ------------------------------------------------------------------------------------------------------------


def test_xmp_digital_source_type_and_creator_tool():
    packet = xmp_packet(
        f"""<xmp:CreatorTool>Adobe Photoshop 25.0</xmp:CreatorTool>
        <Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType>"""
    )
    findings = provenance_read(image_bytes(xmp=packet), media_type="image/jpeg")

    generated = one(findings, "ai_generated")
    assert (generated.severity, generated.source) == ("warning", "XMP")
    assert generated.details["digital_source_type"] == "trainedAlgorithmicMedia"
    assert one(findings, "edited").details["tool"] == "Adobe Photoshop"


def test_xmp_in_a_png_and_its_edit_history():
    packet = xmp_packet(
        """<xmp:CreatorTool>Pixel Studio</xmp:CreatorTool>
        <xmpMM:History><rdf:Seq>
          <rdf:li stEvt:action="created" stEvt:softwareAgent="Pixel Studio"/>
          <rdf:li stEvt:action="saved" stEvt:softwareAgent="Affinity Photo 2.4"/>
        </rdf:Seq></xmpMM:History>"""
    ).decode()
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet)
    findings = provenance_read(image_bytes("PNG", pnginfo=info), media_type="image/png")

    assert one(findings, "edited").details["tool"] == "Affinity Photo"
    assert one(findings, "software").details["tool"] == "Pixel Studio"


def test_the_same_tool_in_exif_and_xmp_is_one_finding():
    packet = xmp_packet("<xmp:CreatorTool>Adobe Photoshop 25.0 (Macintosh)</xmp:CreatorTool>")
    exif = exif_with(software="Adobe Photoshop 25.0 (Macintosh)")

    findings = provenance_read(image_bytes(exif=exif, xmp=packet), media_type="image/jpeg")

    assert one(findings, "edited").source == "EXIF"


# --- PNG text chunks ------------------------------------------------------------------------------------------------


def test_automatic1111_parameters_chunk():
    parameters = (
        "portrait of an astronaut, oil painting\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model: sd_xl_base_1.0, Version: v1.9.4"
    )
    findings = provenance_read(png_with_text(parameters=parameters), media_type="image/png")

    generated = one(findings, "ai_generated")
    assert generated.message == (
        "Claims to be generated by Stable Diffusion in Automatic1111/Forge (PNG text chunk “parameters”)."
    )
    assert generated.details["parameters"]["model"] == "sd_xl_base_1.0"
    assert generated.details["excerpt"].startswith("portrait of an astronaut")


def test_comfyui_prompt_chunk():
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 20, "model": ["4", 0]}},
    }
    findings = provenance_read(png_with_text(prompt=json.dumps(graph)), media_type="image/png")

    generated = one(findings, "ai_generated")
    assert "ComfyUI" in generated.message
    assert generated.details["models"] == ["flux1-dev.safetensors"]
    assert generated.details["prompt_excerpt"] == "a red fox in snow"


def test_novelai_comment_and_software_chunks_are_one_finding():
    comment = json.dumps({"prompt": "a castle", "steps": 28, "sampler": "k_euler", "seed": 99, "uc": "lowres"})
    findings = provenance_read(
        png_with_text(Software="NovelAI", Comment=comment, Description="a castle"), media_type="image/png"
    )

    generated = one(findings, "ai_generated")
    assert generated.details["tool"] == "NovelAI"
    assert generated.details["parameters"]["steps"] == 28


def test_long_parameters_are_capped_in_details():
    parameters = "x" * 100_000 + "\nSteps: 20, Sampler: Euler"
    findings = provenance_read(png_with_text(parameters=parameters), media_type="image/png")

    details = one(findings, "ai_generated").details
    assert len(details["excerpt"]) <= 300
    assert len(json.dumps(details)) < 2_000


# --- nothing found --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_a_plain_image_has_exactly_one_no_metadata_finding(fmt, media_type):
    findings = provenance_read(image_bytes(fmt), media_type=media_type)

    assert kinds(findings) == ["no_metadata"]
    assert findings[0].severity == "info"
    assert "proves nothing" in findings[0].message


def test_a_path_reads_like_bytes(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(exif=exif_with(make="NIKON CORPORATION", model="NIKON Z 6")))

    findings = provenance_read(path, media_type="image/jpeg")

    assert one(findings, "camera").details == {"make": "NIKON CORPORATION", "model": "NIKON Z 6"}


# --- C2PA -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_chain():
    """An ES256 root CA and an end-entity certificate with what C2PA asks of a signer: digitalSignature key usage,
    an extended key usage (emailProtection, one C2PA accepts), not a CA, and key identifiers that link the two."""
    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Provenance Test Lab"),
            ]
        )

    def key_usage(*, signing: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signing,
            key_cert_sign=not signing,
            crl_sign=not signing,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Provenance Test Root CA"))
        .issuer_name(name("Provenance Test Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(name("Provenance Test Signer"))
        .issuer_name(ca.subject)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        "chain": signer.public_bytes(pem) + ca.public_bytes(pem),
        "key": signer_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "root": ca.public_bytes(pem).decode(),
    }


def c2pa_signed_jpeg(chain: dict, actions: list[dict], remote_url: str = "") -> bytes:
    manifest = {
        "claim_generator_info": [{"name": "provenance-tests", "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain["chain"], chain["key"], None))
    signed = io.BytesIO()
    with signer, c2pa.Builder(manifest) as builder:
        if remote_url:  # the file then carries only a link to its manifest
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        builder.sign(signer, "image/jpeg", io.BytesIO(image_bytes()), signed)
    return signed.getvalue()


@pytest.fixture(scope="module")
def ai_signed_jpeg(signing_chain):
    return c2pa_signed_jpeg(signing_chain, [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}])


def test_c2pa_signed_by_an_untrusted_certificate_and_ai_generated(ai_signed_jpeg):
    findings = provenance_read(ai_signed_jpeg, media_type="image/jpeg")

    assert_well_formed(findings)
    credentials = one(findings, "content_credentials")
    # Intact but signed by a certificate on no trust list: a notice, told apart from tampering below.
    assert (credentials.severity, credentials.details["validation"]) == ("notice", "untrusted")
    assert "Provenance Test Signer" in credentials.message
    assert credentials.details["claim_generator"] == "provenance-tests 1.0"
    assert credentials.details["actions"] == ["c2pa.created"]
    generated = one(findings, "ai_generated")
    assert (generated.severity, generated.source) == ("warning", "C2PA")
    assert generated.details["digital_source_type"] == "trainedAlgorithmicMedia"


def test_c2pa_with_image_data_changed_after_signing_does_not_validate(ai_signed_jpeg):
    tampered = bytearray(ai_signed_jpeg)
    scan_start = tampered.rfind(b"\xff\xda") + 20  # inside the entropy-coded image data, past the scan header
    for offset in range(scan_start, scan_start + 4):
        tampered[offset] ^= 0x5A

    findings = provenance_read(bytes(tampered), media_type="image/jpeg")

    credentials = one(findings, "content_credentials")
    assert (credentials.severity, credentials.details["validation"]) == ("warning", "invalid")
    assert "do not validate" in credentials.message
    assert "assertion.dataHash.mismatch" in credentials.details["failures"]
    assert findings[0].severity == "warning"


def test_c2pa_signer_on_the_trust_list_is_information(signing_chain, ai_signed_jpeg, monkeypatch):
    settings = {**provenance._C2PA_SETTINGS, "trust": {"trust_anchors": signing_chain["root"]}}
    monkeypatch.setattr(provenance, "_C2PA_SETTINGS", settings)

    credentials = one(provenance_read(ai_signed_jpeg, media_type="image/jpeg"), "content_credentials")

    assert (credentials.severity, credentials.details["validation"]) == ("info", "trusted")
    assert credentials.message.startswith("Signed with Content Credentials by Provenance Test Signer")


def test_c2pa_edit_actions_name_the_editor(signing_chain):
    signed = c2pa_signed_jpeg(
        signing_chain,
        [
            {"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE},
            {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "Adobe Photoshop", "version": "25.0"}},
        ],
    )
    findings = provenance_read(signed, media_type="image/jpeg")

    edited = one(findings, "edited")
    assert edited.details["tool"] == "Adobe Photoshop"
    assert "colour adjustments" in edited.message
    assert "ai_generated" not in kinds(findings)


def test_c2pa_remote_manifest_is_reported_and_never_fetched(signing_chain):
    # Port 9 (discard) on loopback: were the manifest fetched, reading would fail or stall instead.
    actions = [{"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE}]
    signed = c2pa_signed_jpeg(signing_chain, actions, remote_url="http://127.0.0.1:9/manifest.c2pa")

    findings = provenance_read(signed, media_type="image/jpeg")

    credentials = one(findings, "content_credentials")
    assert (credentials.severity, credentials.details["validation"]) == ("notice", "not_checked")
    assert credentials.details["remote_url"] == "http://127.0.0.1:9/manifest.c2pa"


# --- hostile input --------------------------------------------------------------------------------------------------


def assert_quick_and_safe(source, media_type: str) -> list[Finding]:
    started = time.monotonic()
    findings = provenance_read(source, media_type=media_type)
    assert time.monotonic() - started < 3
    assert_well_formed(findings)
    assert set(kinds(findings)) <= {"metadata_error", "no_metadata"}, [finding.as_dict() for finding in findings]
    return findings


def test_a_five_megabyte_text_chunk_is_skipped():
    parameters = "Steps: 20, Sampler: Euler\n" + "A" * 5_000_000
    findings = assert_quick_and_safe(png_with_text(parameters=parameters), "image/png")

    error = one(findings, "metadata_error")
    assert (error.source, error.details["size_bytes"]) == ("PNG text", len(parameters))
    assert "not read" in error.message


def test_xmp_with_a_billion_laughs_entity_is_refused():
    laughs = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    packet = f"""<?xml version="1.0"?><!DOCTYPE x:xmpmeta [<!ENTITY lol0 "lol">{laughs}]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="&lol9;"/></rdf:RDF></x:xmpmeta>"""

    findings = assert_quick_and_safe(image_bytes(xmp=packet.encode()), "image/jpeg")

    error = one(findings, "metadata_error")
    assert error.source == "XMP"
    assert "DTD" in error.message


def test_garbage_c2pa_manifest_is_a_metadata_error():
    jumbf = b"JP\x00\x01" + struct.pack(">I", 1) + struct.pack(">I", 200) + b"jumb" + struct.pack(">I", 50) + b"jumd"
    payload = jumbf + b"c2pa" + os.urandom(150)
    app11 = b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    plain = image_bytes()

    findings = assert_quick_and_safe(plain[:2] + app11 + plain[2:], "image/jpeg")

    assert one(findings, "metadata_error").source == "C2PA"


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/webp", "video/mp4"])
def test_random_bytes_and_empty_input(media_type):
    for source in (os.urandom(20_000), b""):
        findings = assert_quick_and_safe(source, media_type)
        assert "no_metadata" in kinds(findings)
        assert "metadata_error" in kinds(findings)


def test_input_that_is_neither_bytes_nor_a_path():
    findings = assert_quick_and_safe(12345, "image/jpeg")

    assert "expected bytes or a path" in one(findings, "metadata_error").message


def test_a_reader_that_stalls_is_cut_off_at_the_time_limit(monkeypatch):
    def stalls(image):
        time.sleep(3)
        return []

    monkeypatch.setattr(provenance, "_exif_findings", stalls)
    exif = exif_with(software="Midjourney")
    started = time.monotonic()

    findings = provenance_read(image_bytes(exif=exif), media_type="image/jpeg", time_limit=0.3)

    assert time.monotonic() - started < 1.5
    error = one(findings, "metadata_error")
    assert (error.source, error.details["time_limit_seconds"]) == ("EXIF", 0.3)
    assert "stopped after 0.3 s" in error.message


# --- video ----------------------------------------------------------------------------------------------------------


def write_video(path, *, container_format: str | None = None, options: dict | None = None, tags: dict) -> None:
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        container.metadata.update(tags)
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame(32, 32, "yuv420p")))
        container.mux(stream.encode())


def test_mp4_container_tags(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, tags={"comment": "Rendered for the spring campaign", "creation_time": "2024-05-06T07:08:09Z"})

    findings = provenance_read(path, media_type="video/mp4")

    assert_well_formed(findings)
    sources = {finding.source for finding in findings}
    assert sources == {"container"}
    software = [finding for finding in findings if finding.kind == "software"]
    # FFmpeg's muxer replaces any "encoder" tag with its own name and version ("Lavf…").
    assert [finding.details.get("tool") for finding in software].count("FFmpeg") == 1
    assert any(finding.details["value"] == "Rendered for the spring campaign" for finding in software)
    assert one(findings, "dates").message == "Created on 2024-05-06 07:08:09 (container tag “creation_time”)."


def test_mov_camera_tags_and_a_generator_comment(tmp_path):
    path = tmp_path / "clip.mov"
    tags = {
        "com.apple.quicktime.make": "Apple",
        "com.apple.quicktime.model": "iPhone 15 Pro",
        "comment": "Generated with Sora",
    }
    write_video(path, container_format="mov", options={"movflags": "use_metadata_tags"}, tags=tags)

    findings = provenance_read(path.read_bytes(), media_type="video/quicktime")

    assert one(findings, "camera").message == "Recorded with Apple iPhone 15 Pro (container make/model tags)."
    assert one(findings, "ai_generated").details["tool"] == "Sora"


# --- Finding --------------------------------------------------------------------------------------------------------


def test_finding_details_are_made_json_safe_and_small():
    finding = Finding("software", "info", "m" * 2_000, "EXIF", {"raw": b"\x00abc", "long": "y" * 5_000, "n": None})

    assert finding.details == {"raw": "abc", "long": "y" * 299 + "…"}
    assert len(finding.message) == 500
    assert json.loads(json.dumps(finding.as_dict()))["kind"] == "software"
    with pytest.raises(ValueError, match="unknown finding kind"):
        Finding("rumour", "info", "", "EXIF", {})
