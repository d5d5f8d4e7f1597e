"""Content Credentials (C2PA manifests) as producers write them, read with ``c2pa-python`` and offline.

- **The chain**: the active manifest and, recursively, the manifests of its ingredients (``parentOf`` and
  ``componentOf``), up to :data:`MAX_DEPTH` levels. A producer often signs the AI "created" action in one manifest
  and only converts or re-signs in the next (a DALL-E image exported through ChatGPT), so what a file declares
  comes from the whole chain, not from the active manifest alone.
- **Trust**: the C2PA trust list and time-stamping trust list shipped in ``assets/trust`` (or the files named by
  ``DEEPFAKE_C2PA_TRUST_LIST`` / ``DEEPFAKE_C2PA_TSA_TRUST_LIST``) go to c2pa in each reader's ``c2pa.Context``.
  c2pa-python 0.38's ``load_settings`` is deprecated and its Reader ignores it, so settings travel only this way.
- **Words per code**: the validation codes c2pa reports, grouped into families, each with one plain sentence.

Nothing is fetched: remote manifests, OCSP and every network host are switched off in the settings.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

AI_TERMS = ("trainedAlgorithmicMedia", "algorithmicMedia", "trainedAlgorithmicData")
AI_COMPOSITE_TERM = "compositeWithTrainedAlgorithmicMedia"
MAX_DEPTH = 8  # ingredient levels walked below the active manifest (a crafted store can nest without end)
MAX_MANIFESTS = 64  # manifests summarised per file
# A description that says the picture was made or edited by AI ("AI Generated Image", "Created by Google
# Generative AI", "Made with Google AI"): producers write these where they give no IPTC term.
AI_PHRASE = re.compile(
    r"\b(?P<verb>made|created|generated|produced|edited|modified)\s+(?:with|by|using)\s+(?:[\w.\u00b7\-]+\s+){0,3}?"
    r"(?:AI|A\.I\.|artificial intelligence)\b|\bAI[- ](?P<adjective>generated|created|edited|modified)\b", re.I)


# What a DigitalSourceType term declares; the strongest declaration leads (generated first).
DECLARATIONS = {
    "trainedAlgorithmicMedia": "generated", "algorithmicMedia": "generated", "trainedAlgorithmicData": "generated",
    "compositeSynthetic": "composite", "compositeWithTrainedAlgorithmicMedia": "composite",
    "algorithmicallyEnhanced": "enhanced",
    "digitalCapture": "captured", "negativeFilm": "captured", "positiveFilm": "captured", "print": "captured",
    "compositeCapture": "captured",
}
STRENGTH = ("generated", "composite", "enhanced", "captured", "other")


def declaration_of(term: str | None) -> str | None:
    return None if term is None else DECLARATIONS.get(term, "other")


def strongest(terms: list[str]) -> str | None:
    """The term whose declaration is strongest (generated before composite before ... captured)."""
    return min(terms, key=lambda t: STRENGTH.index(declaration_of(t)), default=None)


def ai_phrase_declares(text: str | None) -> str | None:
    """``generated`` or ``enhanced`` when ``text`` says the picture was made or edited with AI, else None."""
    match = AI_PHRASE.search(text or "")
    if match is None or re.search(r"\b(?:not|no|non|without)\W*$", text[max(0, match.start() - 12):match.start()], re.I):
        return None  # "not AI-generated" declares nothing
    verb = (match.group("verb") or match.group("adjective")).lower()
    return "enhanced" if verb in ("edited", "modified") else "generated"


# -- trust lists and the reader's context --------------------------------------------------------------------
TRUST_FOLDER = Path(__file__).resolve().parent.parent / "assets" / "trust"
SHIPPED_TRUST = "C2PA trust lists of 2026-08-21"  # the copy in assets/trust (its README: source, commit, checksums)
TRUST_FILES = (("DEEPFAKE_C2PA_TRUST_LIST", "C2PA-TRUST-LIST.pem"), ("DEEPFAKE_C2PA_TSA_TRUST_LIST", "C2PA-TSA-TRUST-LIST.pem"))
OFFLINE_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True},
                    "core": {"allowed_network_hosts": []}}


@dataclass(frozen=True)
class TrustList:
    """PEM bundles of trust anchors: ``anchors`` for claim signers, ``tsa`` for time-stamping authorities."""

    anchors: str = ""
    tsa: str = ""
    source: str = "a trust list given by the caller"  # what the record and the panel name

    @classmethod
    def shipped(cls) -> "TrustList":
        """The lists in ``assets/trust``, or the files the environment names instead (see its README)."""
        replaced = [os.environ.get(variable) for variable, _ in TRUST_FILES]
        paths = [Path(given or TRUST_FOLDER / name) for given, (_, name) in zip(replaced, TRUST_FILES)]
        texts = [path.read_text("ascii", "replace") if path.is_file() else "" for path in paths]
        names = [SHIPPED_TRUST if not given else path.name for given, path, text in zip(replaced, paths, texts) if text]
        return cls(texts[0], texts[1], " + ".join(dict.fromkeys(names)))

    def settings(self) -> dict:
        anchors = [{"trust_anchors": pem, "trust_kind": kind} for pem, kind in ((self.anchors, "manifest"), (self.tsa, "tsa"))
                   if "BEGIN CERTIFICATE" in pem]
        return {**OFFLINE_SETTINGS, "trust": {"anchors": anchors}} if anchors else OFFLINE_SETTINGS


_shipped: TrustList | None = None
_shipped_lock = threading.Lock()
_local = threading.local()


def shipped_trust() -> TrustList:
    global _shipped
    with _shipped_lock:
        if _shipped is None:
            _shipped = TrustList.shipped()
        return _shipped


def context(trust: TrustList | None = None):
    """A c2pa Context carrying ``trust`` (default: the shipped lists) and no network access; one per thread and
    trust list (scan reads in threads; building one parses every anchor, so it is kept)."""
    import c2pa

    trust = trust or shipped_trust()
    contexts = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = {}
    if trust not in contexts:
        if len(contexts) > 4:  # tests pass their own lists; keep the cache small
            contexts.clear()
        settings = c2pa.Settings.from_dict(trust.settings())
        contexts[trust] = c2pa.Context(settings)
    return contexts[trust]


# -- names ----------------------------------------------------------------------------------------------------
_LIBRARY_TAG = re.compile(r"\s*\b[\w.\-]*c2pa[\w.\-]*/[\w.+\-]+", re.I)  # "c2pa-rs/0.28.4", "adobe_c2pa/0.14.2"


def short_term(value: str | None) -> str | None:
    if not value:
        return None
    return str(value).rstrip("/").rsplit("/", 1)[-1]


def agent_name(value) -> str | None:
    """A software agent or claim generator, given as text or as {"name", "version"} (or a list of those)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        name, version = str(value.get("name") or "").strip(), str(value.get("version") or "").strip()
        if not name:
            return None
        # "26.9.0" reads well after a name; a build tag like "840473969:840473969" does not.
        return f"{name} {version}" if re.fullmatch(r"v?\d+(\.\d+){0,3}", version) else name
    if not value:
        return None
    text = _LIBRARY_TAG.sub("", str(value)).strip()
    return text.replace("_", " ") if text else str(value)


