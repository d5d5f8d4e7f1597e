"""Provenance beside the pixels: what a file says about where it came from, read offline.

Two kinds of statement are read, never blended into any detector's P(fake):

- Content Credentials (C2PA manifests), with ``c2pa-python``: claim generator, signer, actions and their
  ``digitalSourceType``, ingredients, and whether the signature and the content hashes still hold. No trust
  list is reachable offline, so a good signature is "signature valid, signer not verified".
- Unsigned metadata: IPTC / XMP ``DigitalSourceType``, EXIF Make / Model / Software, and the PNG text chunks
  (or EXIF UserComment) that Stable Diffusion front-ends write (see :mod:`detectors.metadata`).

:func:`read` never raises for a file's content: what it cannot read becomes a line in ``notes``. Nothing is
fetched: remote manifests and OCSP are switched off.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .media import DEFAULT_LIMITS
from .metadata import FileMetadata, read_metadata

log = logging.getLogger(__name__)

IPTC_TERMS = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# What a DigitalSourceType term declares; the strongest declaration of a file leads (generated first).
DECLARATIONS = {
    "trainedAlgorithmicMedia": "generated", "algorithmicMedia": "generated",
    "compositeSynthetic": "composite", "compositeWithTrainedAlgorithmicMedia": "composite",
    "algorithmicallyEnhanced": "enhanced",
    "digitalCapture": "captured", "negativeFilm": "captured", "positiveFilm": "captured", "print": "captured",
    "compositeCapture": "captured",
}
STRENGTH = ("generated", "composite", "enhanced", "captured", "other")
# Validation outcomes of a manifest; "mismatch" and "invalid" are warnings, "unreadable" a manifest we could not parse.
VALIDATION_TEXT = {
    "trusted": "signature valid, signer on a trust list",
    "valid": "signature valid, signer not verified",
    "mismatch": "edited after signing: the content no longer matches what was signed",
    "invalid": "signature not valid",
    "unreadable": "manifest could not be read",
}
HASH_MISMATCH = re.compile(r"(dataHash|bmffHash|boxesHash|collectionHash|hashedURI)\.mismatch")
EXPECTED_OFFLINE = ("signingCredential.untrusted", "signingCredential.ocsp")  # no trust list, no OCSP without network
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
    c2pa: dict | None = None  # claim generator, title, actions, ingredients, validation codes
    metadata: dict = field(default_factory=dict)  # EXIF, XMP and PNG text fields found
    notes: list[str] = field(default_factory=list)  # what could not be read, in words

    def to_dict(self) -> dict:
        return asdict(self)


def _short_term(value: str | None) -> str | None:
    if not value:
        return None
    return value.rstrip("/").rsplit("/", 1)[-1]


def _declaration(term: str | None) -> str | None:
    return None if term is None else DECLARATIONS.get(term, "other")


def _strongest(terms: list[str]) -> str | None:
    """The term whose declaration is strongest (generated before composite before ... captured)."""
    return min(terms, key=lambda t: STRENGTH.index(_declaration(t)), default=None)


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
_local = threading.local()
OFFLINE_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}, "core": {"allowed_network_hosts": []}}


def _context():
    """One c2pa Context per thread (scan prefetches in threads), with every network access switched off."""
    import c2pa

    if getattr(_local, "context", None) is None:
        _local.context = c2pa.Context(c2pa.Settings.from_dict(OFFLINE_SETTINGS))
    return _local.context


def _name(value) -> str | None:
    """A claim generator or software agent, which C2PA gives as a string or as {"name", "version"}."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        return " ".join(str(value[k]) for k in ("name", "version") if value.get(k)) or None
    return str(value) if value else None


def _distinguished(names: dict | None) -> str | None:
    if not names:
        return None
    return ", ".join(f"{key}={value}" for key, value in names.items())


def _certificate(cr_json: str, label: str) -> dict | None:
    """Subject and issuer of the active manifest's signing certificate (only the crJSON view names the issuer)."""
    for manifest in json.loads(cr_json).get("manifests", []):
        if manifest.get("label") == label:
            info = manifest.get("signature", {}).get("certificateInfo", {})
            return {"subject": _distinguished(info.get("subject")), "issuer": _distinguished(info.get("issuer"))}
    return None


