"""Provenance beside the pixels: what a file says about where it came from, read offline.

Two kinds of statement are read, never blended into any detector's P(fake):

- Content Credentials (C2PA manifests), read with ``c2pa-python`` by :mod:`detectors.credentials`: the chain of
  manifests (the active one and its ingredients'), what it declares, the signer, and whether the signature and
  the content hashes hold, checked against the C2PA trust lists shipped in ``assets/trust``.
- Unsigned metadata: IPTC / XMP ``DigitalSourceType``, EXIF Make / Model / Software, and the PNG text chunks
  (or EXIF UserComment) that Stable Diffusion front-ends write (see :mod:`detectors.metadata`).

:func:`read` never raises for a file's content: what it cannot read becomes a line in ``notes``. Nothing is
fetched: remote manifests and OCSP are switched off.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import credentials
from .credentials import declaration_of, short_term
from .media import DEFAULT_LIMITS
from .metadata import FileMetadata, read_metadata

log = logging.getLogger(__name__)

# Outcomes of a manifest's validation (``validation``), in the words of the statement. The first four hold the
# signature; "mismatch", "invalid", "malformed", "revoked", "failed" and "unreadable" are warnings.
VALIDATION_TEXT = {
    "trusted": "signature valid, signer on the C2PA trust list",
    "valid": "signature valid, signer not on the trust list",
    "expired": "signature valid, signer's certificate expired",
    "off-profile": "signature valid, but the certificate is not valid for C2PA signing",
    "mismatch": "content changed after signing",
    "invalid": "signature not valid",
    "malformed": "manifest malformed",
    "revoked": "signer's certificate revoked",
    "failed": "validation failed",
    "unreadable": "manifest could not be read",
}
# Formats c2pa reads, by the first bytes (uploads keep their names, which may lie).
_BMFF_BRANDS = {b"qt  ": "video/quicktime", b"avif": "image/avif", b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif"}


@dataclass
class Provenance:
    """What one file declares about its origin; ``to_dict`` is the report's and the scan record's ``provenance``."""

    found: bool = False
    kind: str | None = None  # the source that leads: "c2pa", "xmp", "png-text", "exif"
    declares: str | None = None  # generated, composite, enhanced, captured, other; None: no declaration
    source_type: str | None = None  # the IPTC DigitalSourceType term behind ``declares``
    generator: str | None = None  # the tool or camera named
    signer: dict | None = None  # {"subject", "issuer"} of the signing certificate
    signed_at: str | None = None  # time stamp of the signature (only with a time-stamp authority)
    validation: str | None = None  # a key of VALIDATION_TEXT; None without a manifest
    statement: str = ""  # the sentence the panel leads with
    chain: str | None = None  # the manifest chain in one line, oldest first ("created with DALL·E (AI) -> ...")
    c2pa: dict | None = None  # claim generator, title, actions, ingredients, chain, findings, validation codes
    metadata: dict = field(default_factory=dict)  # EXIF, XMP and PNG text fields found
    notes: list[str] = field(default_factory=list)  # what could not be read, in words

    def to_dict(self) -> dict:
        return asdict(self)


def sniff_format(head: bytes) -> str | None:
    """The MIME type c2pa should read the file as, from its first bytes; None when c2pa has nothing to read."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/avi"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return _BMFF_BRANDS.get(head[8:12], "video/mp4")
    return None


# -- Content Credentials -----------------------------------------------------------------------------------
def read_c2pa(path: Path, mime: str, trust: credentials.TrustList | None = None) -> dict:
    """The file's Content Credentials, summarised (see :func:`detectors.credentials.read`); {} without any."""
    return credentials.read(path, mime, trust)


# -- putting it together -----------------------------------------------------------------------------------
def _common_name(subject: str | None) -> str | None:
    if not subject:
        return None
    match = re.search(r"(?:^|, )CN=([^,]+)", subject)
    return match.group(1) if match else subject


