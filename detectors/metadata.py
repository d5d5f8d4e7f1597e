"""Unsigned provenance metadata, read by walking the file's own structure (no pixel is decoded).

JPEG segments, PNG chunks, WebP (RIFF) chunks and ISO-BMFF (MP4, MOV) top-level boxes are walked with seeks,
so a 12-megapixel photo costs a few small reads. Found: EXIF Make / Model / Software (and the UserComment
where Stable Diffusion front-ends put their settings in JPEG and WebP), XMP ``DigitalSourceType`` and
``CreatorTool``, credit and description lines (XMP ``photoshop:Credit`` / ``dc:description``, IPTC IIM Credit and
Caption in a JPEG's APP13), PNG text chunks of the known generator front-ends, and whether a C2PA manifest is
embedded (the caller then hands the file to c2pa). Every size is bounded; what is over a bound becomes a note.
"""
from __future__ import annotations

import html
import io
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image

MAX_TEXT_BYTES = 1 << 20  # one text chunk, XMP packet or EXIF block (after decompression)
MAX_STRUCTURES = 20_000  # segments, chunks or boxes walked before giving up (a crafted file could hold millions)
PREVIEW_CHARS = 500  # of each generator text kept in the record
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the BMFF 'uuid' box that holds a manifest
XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
# Text chunk keys each front-end writes (checked in this order: ComfyUI also writes "prompt").
FRONT_END_KEYS = (
    (("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream"), "InvokeAI"),
    (("fooocus_scheme",), "Fooocus"),
    (("workflow", "prompt"), "ComfyUI"),
    (("parameters",), "Stable Diffusion web UI (AUTOMATIC1111, Forge or SD.Next)"),
)
GENERATOR_NAMES = re.compile(r"novelai|midjourney|dall[-\u00b7 ]?e|stable diffusion|firefly|imagen|ideogram|leonardo\.ai|flux", re.I)
_TEXT_KEYS = {"parameters", "prompt", "workflow", "Software", "Comment", "Description", "Source", "Title", "generation_data",
              *(key for keys, _ in FRONT_END_KEYS for key in keys)}


@dataclass
class FileMetadata:
    walked: bool = False  # the format's structure was walked (JPEG, PNG, WebP, BMFF)
    manifest_present: bool = False  # a C2PA manifest store is embedded
    exif: dict = field(default_factory=dict)  # Make, Model, Software, DateTime
    digital_source_type: str | None = None  # IPTC term URI or name, from XMP
    creator_tool: str | None = None  # XMP xmp:CreatorTool
    text: dict = field(default_factory=dict)  # generator text chunks (PNG) or UserComment, previews
    front_end: str | None = None  # the generator front-end the text names
    front_end_source: str | None = None  # where it was found: "png-text" or "exif"
    credit_lines: list[tuple[str, str]] = field(default_factory=list)  # (where: "xmp", "iptc", "png-text"; the line)
    notes: list[str] = field(default_factory=list)

    @property
    def camera(self) -> str | None:
        make, model = self.exif.get("Make", "").strip(), self.exif.get("Model", "").strip()
        name = model if make and model.lower().startswith(make.lower()) else f"{make} {model}".strip()
        return name or None

    @property
    def software(self) -> str | None:
        return self.exif.get("Software") or self.text.get("Software")

    @property
    def ai_credit(self) -> dict | None:
        """The first credit or description line that says AI made or edited the picture ("Made with Google AI"):
        {"source", "text", "declares"}; None when no line does."""
        from .credentials import ai_phrase_declares

        for source, line in self.credit_lines:
            declares = ai_phrase_declares(line)
            if declares:
                return {"source": source, "text": line, "declares": declares}
        return None

    def any(self) -> bool:
        return bool(self.exif or self.digital_source_type or self.creator_tool or self.front_end)

    def to_dict(self) -> dict:
        return {"exif": self.exif, "camera": self.camera, "digital_source_type": self.digital_source_type,
                "creator_tool": self.creator_tool, "credit_lines": [line for _, line in self.credit_lines],
                "ai_credit": self.ai_credit, "text": self.text, "front_end": self.front_end}