def manifest_generator(manifest: dict) -> str | None:
    return agent_name(manifest.get("claim_generator_info")) or agent_name(manifest.get("claim_generator"))


# -- the chain ------------------------------------------------------------------------------------------------
def _actions(manifest: dict) -> list[dict]:
    """The manifest's actions from ``c2pa.actions`` and ``c2pa.actions.v2`` (agent as text or as an object)."""
    generator = manifest_generator(manifest)
    actions = []
    for assertion in manifest.get("assertions", []):
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") or {}
        for action in (data.get("actions") or [])[:50] if isinstance(data, dict) else []:
            if not isinstance(action, dict):
                continue
            agent = agent_name(action.get("softwareAgent"))
            actions.append({"action": action.get("action"), "digital_source_type": short_term(action.get("digitalSourceType")),
                            "software_agent": agent, "description": action.get("description") or None,
                            "agent": agent or generator})
    return actions


def walk(store: dict, label: str, relationship: str = "active", depth: int = 0, seen: set | None = None) -> dict | None:
    """The manifest ``label`` and its ingredients' manifests, as a tree of nodes (None when not in the store)."""
    seen = set() if seen is None else seen
    manifest = store.get("manifests", {}).get(label)
    if manifest is None or label in seen or len(seen) >= MAX_MANIFESTS:
        return None
    seen.add(label)
    node = {"label": label, "relationship": relationship, "generator": manifest_generator(manifest),
            "title": manifest.get("title"), "signer": (manifest.get("signature_info") or {}).get("common_name"),
            "actions": _actions(manifest), "ingredients": []}
    for ingredient in (manifest.get("ingredients") or [])[:20]:
        child, taken_as = None, ingredient.get("relationship") or "componentOf"
        if ingredient.get("active_manifest") and depth < MAX_DEPTH:
            child = walk(store, ingredient["active_manifest"], taken_as, depth + 1, seen)
        elif ingredient.get("digital_source_type"):  # no manifest of its own, but a term: it counts like one
            child = {"label": None, "relationship": taken_as, "generator": None, "title": ingredient.get("title"), "signer": None,
                     "actions": [{"action": None, "digital_source_type": short_term(ingredient["digital_source_type"]),
                                  "software_agent": None, "description": None, "agent": None}], "ingredients": []}
        node["ingredients"].append({"title": ingredient.get("title"), "format": ingredient.get("format"),
                                    "relationship": ingredient.get("relationship"),
                                    "has_credentials": bool(ingredient.get("active_manifest")), "manifest": child})
    return node


