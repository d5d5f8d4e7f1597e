"""Provenance beside the pixels: every asset (signed, edited after signing, an AI ingredient under a converting
parent, an expired certificate, generator metadata, camera, AI credit lines, and a stripped copy of each) through
the reader, the app's event functions, the scan command and the HTTP API; a test CA loaded as the trust list;
the codes' words; and four real producers' files (from ../shared/provenance, skipped where it is absent)."""
from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from pathlib import Path

from detectors import cli, credentials, provenance, service, views
from tests import provenance_assets
from tests.fixtures import write_video
from tests.provenance_assets import SIGNER_NAME, build_assets, encoded, make_credentials, png_with_text, sign

NO_PROGRESS = dict(progress=lambda *a, **k: None)


@pytest.fixture(scope="module")
def assets(tmp_path_factory, astronaut):
    return build_assets(tmp_path_factory.mktemp("provenance"), astronaut)


def _by_name(assets):
    return {asset.name: asset for asset in assets}


def _expected(asset, record: dict) -> None:
    """The record's provenance is what the asset carries, and its lead sentence says so."""
    assert (record["found"], record["kind"], record["declares"], record["validation"]) == (
        asset.kind is not None, asset.kind, asset.declares, asset.validation), asset.name
    assert re.search(asset.statement, record["statement"]), (asset.name, record["statement"])


def test_each_file_declares_what_it_carries(assets):
    assert len(assets) == 22  # 11 cases and a stripped copy of each
    for asset in assets:
        _expected(asset, provenance.read(asset.path).to_dict())


def test_signed_picture_names_its_signer_issuer_actions_and_validation(assets):
    record = provenance.read(_by_name(assets)["signed_generated.jpg"].path)
    assert record.signer == {"subject": "CN=Provenance Test Signer, O=Deepfake Demo Tests",
                             "issuer": "CN=Provenance Test Root CA, O=Deepfake Demo Tests"}
    assert record.c2pa["actions"] == [{"action": "c2pa.created", "digital_source_type": "trainedAlgorithmicMedia",
                                       "software_agent": "Test Diffusion 3"}]
    assert record.c2pa["claim_generator"].startswith("provenance-tests 1.0")
    assert record.c2pa["trust_list"] == "C2PA trust lists of 2026-08-21"
    assert record.c2pa["validation_codes"] == ["signingCredential.untrusted"]  # the test CA is on no list, nothing else wrong
    assert [f["family"] for f in record.c2pa["findings"]] == ["untrusted"] and record.chain == "created with Test Diffusion 3 (AI)"
    edited = provenance.read(_by_name(assets)["edited_after_signing.jpg"].path)
    assert any("dataHash.mismatch" in code for code in edited.c2pa["validation_codes"])
    assert edited.c2pa["findings"][0]["family"] == "changed" and "Content changed after signing" in edited.c2pa["findings"][0]["sentence"]


def test_ai_ingredient_inside_a_converting_parent_declares_generated(assets):
    """The active manifest only opens and converts; the AI "created" action sits in its ingredient's manifest."""
    record = provenance.read(_by_name(assets)["converted_from_ai.jpg"].path)
    assert (record.declares, record.source_type, record.generator) == ("generated", "trainedAlgorithmicMedia", "Test Diffusion 3")
    assert record.chain == "created with Test Diffusion 3 (AI) -> opened in Test Exporter, converted"
    assert record.c2pa["manifests"] == 2 and record.c2pa["ingredients"][0]["relationship"] == "parentOf"
    assert [a["action"] for a in record.c2pa["actions"]] == ["c2pa.opened", "c2pa.converted"]  # the active manifest's own


def test_an_ingredient_that_gives_only_its_source_type_counts():
    store = {"manifests": {"active": {"claim_generator_info": [{"name": "Editor"}], "assertions": [
        {"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.opened", "digitalSourceType": provenance_assets.IPTC + "compositeSynthetic"}]}}],
        "ingredients": [{"title": "sky.png", "relationship": "componentOf", "digital_source_type": provenance_assets.IPTC + "trainedAlgorithmicMedia"}]}}}
    node = credentials.walk(store, "active")
    assert credentials.declaration(node) == ("composite", "trainedAlgorithmicMedia", None)
    assert credentials.chain_text(node) == "opened in Editor [ingredient \u201csky.png\u201d: ingredient declared trainedAlgorithmicMedia (AI)]"
    store["manifests"]["active"]["ingredients"][0]["relationship"] = "parentOf"  # AI in the parent line: generated
    assert credentials.declaration(credentials.walk(store, "active"))[0] == "generated"