def read_metadata(stream: BinaryIO, head: bytes) -> FileMetadata:
    """Walk the file open as ``stream`` (its first bytes ``head``); never raises for its content."""
    found = FileMetadata()
    walker = (_walk_jpeg if head.startswith(b"\xff\xd8") else _walk_png if head.startswith(b"\x89PNG\r\n\x1a\n")
              else _walk_webp if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else _walk_bmff if head[4:8] == b"ftyp" else None)
    if walker is None:
        return found
    found.walked = True
    try:
        walker(stream, found)
    except (OSError, struct.error, ValueError, IndexError) as error:  # a structure cut short: what was read before it stands
        found.notes.append(f"Metadata partly read: the file's structure breaks off ({type(error).__name__})")
    _name_front_end(found)
    return found


# -- walkers -----------------------------------------------------------------------------------------------
def _walk_jpeg(stream: BinaryIO, found: FileMetadata) -> None:
    stream.seek(2)
    for _ in range(MAX_STRUCTURES):
        prefix = stream.read(2)
        if len(prefix) < 2 or prefix[0] != 0xFF:
            return
        marker = prefix[1]
        while marker == 0xFF:  # fill bytes
            marker = stream.read(1)[0]
        if marker in (0xDA, 0xD9):  # start of scan, end of image: no metadata after the header
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        length = struct.unpack(">H", stream.read(2))[0] - 2
        if marker in (0xE1, 0xEB, 0xED):  # EXIF / XMP, C2PA, Photoshop IPTC (a segment is at most 64 kB)
            payload = stream.read(length)
            if marker == 0xED:
                _photoshop_iptc(payload, found)
            elif marker == 0xEB and payload[:2] == b"JP":
                found.manifest_present = True
            elif payload.startswith(b"Exif\x00\x00"):
                _exif(payload, found)
            elif payload.startswith(XMP_NAMESPACE):
                _xmp(payload[len(XMP_NAMESPACE):], found)
        else:
            stream.seek(length, io.SEEK_CUR)


def _walk_png(stream: BinaryIO, found: FileMetadata) -> None:
    stream.seek(8)
    for _ in range(MAX_STRUCTURES):
        header = stream.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return
        if kind == b"caBX":
            found.manifest_present = True
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf") and length > MAX_TEXT_BYTES:
            key = stream.read(80).split(b"\x00", 1)[0].decode("latin-1") if kind != b"eXIf" else "EXIF"
            found.notes.append(f"PNG {kind.decode()} chunk \u201c{key}\u201d is {length / 2**20:.1f} MB, over the "
                               f"{MAX_TEXT_BYTES >> 20} MB limit: not read")
            if key in _TEXT_KEYS:  # the key alone names the front-end that wrote it
                found.text[key], found.front_end_source = "(not read: over the size limit)", "png-text"
            stream.seek(length - 80 + 4, io.SEEK_CUR)  # the rest of the chunk and its CRC
            continue
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            _png_text(kind, stream.read(length), found)
        elif kind == b"eXIf":
            _exif(stream.read(length), found)
        else:
            stream.seek(length, io.SEEK_CUR)
        stream.seek(4, io.SEEK_CUR)  # CRC


def _walk_webp(stream: BinaryIO, found: FileMetadata) -> None:
    stream.seek(12)
    for _ in range(MAX_STRUCTURES):
        header = stream.read(8)
        if len(header) < 8:
            return
        kind, length = struct.unpack("<4sI", header)
        padded = length + (length & 1)
        if kind == b"C2PA":
            found.manifest_present = True
        if kind in (b"EXIF", b"XMP ") and length <= MAX_TEXT_BYTES:
            payload = stream.read(length)
            _exif(payload, found) if kind == b"EXIF" else _xmp(payload, found)
            stream.seek(padded - length, io.SEEK_CUR)
        else:
            stream.seek(padded, io.SEEK_CUR)