def parent_line(node: dict) -> list[dict]:
    """The node and its parents (each manifest's first ``parentOf`` ingredient with credentials), newest first."""
    line = [node]
    while True:
        parent = next((i["manifest"] for i in line[-1]["ingredients"] if i["relationship"] == "parentOf" and i["manifest"]), None)
        if parent is None:
            return line
        line.append(parent)


def _components(line: list[dict]) -> list[dict]:
    return [i["manifest"] for node in line for i in node["ingredients"] if i["relationship"] == "componentOf" and i["manifest"]]


def _ai_action(actions: list[dict]) -> dict | None:
    """The first action that declares AI generation: by its IPTC term, or else by its description."""
    return (next((a for a in actions if a["digital_source_type"] in AI_TERMS), None)
            or next((a for a in actions if not a["digital_source_type"] and a["action"] == "c2pa.created"
                     and ai_phrase_declares(a["description"]) == "generated"), None))


def declaration(node: dict) -> tuple[str | None, str | None, str | None]:
    """(declares, IPTC term, tool) of the chain below ``node``.

    AI anywhere in the parent line makes the file ``generated`` (its origin is an AI picture, whatever was done
    to it since); an AI ingredient composited in, or ``compositeWithTrainedAlgorithmicMedia``, makes it
    ``composite``; otherwise the strongest term of the parent line decides."""
    line = parent_line(node)
    for manifest in reversed(line):  # the origin first: its tool is the one that made the picture
        action = _ai_action(manifest["actions"])
        if action is not None:
            return "generated", action["digital_source_type"], action["agent"]
    actions = [a for manifest in line for a in manifest["actions"]]
    composite = next((a for a in actions if a["digital_source_type"] == AI_COMPOSITE_TERM), None)
    for component in _components(line):
        declares, term, tool = declaration(component)
        if declares in ("generated", "composite"):
            return "composite", AI_COMPOSITE_TERM if composite else term, tool or (composite or {}).get("agent")
    if composite is not None:
        return "composite", AI_COMPOSITE_TERM, composite["agent"]
    term = strongest([a["digital_source_type"] for a in actions if a["digital_source_type"]])
    if term is None:
        return None, None, None
    lead = next(a for a in actions if a["digital_source_type"] == term)
    return declaration_of(term), term, lead["agent"]