def test_expired_certificate_reads_expired_not_broken(assets):
    record = provenance.read(_by_name(assets)["expired_certificate.jpg"].path)
    assert record.validation == "expired" and "signingCredential.expired" in record.c2pa["validation_codes"]
    expired = next(f for f in record.c2pa["findings"] if f["family"] == "expired")
    assert "no time stamp records when the file was signed" in expired["sentence"]
    panel = views.provenance_html(record.to_dict())
    assert "provenance-warning" not in panel and "Certificate expired" in html.unescape(panel)
    assert provenance.matches(record.to_dict(), "signed") and not provenance.matches(record.to_dict(), "broken")


def test_a_test_anchor_loaded_as_the_trust_list_makes_the_signer_trusted(tmp_path, astronaut):
    test_credentials = make_credentials()
    path = tmp_path / "signed.jpg"
    path.write_bytes(sign(encoded(astronaut, "JPEG", quality=90), "image/jpeg", test_credentials))
    trusted = provenance.read(path, trust=credentials.TrustList(anchors=test_credentials.ca_pem))
    assert (trusted.validation, trusted.c2pa["validation_state"], trusted.c2pa["findings"]) == ("trusted", "Trusted", [])
    assert f"signed by {SIGNER_NAME}, signature valid, signer on the C2PA trust list" in trusted.statement
    for without in (None, credentials.TrustList(anchors="")):  # the shipped C2PA lists (no test CA there), no list at all
        untrusted = provenance.read(path, trust=without)
        assert untrusted.validation == "valid" and [f["family"] for f in untrusted.c2pa["findings"]] == ["untrusted"]
        assert "signer not on the trust list" in untrusted.statement


def test_trust_lists_reach_c2pa_through_the_readers_context_and_nothing_is_fetched(monkeypatch, tmp_path):
    shipped = credentials.TrustList.shipped()
    assert shipped.anchors.count("BEGIN CERTIFICATE") >= 20 and shipped.tsa.count("BEGIN CERTIFICATE") >= 10
    settings = shipped.settings()
    assert [a["trust_kind"] for a in settings["trust"]["anchors"]] == ["manifest", "tsa"]
    assert settings["verify"]["ocsp_fetch"] is False and settings["verify"]["remote_manifest_fetch"] is False
    assert settings["core"]["allowed_network_hosts"] == []
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("DEEPFAKE_C2PA_TRUST_LIST", str(empty))  # the documented way to replace the list
    monkeypatch.setenv("DEEPFAKE_C2PA_TSA_TRUST_LIST", str(empty))
    replaced = credentials.TrustList.shipped()
    assert (replaced.anchors, replaced.tsa, replaced.source) == ("", "", "") and "trust" not in replaced.settings()
    assert shipped.source == "C2PA trust lists of 2026-08-21"


def test_each_family_of_codes_has_its_own_words():
    def read(*codes):
        found = credentials.findings(list(codes), [], {})
        return credentials.outcome(found, "Invalid"), [f["family"] for f in found]

    assert read("assertion.dataHash.mismatch", "signingCredential.untrusted") == ("mismatch", ["changed", "untrusted"])
    assert read("assertion.boxesHash.mismatch") == ("mismatch", ["changed"])
    assert read("claimSignature.mismatch") == ("invalid", ["signature"])
    assert read("signingCredential.invalid", "signingCredential.untrusted") == ("off-profile", ["off-profile", "untrusted"])
    assert read("signingCredential.expired") == ("expired", ["expired"])
    assert read("assertion.action.malformed") == ("malformed", ["malformed"])
    assert read("signingCredential.ocsp.skipped", "signingCredential.untrusted") == ("valid", ["untrusted"])
    assert read("something.new") == ("failed", ["other"])  # not "signature not valid": the signature may be fine
    stamped = credentials.findings(["signingCredential.expired"], ["timeStamp.validated", "timeStamp.untrusted"],
                                   {"not_after": "2025-06-01T00:00:00+00:00", "timestamp": "2025-03-01T12:00:00+00:00"})
    assert "not on the trust list dates the signing to 2025-03-01 12:00:00, while the certificate was still valid" in stamped[0]["sentence"]
    for line, declares in (("Made with Google AI", "generated"), ("AI Generated Image", "generated"), ("Edited with Google AI", "enhanced"),
                           ("Created by Google Generative AI.", "generated"), ("Not AI-generated", None), ("Made with love", None)):
        assert credentials.ai_phrase_declares(line) == declares, line
    sentences = [sentence for *_, sentence in credentials.FAMILIES]
    assert sum("Signature broken" in sentence for sentence in sentences) == 1  # only where the signature itself fails