def _walk_bmff(stream: BinaryIO, found: FileMetadata) -> None:
    stream.seek(0, io.SEEK_END)
    end = stream.tell()
    position = 0
    for _ in range(MAX_STRUCTURES):
        stream.seek(position)
        header = stream.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        if size == 1:
            size = struct.unpack(">Q", stream.read(8))[0]
        elif size == 0:
            size = end - position
        if kind == b"uuid" and stream.read(16) == C2PA_UUID:  # (after a large size the uuid follows it)
            found.manifest_present = True
        if size < 8:
            return
        position += size


# -- fields ------------------------------------------------------------------------------------------------
def _exif(payload: bytes, found: FileMetadata) -> None:
    exif = Image.Exif()
    try:
        exif.load(payload)
        for tag, name in ((0x010F, "Make"), (0x0110, "Model"), (0x0131, "Software"), (0x0132, "DateTime")):
            if isinstance(exif.get(tag), str) and exif[tag].strip("\x00 "):
                found.exif[name] = exif[tag].strip("\x00 ")[:200]
        comment = exif.get_ifd(0x8769).get(0x9286)
    except Exception:  # PIL's EXIF parser raises many types on a broken block
        found.notes.append("The EXIF block is broken: not read")
        return
    text = _user_comment(comment)
    if text and "Steps:" in text:  # AUTOMATIC1111 and its forks put "parameters" here in JPEG and WebP
        found.text.setdefault("parameters", text[:PREVIEW_CHARS])
        found.front_end_source = found.front_end_source or "exif"


def _user_comment(value) -> str | None:
    """EXIF UserComment: 8 bytes naming the character code, then the text."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes) or len(value) < 8:
        return None
    code, body = value[:8], value[8:]
    if code.startswith(b"UNICODE"):
        text = body.decode("utf-16-be", "replace")
        return text if "Steps:" in text else body.decode("utf-16-le", "replace")
    return body.decode("utf-8", "replace")


_XMP_FIELDS = {
    "digital_source_type": re.compile(r"DigitalSourceType(?:\s*=\s*[\"']([^\"']+)|[^>]*?rdf:resource\s*=\s*[\"']([^\"']+)|\s*>\s*([^<\s]+))"),
    "creator_tool": re.compile(r"CreatorTool(?:\s*=\s*[\"']([^\"']+)|\s*>\s*([^<]+))"),
}


def _xmp(payload: bytes, found: FileMetadata) -> None:
    text = payload[:MAX_TEXT_BYTES].decode("utf-8", "replace")
    for name, pattern in _XMP_FIELDS.items():
        match = pattern.search(text)
        if match and getattr(found, name) is None:
            setattr(found, name, next(g for g in match.groups() if g).strip()[:200])
    _credit_lines(text, "xmp", found)
    if "dcterms:provenance" in text:
        found.notes.append("XMP points to Content Credentials stored elsewhere: not fetched (nothing is sent anywhere)")


_CREDIT_FIELDS = re.compile(
    r"(?:photoshop:Credit|Iptc4xmpCore:CreditLine)\s*=\s*[\"']([^\"']+)|<(?:photoshop:Credit|Iptc4xmpCore:CreditLine)>([^<]+)<"
    r"|<dc:description>\s*<rdf:Alt>\s*<rdf:li[^>]*>([^<]+)<")
IIM_CREDIT_DATASETS = {110: "Credit", 120: "Caption"}  # IPTC IIM record 2 datasets that carry credit lines
MAX_CREDIT_LINES = 8


def _credit_lines(text: str, source: str, found: FileMetadata) -> None:
    for match in _CREDIT_FIELDS.finditer(text):
        line = html.unescape(next(g for g in match.groups() if g)).strip()[:PREVIEW_CHARS]
        if line and len(found.credit_lines) < MAX_CREDIT_LINES:
            found.credit_lines.append((source, line))


def _photoshop_iptc(payload: bytes, found: FileMetadata) -> None:
    """IPTC IIM Credit and Caption from a JPEG's APP13 (Photoshop image resources, resource 0x0404)."""
    if not payload.startswith(b"Photoshop 3.0\x00"):
        return
    try:
        _photoshop_resources(payload, found)
    except (struct.error, IndexError):  # a broken block: the lines read before the break stand
        found.notes.append("The IPTC block is broken: partly read")