_VERBS = {"c2pa.created": "created with", "c2pa.edited": "edited with", "c2pa.converted": "converted by",
          "c2pa.opened": "opened in", "c2pa.placed": "placed with", "c2pa.cropped": "cropped in", "c2pa.resized": "resized in",
          "c2pa.transcoded": "transcoded by", "c2pa.published": "published by", "c2pa.color_adjustments": "colour-adjusted in",
          "c2pa.filtered": "filtered in", "c2pa.drawing": "drawn on in", "c2pa.orientation": "rotated in",
          "c2pa.repackaged": "repackaged by", "c2pa.watermarked": "watermarked by"}


def _step(node: dict) -> str:
    """One manifest in words: its actions (one phrase per kind, at most four), each tool named where it changes."""
    if node["label"] is None:  # an ingredient that gives only its digitalSourceType
        term = node["actions"][0]["digital_source_type"]
        return f"ingredient declared {term}" + (" (AI)" if term in AI_TERMS else "")
    phrases, names, last_agent = [], set(), None
    ai_action = _ai_action(node["actions"])
    for action in node["actions"]:
        name = str(action["action"] or "action")
        if name in names:
            continue
        names.add(name)
        verb = _VERBS.get(name, f"{name.removeprefix('c2pa.').replace('_', ' ')} by")
        agent = action["agent"]
        phrase = f"{verb} {agent}" if agent and agent != last_agent else verb.rsplit(" ", 1)[0]
        last_agent = agent or last_agent
        if action["digital_source_type"] in AI_TERMS or action is ai_action:
            phrase += " (AI)"
        elif action["digital_source_type"] == AI_COMPOSITE_TERM:
            phrase += " (composite with AI)"
        phrases.append(phrase)
        if len(phrases) == 4:
            break
    if not phrases:
        return f"signed by {node['generator'] or node['signer'] or 'an unnamed tool'}"
    return ", ".join(phrases)


def chain_text(node: dict) -> str:
    """The chain in one line, oldest first: "created with DALL·E (AI) -> signed by ChatGPT"; ingredients composited
    in with credentials of their own are named in brackets after the step that took them in."""
    steps = []
    for manifest in reversed(parent_line(node)):
        step = _step(manifest)
        components = [i for i in manifest["ingredients"] if i["relationship"] == "componentOf" and i["manifest"]][:3]
        if components:
            step += " [ingredient " + "; ".join(f"\u201c{i['title'] or 'untitled'}\u201d: {chain_text(i['manifest'])}" for i in components) + "]"
        steps.append(step)
    return " -> ".join(steps)


