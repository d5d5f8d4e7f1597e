"""Files that carry provenance, made at test time (nothing binary is committed).

Content Credentials are signed with a throw-away certificate chain created here: a CA and an ES256 leaf with
the extensions c2pa-rs asks of a signer (key usage digitalSignature, critical; extended key usage
emailProtection; not a CA; subject and authority key identifiers). No trust list knows the CA, which is what
"signer not on the trust list" means (a test may load the CA as its trust list: "trusted").
"""
from __future__ import annotations

import datetime
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SIGNER_NAME, CA_NAME = "Provenance Test Signer", "Provenance Test Root CA"
A1111_PARAMETERS = ("a portrait of an astronaut, studio light\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
                    "Seed: 1234, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes  # leaf, then CA
    key_pem: bytes

    @property
    def ca_pem(self) -> str:
        """The CA alone: a test loads it as its trust list to see a signer read "trusted"."""
        marker = b"-----BEGIN CERTIFICATE-----"
        return (marker + self.chain_pem.split(marker)[2]).decode("ascii")


def make_credentials(valid_for: datetime.timedelta = datetime.timedelta(days=30)) -> Credentials:
    """A CA and a leaf valid from a day ago for ``valid_for`` (a few seconds: a certificate that expires
    right after signing, since c2pa will not sign with an expired one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Deepfake Demo Tests")])

    def usage(**bits):
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                               "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        return x509.KeyUsage(**{**flags, **bits})

    def certificate(subject, issuer, public_key, signing_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + valid_for))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name(CA_NAME), name(CA_NAME), ca_key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True), (usage(key_cert_sign=True, crl_sign=True), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)])
    leaf = certificate(name(SIGNER_NAME), ca.subject, leaf_key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True), (usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        (x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)])
    pem = serialization.Encoding.PEM
    return Credentials(leaf.public_bytes(pem) + ca.public_bytes(pem),
                       leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def generated_manifest(tool: str = "Test Diffusion 3", term: str = "trainedAlgorithmicMedia") -> dict:
    return {"claim_generator_info": [{"name": "provenance-tests", "version": "1.0"}], "title": "made for a test",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": IPTC + term, "softwareAgent": {"name": tool}}]}}]}


def converted_manifest(tool: str = "Test Exporter") -> dict:
    """A manifest that opens its parent (the ingredient labelled "parent") and converts it, as an export of an AI
    picture does (c2pa asks that the first action open or create)."""
    return {"claim_generator_info": [{"name": tool, "version": "2.0"}], "title": "exported",
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.opened", "softwareAgent": {"name": tool}, "parameters": {"ingredientIds": ["parent"]}},
                {"action": "c2pa.converted", "softwareAgent": tool}]}}]}


def sign(data: bytes, mime: str, credentials: Credentials, manifest: dict | None = None,
         ingredients: list[tuple[dict, bytes]] = ()) -> bytes:
    """``data`` signed with ``manifest``; ``ingredients``: (definition, signed file of the same type) pairs,
    whose own manifests c2pa copies into the new store."""
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None))
    out = io.BytesIO()
    with c2pa.Builder(manifest or generated_manifest()) as builder:
        for definition, ingredient in ingredients:
            builder.add_ingredient(definition, mime, io.BytesIO(ingredient))
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def iptc_app13(**datasets: str) -> bytes:
    """A JPEG APP13 segment holding IPTC IIM record 2 datasets (credit=110, caption=120)."""
    numbers = {"credit": 110, "caption": 120}
    iim = b"".join(b"\x1c\x02" + bytes([numbers[key]]) + struct.pack(">H", len(value.encode())) + value.encode()
                   for key, value in datasets.items())
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim + b"\x00" * (len(iim) & 1)
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def xmp_credit_packet(credit: str) -> bytes:
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            f'photoshop:Credit="{credit}"/></rdf:RDF></x:xmpmeta>').encode("utf-8")


def encoded(picture: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -- changing the pixels of a signed file, keeping everything else ----------------------------------------
def _jpeg_scan_start(data: bytes) -> int:
    """Offset of the start-of-scan marker (the entropy-coded pixels follow it)."""
    position = 2
    while data[position + 1] != 0xDA:
        position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    return position


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append((kind, data[position : position + 12 + length]))
        position += 12 + length
    return chunks


def with_pixels_of(signed: bytes, other: bytes) -> bytes:
    """``signed`` with its pixel data replaced by that of ``other`` (same size and encoder settings): the
    manifest is untouched, so only the content hash can tell."""
    if signed.startswith(b"\xff\xd8"):
        return signed[: _jpeg_scan_start(signed)] + other[_jpeg_scan_start(other) :]
    pixels = b"".join(raw for kind, raw in _png_chunks(other) if kind == b"IDAT")
    out, replaced = [signed[:8]], False
    for kind, raw in _png_chunks(signed):
        if kind == b"IDAT":
            if not replaced:
                out.append(pixels)
                replaced = True
            continue
        out.append(raw)
    return b"".join(out)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def with_png_chunk(png: bytes, chunk: bytes) -> bytes:
    """``png`` with ``chunk`` inserted right after its header chunk."""
    header_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    return png[:header_end] + chunk + png[header_end:]


# -- unsigned metadata -------------------------------------------------------------------------------------
def xmp_packet(term: str) -> bytes:
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            f'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'Iptc4xmpExt:DigitalSourceType="{IPTC}{term}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")


def jpeg_with_xmp(picture: np.ndarray, term: str, **exif_fields) -> bytes:
    exif = Image.Exif()
    for tag, value in ((0x010F, exif_fields.get("make")), (0x0110, exif_fields.get("model")), (0x0131, exif_fields.get("software"))):
        if value:
            exif[tag] = value
    return encoded(picture, "JPEG", quality=90, xmp=xmp_packet(term), exif=exif)


def png_with_text(picture: np.ndarray, **texts: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    return encoded(picture, "PNG", pnginfo=info)


def stripped(data: bytes) -> bytes:
    """The same pixels re-encoded with no metadata at all, as most upload platforms do."""
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format
        pixels = np.asarray(image.convert("RGB"))
    return encoded(pixels, fmt, **({"quality": 90} if fmt == "JPEG" else {}))


@dataclass(frozen=True)
class Asset:
    name: str
    path: Path
    kind: str | None  # the record's expected provenance kind (None: nothing found)
    declares: str | None
    validation: str | None = None
    statement: str = ""  # a regular expression the lead sentence must match


def build_assets(folder: Path, picture: np.ndarray) -> list[Asset]:
    """Each provenance case and a stripped copy of each; ``picture`` is what every file shows."""
    import time

    folder.mkdir(parents=True, exist_ok=True)
    credentials = make_credentials()
    short_lived = make_credentials(valid_for=datetime.timedelta(seconds=2))
    assets: list[Asset] = []

    def add(name, data, kind, declares, validation=None, statement=""):
        path = folder / name
        path.write_bytes(data)
        assets.append(Asset(name, path, kind, declares, validation, statement))
        if kind is not None:
            copy = folder / f"stripped_{name}"
            copy.write_bytes(stripped(data))
            assets.append(Asset(copy.name, copy, None, None, None, "absence says nothing"))

    edited_picture = picture.copy()
    band = slice(picture.shape[0] * 3 // 4, None)  # the bottom quarter (faces stay findable), changed after signing
    edited_picture[band] = 255 - edited_picture[band]
    for fmt, mime, suffix, options in (("JPEG", "image/jpeg", "jpg", {"quality": 90}), ("PNG", "image/png", "png", {})):
        signed = sign(encoded(picture, fmt, **options), mime, credentials)
        add(f"signed_generated.{suffix}", signed, "c2pa", "generated", "valid",
            f"generated by AI with Test Diffusion 3 \\(Content Credentials signed by {SIGNER_NAME}, signature valid, signer not on the trust list\\)")
        add(f"edited_after_signing.{suffix}", with_pixels_of(signed, encoded(edited_picture, fmt, **options)), "c2pa", "generated",
            "mismatch", "content changed after signing")
    # A converting parent over an AI-created ingredient: the declaration comes from the ingredient's manifest.
    jpeg = encoded(picture, "JPEG", quality=90)
    child = sign(jpeg, "image/jpeg", credentials, generated_manifest("Test Diffusion 3"))
    add("converted_from_ai.jpg", sign(jpeg, "image/jpeg", credentials, converted_manifest(),
                                      [({"title": "made by AI", "relationship": "parentOf", "label": "parent"}, child)]),
        "c2pa", "generated", "valid", "generated by AI with Test Diffusion 3 \\(Content Credentials signed by")
    expiring = sign(jpeg, "image/jpeg", short_lived)
    time.sleep(max(0.0, (_expiry(short_lived) - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 1.5))
    add("expired_certificate.jpg", expiring, "c2pa", "generated", "expired", "signature valid, signer's certificate expired")
    add("sd_parameters.png", png_with_text(picture, parameters=A1111_PARAMETERS), "png-text", "generated", None,
        "generated by AI with Stable Diffusion web UI .*model v1-5-pruned-emaonly \\(PNG text chunks, unsigned")
    add("xmp_generated.jpg", jpeg_with_xmp(picture, "trainedAlgorithmicMedia"), "xmp", "generated", None, "generated by AI \\(XMP metadata")
    add("xmp_camera.jpg", jpeg_with_xmp(picture, "digitalCapture", make="Canon", model="Canon EOS R5"), "xmp", "captured", None,
        "camera capture: Canon EOS R5 \\(XMP metadata")
    add("credit_xmp.jpg", encoded(picture, "JPEG", quality=90, xmp=xmp_credit_packet("Made with Google AI")), "xmp", "generated", None,
        "generated by AI, in its credit line \u201cMade with Google AI\u201d \\(XMP metadata, unsigned")
    plain = encoded(picture, "JPEG", quality=90)
    add("credit_iptc.jpg", plain[:2] + iptc_app13(credit="Edited with Google AI") + plain[2:], "iptc", "enhanced", None,
        "edited with AI, in its credit line \u201cEdited with Google AI\u201d \\(IPTC metadata, unsigned")
    return assets


def _expiry(credentials: Credentials) -> datetime.datetime:
    """The end of the leaf certificate's validity."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(credentials.chain_pem).not_valid_after_utc