def _validation(store: dict) -> tuple[str, list[str]]:
    """(outcome, failure codes) of the active manifest; trust-list and OCSP codes are expected offline."""
    results = store.get("validation_results", {}).get("activeManifest")
    failures = results.get("failure", []) if results is not None else store.get("validation_status", [])
    codes = [item.get("code", "") for item in failures]
    serious = [code for code in codes if not code.startswith(EXPECTED_OFFLINE)]
    if any(HASH_MISMATCH.search(code) for code in serious):
        return "mismatch", codes
    if serious:
        return "invalid", codes
    return ("trusted" if store.get("validation_state") == "Trusted" else "valid"), codes


def _actions(manifest: dict) -> list[dict]:
    actions = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                actions.append({"action": action.get("action"), "digital_source_type": _short_term(action.get("digitalSourceType")),
                                "software_agent": _name(action.get("softwareAgent"))})
    return actions


def read_c2pa(path: Path, mime: str) -> dict:
    """The active manifest of the file's manifest store, summarised; {} when the file has none.

    Raises whatever c2pa raises for a store it cannot parse (the caller turns it into a note)."""
    import c2pa

    with open(path, "rb") as stream:
        try:
            reader = c2pa.Reader(mime, stream, context=_context())
        except c2pa.C2paError.ManifestNotFound:
            return {}
        with reader:
            store = json.loads(reader.json())
            label = store.get("active_manifest")
            manifest = store.get("manifests", {}).get(label, {})
            certificate = _certificate(reader.crjson(), label)
    outcome, codes = _validation(store)
    signature = manifest.get("signature_info", {})
    return {
        "claim_generator": _name(manifest.get("claim_generator_info") or manifest.get("claim_generator")),
        "title": manifest.get("title"),
        "actions": _actions(manifest),
        "ingredients": [{"title": i.get("title"), "format": i.get("format"), "relationship": i.get("relationship"),
                         "has_credentials": bool(i.get("active_manifest"))} for i in manifest.get("ingredients", [])[:20]],
        "validation_codes": codes,
        "outcome": outcome,
        "signer": certificate or {"subject": signature.get("common_name"), "issuer": signature.get("issuer")},
        "signed_at": signature.get("time"),
    }


# -- putting it together -----------------------------------------------------------------------------------
def _common_name(subject: str | None) -> str | None:
    if not subject:
        return None
    match = re.search(r"(?:^|, )CN=([^,]+)", subject)
    return match.group(1) if match else subject


def _apply_c2pa(record: Provenance, manifest: dict) -> None:
    record.validation = manifest.pop("outcome")
    record.signer, record.signed_at = manifest.pop("signer"), manifest.pop("signed_at")
    record.c2pa = manifest
    terms = [a["digital_source_type"] for a in manifest["actions"] if a["digital_source_type"]]
    record.source_type = _strongest(terms)
    record.declares = _declaration(record.source_type)
    lead = next((a for a in manifest["actions"] if a["digital_source_type"] == record.source_type and a["software_agent"]), None)
    record.generator = (lead or {}).get("software_agent") or manifest["claim_generator"]
    record.kind = "c2pa"


def _apply_metadata(record: Provenance, found: FileMetadata) -> None:
    """Unsigned metadata: it leads where no readable manifest declares anything (a declaration beats none)."""
    record.metadata = found.to_dict()
    record.notes += found.notes
    if record.declares is not None:
        return
    term = _short_term(found.digital_source_type)
    if term:
        record.kind, record.source_type, record.declares = "xmp", term, _declaration(term)
        tools = (found.camera, found.creator_tool, found.software) if record.declares == "captured" else (found.creator_tool, found.software, found.camera)
        record.generator = next((tool for tool in tools if tool), None)
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
_BASES = {"xmp": "XMP metadata", "png-text": "PNG text chunks", "exif": "EXIF metadata"}
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
    basis = credentials_line(record) if record.kind == "c2pa" else f"{_BASES[record.kind]}, {UNSIGNED}"
    return f"{claim}{with_what} ({basis})."


def read(path: str | os.PathLike, max_bytes: int = DEFAULT_LIMITS.max_file_bytes) -> Provenance:
    """Everything the file declares about its origin; never raises for the file's content."""
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
            manifest = read_c2pa(path, mime)
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
BROKEN = ("mismatch", "invalid", "unreadable")
FILTERS = {
    "found": lambda p: p["found"],
    "none": lambda p: not p["found"],
    "generated": lambda p: p["declares"] == "generated",
    "composite": lambda p: p["declares"] == "composite",
    "enhanced": lambda p: p["declares"] == "enhanced",
    "captured": lambda p: p["declares"] == "captured",
    "signed": lambda p: p["c2pa"] is not None and p["validation"] in ("valid", "trusted"),
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