# -- validation codes in words ---------------------------------------------------------------------------------
# Families, most serious first; the first family found names the outcome (``validation``).
FAMILIES = (
    ("changed", "mismatch", re.compile(r"\.(dataHash|bmffHash|boxesHash|collectionHash|hashedURI)\.mismatch|^assertion\.\w+\.mismatch"),
     "Content changed after signing: the file (or a part of its Content Credentials) no longer matches the hash that was "
     "signed, so what they declare held for an earlier version of the file, not necessarily for this one."),
    ("signature", "invalid", re.compile(r"^claimSignature\.(mismatch|missing)|^signingCredential\.(notFound|missing)|^timeStamp\.mismatch"),
     "Signature broken: the signature over the claim does not verify, so nothing the Content Credentials say can be relied on."),
    ("malformed", "malformed", re.compile(r"malformed|^claim\.(missing|cbor\.invalid|hardBindings\.missing|multipleHardBindings)"
                                          r"|^assertion\.(missing|cbor\.invalid|json\.invalid|undeclared|inaccessible|notRedacted|selfRedacted)"
                                          r"|^manifest\.|^algorithm\.unsupported"),
     "Malformed manifest: part of the Content Credentials does not follow the C2PA format, so it could not be checked."),
    ("revoked", "revoked", re.compile(r"^signingCredential\.ocsp\.revoked|^signingCredential\.revoked"),
     "Certificate revoked: the authority that issued the signer's certificate has withdrawn it."),
    ("off-profile", "off-profile", re.compile(r"^signingCredential\.invalid"),
     "Certificate not valid for C2PA signing: the signature itself holds and the content matches, but the signer's "
     "certificate does not meet the C2PA certificate profile (for example a missing extended key usage). This is a "
     "flaw of the signer's set-up, not a sign that the file was changed."),
    ("expired", "expired", re.compile(r"^signingCredential\.expired|^claimSignature\.outsideValidity|^timeStamp\.outsideValidity"),
     "Certificate expired: the signer's certificate is past its validity period."),
    ("untrusted", None, re.compile(r"^signingCredential\.untrusted"),
     "Signer not on the trust list: the signature holds, but the signer's certificate does not chain to a certificate "
     "authority on the C2PA trust list, so who signed cannot be confirmed."),
)
# Expected offline (no OCSP fetch) or informational: no sentence of their own.
EXPECTED = re.compile(r"^signingCredential\.ocsp\.(skipped|inaccessible|notRevoked)|^timeStamp\.(untrusted|validated|trusted)")
OTHER = "Validation failed: c2pa reported a problem this app has no words for (see the codes)."