def _photoshop_resources(payload: bytes, found: FileMetadata) -> None:
    position = 14
    while position + 12 <= len(payload) and payload[position:position + 4] == b"8BIM":
        resource = struct.unpack(">H", payload[position + 4:position + 6])[0]
        name_length = payload[position + 6]
        position += 6 + ((name_length + 2) & ~1)  # Pascal name padded to even length
        size = struct.unpack(">I", payload[position:position + 4])[0]
        data = payload[position + 4:position + 4 + size]
        position += 4 + size + (size & 1)
        if resource == 0x0404:
            _iim(data, found)


def _iim(data: bytes, found: FileMetadata) -> None:
    position = 0
    while position + 5 <= len(data) and data[position] == 0x1C:
        record, dataset, size = data[position + 1], data[position + 2], struct.unpack(">H", data[position + 3:position + 5])[0]
        if size & 0x8000:  # an extended length: too long for a credit line
            return
        value = data[position + 5:position + 5 + size]
        position += 5 + size
        if record == 2 and dataset in IIM_CREDIT_DATASETS and len(found.credit_lines) < MAX_CREDIT_LINES:
            line = value.decode("utf-8", "replace").strip("\x00 ")[:PREVIEW_CHARS]
            if line:
                found.credit_lines.append(("iptc", line))


def _png_text(kind: bytes, data: bytes, found: FileMetadata) -> None:
    key, _, rest = data.partition(b"\x00")
    key = key.decode("latin-1")
    try:
        if kind == b"tEXt":
            value = rest.decode("latin-1")
        elif kind == b"zTXt":
            value = _inflate(rest[1:], key, found)
        else:
            compressed, rest = rest[:1] == b"\x01", rest[2:]
            _language, _, rest = rest.partition(b"\x00")
            _translated, _, body = rest.partition(b"\x00")
            value = _inflate(body, key, found) if compressed else body.decode("utf-8", "replace")
    except zlib.error:
        found.notes.append(f"PNG text chunk \u201c{key}\u201d is corrupt: not read")
        return
    if value is None:  # over the size limit: the key alone still names the front-end that wrote it
        value = "(not read: over the size limit)"
    if key == "XML:com.adobe.xmp":
        _xmp(value.encode("utf-8"), found)
    elif key in _TEXT_KEYS and len(found.text) < 32:
        found.text[key] = value[:PREVIEW_CHARS]
        found.front_end_source = "png-text"
        if key in ("Description", "Comment", "Source") and len(found.credit_lines) < MAX_CREDIT_LINES:
            found.credit_lines.append(("png-text", value[:PREVIEW_CHARS].strip()))


def _inflate(data: bytes, key: str, found: FileMetadata) -> str | None:
    """Decompress at most MAX_TEXT_BYTES (a small chunk can inflate to gigabytes)."""
    inflater = zlib.decompressobj()
    value = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        found.notes.append(f"PNG text chunk \u201c{key}\u201d inflates to over {MAX_TEXT_BYTES >> 20} MB: not read")
        return None
    return value.decode("utf-8", "replace")


def _name_front_end(found: FileMetadata) -> None:
    """Which generator front-end wrote the text found (keys first; then generator names in Software fields)."""
    for keys, name in FRONT_END_KEYS:
        if any(key in found.text for key in keys):
            model = re.search(r"Model: ([^,\n]+)", found.text.get("parameters", ""))
            found.front_end = f"{name}, model {model.group(1).strip()}" if model and name.startswith("Stable") else name
            return
    for source, value in (("png-text", found.text.get("Software")), ("exif", found.exif.get("Software")), ("xmp", found.creator_tool)):
        if value and GENERATOR_NAMES.search(value):
            found.front_end, found.front_end_source = value, source
            return
