"""Provenance beside the pixels: every asset (signed, edited after signing, generator metadata, camera, and a
stripped copy of each) through the reader, the app's event functions, the scan command and the HTTP API."""
from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from detectors import cli, provenance, service, views
from tests.fixtures import write_video
from tests.provenance_assets import build_assets, make_credentials, png_with_text, sign

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
    assert len(assets) == 14  # 7 cases and a stripped copy of each
    for asset in assets:
        _expected(asset, provenance.read(asset.path).to_dict())


def test_signed_picture_names_its_signer_issuer_actions_and_validation(assets):
    record = provenance.read(_by_name(assets)["signed_generated.jpg"].path)
    assert record.signer == {"subject": "CN=Provenance Test Signer, O=Deepfake Demo Tests",
                             "issuer": "CN=Provenance Test Root CA, O=Deepfake Demo Tests"}
    assert record.c2pa["actions"] == [{"action": "c2pa.created", "digital_source_type": "trainedAlgorithmicMedia",
                                       "software_agent": "Test Diffusion 3"}]
    assert record.c2pa["claim_generator"].startswith("provenance-tests 1.0")
    assert record.c2pa["validation_codes"] == ["signingCredential.untrusted"]  # no trust list offline, nothing else wrong
    edited = provenance.read(_by_name(assets)["edited_after_signing.jpg"].path)
    assert any("dataHash.mismatch" in code for code in edited.c2pa["validation_codes"])


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
    # 2 signed + 2 edited + parameters + XMP generated declare generation; 2 of them no longer match their signature.
    assert "provenance of 14 files: found 7, none 7, generated 6, composite 0, enhanced 0, captured 1, signed 2, broken 2" in err
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