def test_event_functions_report_provenance_and_show_the_panel(assets):
    for asset in assets:
        *_, report, _ = service.analyse_image(str(asset.path))
        _expected(asset, report["provenance"])
        assert report["faces"]["count"] == 1, asset.name  # the pixels are analysed whatever the provenance says
        panel = service.provenance_panel(str(asset.path))
        assert f'data-declares="{asset.declares or "none"}"' in panel, asset.name
        assert re.search(asset.statement, html.unescape(panel)), asset.name
        assert ("provenance-warning" in panel) == (asset.validation == "mismatch"), asset.name
        if asset.kind is None:  # nothing found: one line, that absence says nothing
            assert panel.count("<div") == 1 and "absence says nothing" in panel
    assert service.provenance_panel(None) == ""


def test_provenance_is_never_blended_into_p_fake(assets):
    """A PNG and its stripped copy hold the same pixels: every number but the provenance must be the same."""
    for name in ("signed_generated.png", "sd_parameters.png"):
        *_, declared, _ = service.analyse_image(str(_by_name(assets)[name].path))
        *_, stripped, _ = service.analyse_image(str(_by_name(assets)[f"stripped_{name}"].path))
        assert declared["provenance"]["declares"] == "generated" and not stripped["provenance"]["found"]
        assert declared["scores"] and declared["scores"] == stripped["scores"], name
        assert (declared["ensemble"], declared["verdict"]) == (stripped["ensemble"], stripped["verdict"]), name


def test_video_with_content_credentials(tmp_path, astronaut):
    clip = write_video(tmp_path / "clip.mp4", frames=20, fps=10, size=(256, 256), codec="libx264", picture=astronaut)
    signed = tmp_path / "signed.mp4"
    signed.write_bytes(sign(clip.read_bytes(), "video/mp4", make_credentials()))
    *_, report, _ = service.analyse_video(str(signed), 4, **NO_PROGRESS)
    assert (report["provenance"]["kind"], report["provenance"]["validation"]) == ("c2pa", "valid")
    assert report["faces"]["count"] == 1
    assert 'data-kind="c2pa"' in service.provenance_panel(str(signed))  # the upload field holds the original
    assert 'data-kind="none"' in service.provenance_panel(str(clip))


def test_panel_escapes_what_the_file_says(tmp_path, astronaut):
    path = tmp_path / "script.png"
    path.write_bytes(png_with_text(astronaut, parameters="<script>alert(1)</script> Steps: 20, Model: <b>x</b>"))
    panel = views.provenance_html(provenance.report(path))
    assert "<script>" not in panel and "<b>x</b>" not in panel and "&lt;script&gt;" in panel


@pytest.fixture
def no_checkpoints(monkeypatch, tmp_path):
    """Provenance does not depend on the detectors: scan without them (fast)."""
    from detectors import registry

    monkeypatch.setattr(registry, "ASSETS", tmp_path / "none")


