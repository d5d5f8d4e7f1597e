"""The bad-input corpus through the scan CLI and through the app's event functions: 0 crashes, 0 hangs, and
every case either a correct result or a specific message. Plus a bounded fuzz of the decoders."""
from __future__ import annotations

import html
import json
import re
import time

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import cli, service
from detectors.media import InputError, load_image, printable, probe_video, sample_frames
from tests.bad_inputs import build_corpus

PER_FILE_SECONDS = 60  # a hang would be far beyond this; the slowest case (5000x5000) takes ~2 s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def test_corpus_through_the_scan_cli(corpus, tmp_path, capsys):
    out = tmp_path / "records.jsonl"
    started = time.monotonic()
    status = cli.main(["scan", *(str(case.path) for case in corpus), "--frames", "4", "-o", str(out)])
    elapsed = time.monotonic() - started
    assert status == 2  # some inputs are unreadable; every other one still gets its record
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(corpus)
    for case, record in zip(corpus, records):
        assert record["path"] == printable(str(case.path))  # a non-UTF-8 name is spelled with \\xNN escapes
        assert record["provenance"]["statement"], case.name  # read for every file, even one whose pixels fail
        if case.provenance:
            said = " ".join([record["provenance"]["statement"], *record["provenance"]["notes"]])
            assert re.search(case.provenance, said), (case.name, said)
        if case.error:
            assert record["error"] and re.search(case.error, record["error"]), (case.name, record["error"])
            assert printable(case.path.name) in record["error"]  # the message names the file
        else:
            assert record["error"] is None, (case.name, record["error"])
            assert record["kind"] == case.kind, case.name
            assert record["faces"]["count"] == case.faces, (case.name, record["faces"])
            if case.faces:
                assert record["verdict"] in ("fake", "real", "uncertain") and len(record["scores"]) == 4
            else:
                assert record["verdict"] == "no-face"
    assert elapsed < PER_FILE_SECONDS * len(corpus)


def test_corpus_through_the_app(corpus):
    """Image tab: pictures give results, everything else a specific gr.Error; same for the video tab."""
    service.analyzer()  # loading and tracing the models once is not part of any case's time
    for case in corpus:
        started = time.monotonic()
        panel = html.unescape(service.provenance_panel(str(case.path)))  # shown on choosing the file, whatever follows
        assert 'class="provenance"' in panel, case.name
        if case.provenance:
            assert re.search(case.provenance, panel), (case.name, panel)
        if case.kind == "image":
            summary, gallery, *_, report, _ = service.analyse_image(str(case.path))
            assert report["faces"]["count"] == case.faces, case.name
            assert ("No face found" in summary) == (case.faces == 0)
        else:
            with pytest.raises(gr.Error) as caught:
                service.analyse_image(str(case.path))
            expected = "is a video: analyse it in the Video tab" if case.content == "video" else case.error
            assert re.search(expected, caught.value.message), (case.name, caught.value.message)
        if case.kind == "video":
            summary, timeline, gallery, *_, report, _ = service.analyse_video(str(case.path), 4, progress=lambda *a, **k: None)
            assert report["faces"]["count"] == case.faces and len(timeline.data) == 5, case.name
        else:
            with pytest.raises(gr.Error) as caught:
                service.analyse_video(str(case.path), 4, progress=lambda *a, **k: None)
            expected = "is a picture, not a video: analyse it in the Image tab" if case.content == "image" else case.error
            assert re.search(expected, caught.value.message), (case.name, caught.value.message)
        assert time.monotonic() - started < PER_FILE_SECONDS, case.name


FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096), header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"]))
def test_fuzz_image_decoder(tmp_path_factory, data, header):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.img"
    path.write_bytes(header + data)
    try:
        image = load_image(path)
    except InputError as error:
        assert str(error)
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096), header=st.sampled_from([b"", b"\x00\x00\x00\x18ftypisom", b"\x1a\x45\xdf\xa3", b"RIFF\x00\x00\x00\x00AVI "]))
def test_fuzz_video_decoder(tmp_path_factory, data, header):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.vid"
    path.write_bytes(header + data)
    try:
        probe_video(path)
        frames = sample_frames(path, 4)
    except InputError as error:
        assert str(error)
    else:
        assert all(frame.image.ndim == 3 for frame in frames)