def _date(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _expired_sentence(base: str, certificate: dict, codes: set[str]) -> str:
    """Whether a time stamp places the signing inside the certificate's validity (it is what makes an expired
    certificate harmless)."""
    not_after, stamped = certificate.get("not_after"), certificate.get("timestamp")
    until = f" on {not_after[:10]}" if not_after else ""
    if not stamped:
        return f"{base[:-1]}{until}, and no time stamp records when the file was signed, so the signing cannot be placed within its validity."
    inside = _date(stamped) and _date(not_after) and _date(stamped) <= _date(not_after)
    authority = ("a time-stamping authority on the trust list" if "timeStamp.trusted" in codes
                 else "a time-stamping authority not on the trust list")
    where = "while the certificate was still valid" if inside else "after the certificate had expired"
    return f"{base[:-1]}{until}; a time stamp from {authority} dates the signing to {stamped[:19].replace('T', ' ')}, {where}."


def findings(failure_codes: list[str], other_codes: list[str], certificate: dict) -> list[dict]:
    """One entry per family found: {"family", "sentence", "codes"}, most serious first."""
    found, placed = [], set()
    for family, _outcome, pattern, sentence in FAMILIES:
        codes = [code for code in failure_codes if pattern.search(code) and code not in placed]
        if not codes:
            continue
        placed.update(codes)
        if family == "expired":
            sentence = _expired_sentence(sentence, certificate, set(other_codes) | set(failure_codes))
        found.append({"family": family, "sentence": sentence, "codes": codes})
    rest = [code for code in failure_codes if code not in placed and not EXPECTED.search(code)]
    if rest:
        found.append({"family": "other", "sentence": OTHER, "codes": rest})
    return found


def outcome(found: list[dict], state: str | None) -> str:
    """The record's ``validation``: the most serious family's outcome, else trusted / valid (not on the list)."""
    outcomes = {family: result for family, result, _, _ in FAMILIES}
    for entry in found:
        if outcomes.get(entry["family"]):
            return outcomes[entry["family"]]
        if entry["family"] == "other":
            return "failed"
    return "trusted" if state == "Trusted" else "valid"


# -- reading ---------------------------------------------------------------------------------------------------
def _distinguished(names: dict | None) -> str | None:
    if not names:
        return None
    return ", ".join(f"{key}={value}" for key, value in names.items())


def _certificate(cr_json: str, label: str) -> dict:
    """Subject, issuer, validity and time stamp of the manifest's signing certificate (only crJSON names them)."""
    for manifest in json.loads(cr_json).get("manifests", []):
        if manifest.get("label") == label:
            signature = manifest.get("signature") or {}
            info = signature.get("certificateInfo") or {}
            stamp = signature.get("timeStampInfo") or {}
            return {"subject": _distinguished(info.get("subject")), "issuer": _distinguished(info.get("issuer")),
                    "not_after": (info.get("validity") or {}).get("notAfter"), "timestamp": stamp.get("timestamp")}
    return {}


def _codes(store: dict) -> tuple[list[str], list[str]]:
    """(failure codes, other codes) of the active manifest."""
    results = store.get("validation_results", {}).get("activeManifest")
    if results is None:
        return [item.get("code", "") for item in store.get("validation_status") or []], []
    other = [item.get("code", "") for key in ("success", "informational") for item in results.get(key) or []]
    return [item.get("code", "") for item in results.get("failure") or []], other


def _ingredient_failures(store: dict) -> list[str]:
    """Failure codes c2pa reports for the ingredients' manifests (their own outcome, shown as a note)."""
    codes = []
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        for item in ((delta.get("validationDeltas") or {}).get("failure") or []):
            code = item.get("code", "")
            if not EXPECTED.search(code) and not code.startswith("signingCredential.untrusted"):
                codes.append(code)
    return codes


def read(path: Path, mime: str, trust: TrustList | None = None) -> dict:
    """The file's manifest store, summarised; {} when the file has none.

    Raises whatever c2pa raises for a store it cannot parse (the caller turns it into a note)."""
    import c2pa

    with open(path, "rb") as stream:
        try:
            reader = c2pa.Reader(mime, stream, context=context(trust))
        except c2pa.C2paError.ManifestNotFound:
            return {}
        with reader:
            store = json.loads(reader.json())
            label = store.get("active_manifest")
            certificate = _certificate(reader.crjson(), label)
    manifest = store.get("manifests", {}).get(label, {})
    node = walk(store, label) or {"label": label, "relationship": "active", "generator": manifest_generator(manifest),
                                   "title": manifest.get("title"), "signer": None, "actions": [], "ingredients": []}
    failures, others = _codes(store)
    found = findings(failures, others, certificate)
    declares, term, tool = declaration(node)
    signature = manifest.get("signature_info") or {}
    return {
        "claim_generator": agent_name(manifest.get("claim_generator_info") or manifest.get("claim_generator")),
        "title": manifest.get("title"),
        "actions": [{k: a[k] for k in ("action", "digital_source_type", "software_agent")} for a in node["actions"]],
        "ingredients": [{k: i[k] for k in ("title", "format", "relationship", "has_credentials")} for i in node["ingredients"]],
        "chain": chain_text(node),
        "manifests": len(_labels(node)),
        "validation_state": store.get("validation_state"),
        "validation_codes": failures,
        "findings": found,
        "ingredient_codes": _ingredient_failures(store),
        "trust_list": (trust or shipped_trust()).source if (trust or shipped_trust()).anchors else None,
        "outcome": outcome(found, store.get("validation_state")),
        "declares": declares, "source_type": term, "tool": tool,
        "signer": {"subject": certificate.get("subject") or signature.get("common_name"),
                   "issuer": certificate.get("issuer") or signature.get("issuer")},
        "signed_at": signature.get("time"),
    }


def _labels(node: dict) -> list[str]:
    """The labels of the manifests in the tree (ingredients without a manifest of their own left out)."""
    own = [node["label"]] if node["label"] else []
    return own + [label for i in node["ingredients"] if i["manifest"] for label in _labels(i["manifest"])]