def _scan(capsys, *args) -> tuple[int, str, str]:
    status = cli.main(["scan", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_scan_records_filter_and_count_by_provenance(assets, capsys, no_checkpoints):
    folder = assets[0].path.parent
    status, out, err = _scan(capsys, folder, "--provenance-summary")
    assert status == 0
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.splitlines())}
    assert set(records) == {asset.name for asset in assets}
    for asset in assets:
        _expected(asset, records[asset.name]["provenance"])
    # 2 signed + 2 edited + converted + expired + parameters + XMP + credit line declare generation; 2 no longer match.
    assert "provenance of 22 files: found 11, none 11, generated 9, composite 0, enhanced 1, captured 1, signed 4, broken 2" in err
    for what, names in (("generated", {a.name for a in assets if a.declares == "generated"}),
                        ("broken", {"edited_after_signing.jpg", "edited_after_signing.png"}),
                        ("captured", {"xmp_camera.jpg"}),
                        ("none", {a.name for a in assets if a.kind is None})):
        status, out, _ = _scan(capsys, folder, "--provenance", what)
        assert status == 0 and {json.loads(line)["path"].rsplit("/", 1)[-1] for line in out.splitlines()} == names, what
    status, out, _ = _scan(capsys, folder, "--format", "csv")
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(io.StringIO(out))}
    signed = rows["signed_generated.png"]
    assert (signed["provenance_kind"], signed["provenance_declares"], signed["provenance_validation"]) == ("c2pa", "generated", "valid")
    assert signed["provenance_signer"] == "CN=Provenance Test Signer, O=Deepfake Demo Tests"
    assert rows["stripped_signed_generated.png"]["provenance_kind"] == ""


@pytest.mark.slow
def test_api_report_through_gradio_client(app_server, assets):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    for asset in assets:
        report = client.predict(handle_file(str(asset.path)), False, False, api_name="/detect_image")[-1]
        _expected(asset, report["provenance"])


# -- real producers' files ---------------------------------------------------------------------------------------
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "provenance" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provenance/samples is not beside the checkout")
# file -> (declares, validation, a regular expression the statement or chain must match)
PRODUCERS = {
    "microsoft__c2pa-extension-validator__DALL-E_cloud_surfing_puppy.webp": ("generated", "valid", r"generated by AI with DALL\u00b7E"),
    "microsoft__c2pa-extension-validator__bing_creator_cloud_surfing_puppy.jpg": ("generated", "off-profile", r"certificate is not valid for C2PA signing"),
    "manutej__nanobanana-repo__00_Professional_technical_diagram.png": ("generated", "trusted", r"signer on the C2PA trust list"),
    "contentauth__c2pa-rs__ocsp.jpg": ("composite", "valid", r"contains AI-generated parts with Adobe Firefly"),
}


def _producer_checks(name: str, record: dict) -> None:
    declares, validation, statement = PRODUCERS[name]
    assert (record["kind"], record["declares"], record["validation"]) == ("c2pa", declares, validation), (name, record["statement"])
    assert re.search(statement, record["statement"]), (name, record["statement"])
    assert "Signature not valid" not in record["statement"] and "signature not valid" not in record["statement"], name
    if "DALL-E" in name:
        assert record["chain"] == "created with DALL\u00b7E (AI), converted by OpenAI-API -> signed by ChatGPT"
    if "bing" in name:
        assert [f["family"] for f in record["c2pa"]["findings"]][0] == "off-profile"
        assert "signingCredential.invalid" in record["c2pa"]["validation_codes"]
    if "ocsp" in name:
        assert "[ingredient \u201cocsp.jpg\u201d: created with Adobe Firefly (AI)]" in record["chain"]


@needs_samples
def test_producers_files_through_the_event_functions():
    for name in PRODUCERS:
        path = str(SAMPLES / name)
        *_, report, _ = service.analyse_image(path, True)
        _producer_checks(name, report["provenance"])
        panel = html.unescape(service.provenance_panel(path))
        assert "provenance-warning" not in panel and "Chain:" in panel, name  # nothing here says "forged"
        assert ("Validation codes from c2pa" in panel) == (PRODUCERS[name][1] != "trusted"), name  # the raw codes, disclosed
        if "bing" in name:
            assert "Certificate not valid for C2PA signing" in panel and "signingCredential.invalid" in panel


@needs_samples
def test_producers_files_through_scan(capsys, no_checkpoints):
    status, out, err = _scan(capsys, SAMPLES, "--provenance-summary")
    assert status == 0
    records = {r["path"].rsplit("/", 1)[-1]: r["provenance"] for r in map(json.loads, out.splitlines())}
    for name in PRODUCERS:
        _producer_checks(name, records[name])
    assert "generated 3, composite 1" in err and "signed 4, broken 0" in err


@needs_samples
@pytest.mark.slow
def test_producers_files_through_gradio_client(app_server):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    for name in PRODUCERS:
        report = client.predict(handle_file(str(SAMPLES / name)), True, False, api_name="/detect_image")[-1]
        _producer_checks(name, report["provenance"])