def _apply_c2pa(record: Provenance, manifest: dict) -> None:
    """The chain's declaration leads; the active manifest's signer and validation vouch for it."""
    record.validation = manifest.pop("outcome")
    record.signer, record.signed_at = manifest.pop("signer"), manifest.pop("signed_at")
    record.declares, record.source_type = manifest.pop("declares"), manifest.pop("source_type")
    tool = manifest.pop("tool")
    record.generator = tool if record.declares else manifest["claim_generator"]
    record.chain = manifest["chain"] or None
    record.c2pa = manifest
    record.kind = "c2pa"


def _apply_metadata(record: Provenance, found: FileMetadata) -> None:
    """Unsigned metadata: it leads where no readable manifest declares anything (a declaration beats none)."""
    record.metadata = found.to_dict()
    record.notes += found.notes
    if record.declares is not None:
        return
    term = short_term(found.digital_source_type)
    credit = found.ai_credit
    if term:
        record.kind, record.source_type, record.declares = "xmp", term, declaration_of(term)
        tools = (found.camera, found.creator_tool, found.software) if record.declares == "captured" else (found.creator_tool, found.software, found.camera)
        record.generator = next((tool for tool in tools if tool), None)
    elif credit is not None:  # "Made with Google AI": a producer's declaration in words, where it gives no IPTC term
        record.kind, record.declares = credit["source"], credit["declares"]
        record.generator = found.creator_tool or found.software
    elif found.front_end:
        record.kind, record.declares, record.generator = found.front_end_source, "generated", found.front_end
    elif record.kind is None and found.any():
        record.kind = "exif" if found.exif else "xmp"
        record.generator = found.camera or found.software or found.creator_tool


_CLAIMS = {
    "generated": "The file declares it was generated by AI",
    "composite": "The file declares it contains AI-generated parts",
    "enhanced": "The file declares it was edited with AI",
    "captured": "The file declares it is a camera capture",
}
_BASES = {"xmp": "XMP metadata", "iptc": "IPTC metadata", "png-text": "PNG text chunks", "exif": "EXIF metadata"}
UNSIGNED = "unsigned: anyone can write or remove it"
NOTHING_FOUND = ("No provenance found: no Content Credentials and no generator or camera metadata. Most platforms strip "
                 "metadata on upload, so its absence says nothing about the file.")


def credentials_line(record: Provenance) -> str | None:
    """Who signed the manifest and whether it still holds; None without a readable manifest."""
    if record.c2pa is None:
        return None
    signer = _common_name((record.signer or {}).get("subject")) or "an unnamed signer"
    return f"Content Credentials signed by {signer}, {VALIDATION_TEXT[record.validation]}"


def _statement(record: Provenance) -> str:
    """The panel's lead sentence: what is declared, with what, and on whose word."""
    if record.kind is None:
        return NOTHING_FOUND
    if record.c2pa is None and record.validation == "unreadable" and record.declares is None:
        return "The file carries Content Credentials, but they could not be read."
    if record.declares in _CLAIMS:
        claim = _CLAIMS[record.declares]
    elif record.declares == "other":
        claim = f"The file declares its source as \u201c{record.source_type}\u201d"
    elif record.kind == "c2pa":
        claim = "The file carries Content Credentials"
    elif record.kind == "exif" and record.metadata.get("camera"):
        claim = "The file's EXIF names a camera"
    else:
        claim = "The file names the software that wrote it"
    tool = record.generator
    with_what = (f" with {tool}" if record.declares in ("generated", "composite", "enhanced") else f": {tool}") if tool else ""
    credit = record.metadata.get("ai_credit")
    if record.kind != "c2pa" and record.source_type is None and credit and credit["source"] == record.kind:
        with_what += f", in its credit line \u201c{credit['text']}\u201d"
    basis = credentials_line(record) if record.kind == "c2pa" else f"{_BASES[record.kind]}, {UNSIGNED}"
    return f"{claim}{with_what} ({basis})."


def read(path: str | os.PathLike, max_bytes: int = DEFAULT_LIMITS.max_file_bytes,
         trust: credentials.TrustList | None = None) -> Provenance:
    """Everything the file declares about its origin; never raises for the file's content. ``trust``: the trust
    lists to check signers against (default: the shipped C2PA lists)."""
    path = Path(path)
    record = Provenance()
    try:
        if path.stat().st_size > max_bytes:  # the upload limit: c2pa would hash all of it
            raise OSError(f"the file is over the {max_bytes >> 20} MB limit")
        with open(path, "rb") as stream:
            head = stream.read(16)
            found = read_metadata(stream, head)
    except OSError as error:
        record.notes.append(f"Provenance not read: {error.strerror or error}")
        record.statement = _statement(record)
        return record
    mime = sniff_format(head)
    # c2pa gets the file only where a manifest is embedded, or where we cannot tell (formats we do not walk).
    if mime is not None and (found.manifest_present or not found.walked):
        try:
            manifest = read_c2pa(path, mime, trust)
        except ImportError:
            record.notes.append("c2pa-python is not installed: Content Credentials were not checked")
        except Exception as error:  # c2pa's errors on a malformed store are many and not exported: each becomes a note
            reason = str(error).split(": ", 1)[-1][:160] or type(error).__name__
            if found.manifest_present:
                record.kind, record.validation = "c2pa", "unreadable"
                record.notes.append(f"Content Credentials are present but could not be read ({reason})")
            else:
                record.notes.append(f"Content Credentials could not be checked ({reason})")
        else:
            if manifest:
                _apply_c2pa(record, manifest)
    _apply_metadata(record, found)
    record.found = record.kind is not None
    record.statement = _statement(record)
    return record


def report(path: str | os.PathLike) -> dict:
    """``read(path).to_dict()`` for the records; a bug of ours becomes a note, never a failed analysis."""
    try:
        return read(path).to_dict()
    except Exception as error:
        log.exception("provenance of %s failed", Path(path).name.encode("utf-8", "backslashreplace").decode())
        return Provenance(statement=NOTHING_FOUND, notes=[f"Provenance could not be read ({type(error).__name__}); please report it"]).to_dict()


# -- what scan filters and counts by ------------------------------------------------------------------------
BROKEN = ("mismatch", "invalid", "malformed", "revoked", "failed", "unreadable")
HOLDS = ("trusted", "valid", "expired", "off-profile")  # the signature and the content hashes hold
FILTERS = {
    "found": lambda p: p["found"],
    "none": lambda p: not p["found"],
    "generated": lambda p: p["declares"] == "generated",
    "composite": lambda p: p["declares"] == "composite",
    "enhanced": lambda p: p["declares"] == "enhanced",
    "captured": lambda p: p["declares"] == "captured",
    "signed": lambda p: p["c2pa"] is not None and p["validation"] in HOLDS,
    "broken": lambda p: p["validation"] in BROKEN,
}


def matches(provenance: dict | None, what: str) -> bool:
    """Whether a record's ``provenance`` is of the kind ``what`` (a key of FILTERS)."""
    return provenance is not None and FILTERS[what](provenance)


def tally(counts: dict[str, int], provenance: dict | None) -> None:
    """Add one record's ``provenance`` to ``counts`` (one count per filter it matches, and the total)."""
    counts["files"] = counts.get("files", 0) + 1
    for what in FILTERS:
        counts[what] = counts.get(what, 0) + matches(provenance, what)


def summary(counts: dict[str, int]) -> str:
    """One line of :func:`tally`'s counts, for ``scan --provenance-summary``."""
    return f"provenance of {counts.get('files', 0)} files: " + ", ".join(f"{what} {counts.get(what, 0)}" for what in FILTERS)
