"""What the app's events call: one shared Analyzer, uploads in, view-ready values out.

``app.py`` lays out the page and wires these functions; it holds no logic of its own. Bad input becomes a
``gradio.Error`` (a toast in the page, a clear message for API clients), never a traceback.

Each analysis returns the page's views and a JSON report; the report is the scan CLI's record
(``records.api_record``: without ``path`` and ``error``, with the picture's ``size`` and each face's re-synthesis
error summary), so API clients, the CLI and the page agree on every number.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from . import about, explain, models, provenance, records, registry, views
from .calibration import CLIP_RULES
from .media import DEFAULT_LIMITS, InputError, Picture, browser_playable, browser_preview, detect_kind, probe_video, sample_frames
from .pipeline import AGGREGATION_RULES, Analyzer, FaceResult, ImageReport, detector_workers
from .robustness import probe
from .spectrum import face_side, load_reference_bands, log_spectrum

log = logging.getLogger(__name__)
FAILURE_MESSAGE = ("The analysis failed on our side, not because of your file's content. Try again; if it fails again, "
                   "try another file, a smaller picture or fewer frames. The server log has the details.")

_COUNT_WORDS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def intro_markdown() -> str:
    """The page's opening paragraph; it names and counts the registered detectors (their specs)."""
    names = [spec.display_name for spec in models.specs()]
    count = _COUNT_WORDS[len(names)] if len(names) < len(_COUNT_WORDS) else str(len(names))
    return (
        f"{count} published detector{'s' if len(names) != 1 else ''} ({', '.join(names)}), re-implemented and trained by us, "
        "score every face MTCNN finds. You see each detector's calibrated verdict, the ensemble's evidence level (from "
        "likely real to likely fake) with how often that level was right on faces from sources we never trained on, "
        "what the file itself declares about its origin, the face's Fourier spectrum against real faces and where "
        "super-resolution fails to re-create it. "
        "**A verdict is evidence, not proof.** Nothing you upload is kept."
    )


TABLE_HEADERS = ["detector", "P(fake)", "verdict", "fake at or above", "real below"]  # between the two: uncertain
PROBE_HEADERS = ["change", "detector", "P(fake) before", "after", "verdict before", "after", "flipped"]


def raw_upload(component: gr.Image | gr.File) -> gr.Image | gr.File:
    """Make an upload field hand the uploaded file to our own decoders untouched.

    The stock image component decodes the upload with PIL before any handler runs, so a corrupt file or a
    decompression bomb failed with PIL's words; :class:`detectors.media.Picture` checks limits first and
    says what is wrong. The stock file component refuses a file by its extension; ours decide by content
    (a picture on the Video tab is told to go to the Image tab). Overridden on the instance rather than in a subclass: Gradio writes a ``.pyi`` stub
    next to the source of every component subclass, and the app must not write into its own folder.
    """
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component


def event_handler(function):
    """What every event function is wrapped in: a ``gr.Error`` (bad input, said plainly) passes through; any
    other exception is a bug of ours, so the user gets :data:`FAILURE_MESSAGE` instead of Python's words, and the
    server log keeps the traceback. The server goes on serving either way."""

    @functools.wraps(function)  # keeps the signature: Gradio reads the progress parameter from it
    def handle(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except Exception:
            log.exception("event %s failed", function.__name__)
            raise gr.Error(FAILURE_MESSAGE) from None

    return handle


@functools.lru_cache(maxsize=1)
def analyzer() -> Analyzer:
    """Created once per process, on first use (the app calls it at start-up, then warms the models up)."""
    loaded = registry.shared()
    workers = detector_workers(loaded.detectors)
    if workers > 1:
        import torch

        # Requests are served side by side too: face search gets one core per request instead of two.
        torch.set_num_threads(1)
    return Analyzer(loaded.detectors, ensemble=registry.load_ensemble(loaded.detectors), workers=workers)


def warm_up(passes: int = 3) -> None:
    """A few passes of every model on a blank crop: TorchScript specialises its graphs during the first runs,
    and the first user should not pay for that."""
    from .faces import whole_image_crop
    from .preprocess import CROP_SIZE

    blank = whole_image_crop(np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8), CROP_SIZE)
    for _ in range(passes):
        analyzer().score_crops([blank])


def detector_status() -> str:
    """One line per detector: loaded from where, or why not."""
    loaded = registry.shared()
    lines = [f"- **{d.display_name}**: `{d.config.architecture}/{d.config.variant}` from `{d.source}`" for d in loaded.detectors]
    lines += [f"- {message}" for message in loaded.messages]
    if not lines:
        return "- no detector checkpoint found: only faces and spectra are shown"
    if analyzer().ensemble is None:
        lines.append("- Ensemble rule not loaded (missing, or it does not match its pinned sha256): the ensemble is the mean "
                     "probability and the verdict a strict majority of the detectors")
    else:
        lines.append(f"- Ensemble: logistic regression on the detectors' logits (`{registry.ENSEMBLE_FILE}`)")
    return "\n".join(lines)


def _display_names() -> dict[str, str]:
    return {**{d.name: d.display_name for d in analyzer().detectors}, "ensemble": "Ensemble"}


def _band_cells(thresholds) -> list:
    """(fake at or above, real below): the edges of the uncertain band that decide a verdict."""
    fake_from = max(thresholds.decision, thresholds.uncertain_high)
    real_below = min(thresholds.decision, thresholds.uncertain_low)
    return [round(fake_from, 3), round(real_below, 3)]


def verdict_rows(face: FaceResult | None) -> list[list]:
    """Rows of the verdict table for one face: detector, probability of fake, verdict, and the band's edges."""
    if face is None:
        return []
    by_name = {d.name: d for d in analyzer().detectors}
    rows = [[by_name[name].display_name, round(p, 3), face.verdicts.get(name, ""), *_band_cells(by_name[name].config.thresholds)]
            for name, p in face.scores.items()]
    if face.ensemble is not None:
        ensemble = analyzer().ensemble
        levels = getattr(getattr(ensemble, "rule", None), "levels", None)
        if levels is not None:  # the ensemble's "likely" edges; the leaning levels sit inside the band
            band = [round(levels.likely_fake, 3), round(levels.likely_real, 3)]
        else:
            band = _band_cells(ensemble.thresholds) if ensemble is not None else ["majority", "majority"]
        rows.append(["Ensemble", round(face.ensemble, 3), face.level or face.verdict, *band])
    return rows


def agreement(face: FaceResult) -> tuple[int, int]:
    """(detectors whose own verdict is on the side the ensemble's level leans to, detectors scored); for an
    uncertain level, the detectors that are uncertain too."""
    verdicts = list(face.verdicts.values())
    side = (face.level or face.verdict or "uncertain").split()[-1]
    return verdicts.count(side), len(verdicts)


def level_meanings(clip: bool = False) -> dict[str, dict] | None:
    """Each level's measured meaning on validation, from the shipped ensemble rule (None without one); for a clip
    (``clip``), the clip levels' meaning on validation clips when the rule has a clip rule."""
    rule = analyzer().clip_rule
    if clip and rule is not None:
        return rule.meanings
    return getattr(analyzer().ensemble, "meanings", None)


@functools.lru_cache(maxsize=1)
def reference_bands():
    return load_reference_bands()


@dataclass(eq=False)
class FaceView:
    """Everything the page shows for one face (kept in the session's state for the face selector)."""

    label: str
    crop: np.ndarray
    spectrum: np.ndarray
    rows: list[list]
    face_side: int  # the face square's side in picture pixels: picks the real faces' band of its size
    error: explain.ErrorMap | None = None
    record: dict = field(default_factory=dict)  # its entry in the report's faces.boxes

    @property
    def record_extras(self) -> dict:
        """What the app adds to the face's entry in the record (``records.FACE_FIELDS``)."""
        return {"reconstruction_error": self.error.summary()} if self.error else {}


def _resynthesis():
    """The detector whose model re-creates faces (the error map's source), if one is loaded."""
    return next((d for d in analyzer().detectors if hasattr(getattr(d, "model", None), "error_heatmap")), None)


def _face_views(report: ImageReport, prefix: str = "") -> list[FaceView]:
    resynthesis = _resynthesis()
    errors = explain.reconstruction_error(resynthesis, [f.crop.image for f in report.faces]) if resynthesis else []
    out = []
    for i, face in enumerate(report.faces):
        what = "whole image (no face found)" if face.crop.face is None else f"face {i + 1} ({face.crop.face.score:.0%} sure)"
        if face.ensemble is not None:
            what += f": {face.level or face.verdict} ({face.ensemble:.0%})"
        error = errors[i] if errors else None
        view = FaceView(f"{prefix}{what}", face.crop.image, log_spectrum(face.crop.image), verdict_rows(face), face_side(face.crop), error)
        view.record = face.to_dict(**view.record_extras)
        out.append(view)
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _require(path: str | None, what: str) -> str:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    return path


def cam_images(crop: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Grad-CAM of every loaded detector on one crop, as overlay images with captions."""
    out = []
    for detector in analyzer().detectors:
        cam = explain.grad_cam(detector, crop)
        if cam is None:
            continue
        if cam.max() > 0:
            out.append((views.heat_overlay_image(crop, cam), f"{detector.display_name}: where the fake logit looks"))
        else:
            # Rectified Grad-CAM is zero where every region lowers the fake logit (typical for a face the detector
            # finds real): an all-blue overlay would read as a map, so show the crop and say so.
            out.append((crop, f"{detector.display_name}: no region raises the fake logit"))
    return out


def figures(face_views: list[FaceView], index: int, with_cam: bool = False):
    """(verdict table, 2D FFT, radial profile, error map, Grad-CAM gallery) of the face at ``index`` (clamped)."""
    if not face_views:
        return [], None, None, None, []
    face = face_views[max(0, min(int(index), len(face_views) - 1))]
    short = face.label.split(":")[0]
    error = views.error_map_figure(face.crop, face.error.error, face.error.summary(), f"Re-synthesis error, {short}") if face.error else None
    cams = cam_images(face.crop) if with_cam else []
    bands = reference_bands()
    return (
        face.rows,
        views.spectrum_heatmap(face.spectrum, title=f"2D FFT, {short}"),
        views.radial_profile_plot(face.spectrum, bands.for_face(face.face_side) if bands else None, title=f"Radial profile, {short}"),
        error,
        cams,
    )


def _picture(path: str | None) -> Picture:
    """The uploaded picture, header checked (decoded later, only as far as each step needs)."""
    try:
        path = _require(path, "an image")
        if detect_kind(path, DEFAULT_LIMITS) == "video":
            raise InputError(f"{Path(path).name} is a video: analyse it in the Video tab")
        picture = Picture(path, DEFAULT_LIMITS)
        picture.decoded(picture.reduction_for(analyzer().cropper.max_detect_side))  # a corrupt file says so here
        return picture
    except InputError as error:
        raise gr.Error(str(error)) from None


@registry.gpu_entry
@event_handler
def analyse_image(path: str | None, whole_image_if_no_face: bool = False, with_cam: bool = False):
    """(summary, gallery, face selector, table, FFT, profile, error map, Grad-CAM, JSON report, state)."""
    picture = _picture(path)
    try:
        report = analyzer().analyze_picture(picture, whole_image_if_no_face=whole_image_if_no_face)
    except InputError as error:  # a file that breaks past its first decoded part
        raise gr.Error(str(error)) from None
    face_views = _face_views(report)
    analysis = Analyzer.image_record(report, [view.record_extras for view in face_views])
    record = records.api_record(kind="image", size=list(picture.size), **analysis, level_meaning=analyzer().level_meaning(analysis["level"]),
                                provenance=provenance.report(picture.path))
    if not face_views:
        summary = views.notice_html("No face found", "Tick <b>score the whole image</b> and analyse again to score the picture as a whole (results are labelled as such).")
    else:
        note = "No face found: the whole picture was scored instead." if report.whole_image else (
            f"{len(face_views)} faces: the picture's verdict is that of the most suspicious face." if len(face_views) > 1 else "")
        summary = views.verdict_cards_html(_cards(report.faces, face_views), headline=_headline(report.top), note=note)
    index = report.top_index or 0
    return (summary, *_face_outputs(face_views, index, with_cam), record, face_views)


def _headline(top: FaceResult | None, clip: bool = False) -> dict | None:
    """The summary's headline for a face, or for a clip's summary (``clip``): with a clip rule, the clip's score,
    level and what the clip levels meant on validation clips."""
    if top is None or top.ensemble is None:
        return None
    agree, total = agreement(top)
    headline = {"verdict": top.verdict, "level": top.level, "probability": top.ensemble, "agree": agree, "total": total,
                "meanings": level_meanings(clip), "set_names": views.SET_TITLES}
    rule = analyzer().clip_rule
    if clip and rule is not None:
        headline.update(unit="clips", score_name=CLIP_SCORE_NAMES.get(rule.rule, "clip score"))
    return headline


# What the headline calls a clip's score under each clip rule (calibration.CLIP_RULES)
CLIP_SCORE_NAMES = {"mean": "mean P(fake) of its frames", "trimmed": "trimmed mean P(fake) of its frames",
                    "share": "share of frames leaning fake", "pool": "clip P(fake)"}


def _cards(faces: list[FaceResult], face_views: list[FaceView]) -> list[dict]:
    cards = []
    for face, view in zip(faces, face_views):
        agree, total = agreement(face)
        cards.append({"label": view.label.split(":")[0], "verdict": face.verdict, "level": face.level,
                      "probability": face.ensemble, "agree": agree, "total": total})
    return cards


def _face_outputs(face_views: list[FaceView], index: int, with_cam: bool):
    """(gallery, face selector, table, FFT, profile, error map, Grad-CAM) with face ``index`` selected."""
    gallery = [(face.crop, face.label) for face in face_views]
    choices = [(face.label, i) for i, face in enumerate(face_views)]
    selector = gr.update(choices=choices, value=index if choices else None, visible=len(choices) > 1)
    return (gallery, selector, *figures(face_views, index, with_cam))


PREVIEW_SECONDS = 30


@event_handler
def video_preview(path: str | None):
    """For a newly chosen video: (what the player shows, a note under it).

    The player is a separate, display-only component and only ever gets a file the browser can play: the upload
    itself, or for a clip browsers cannot play (AVI, HEVC, MPEG-4 Part 2 ...) an H.264 copy of its first seconds.
    So the player never loads a file it must refuse, and never raises its "Video not playable" alarm. The analysis
    reads the upload field, which always holds the original."""
    try:
        if not path or detect_kind(path, DEFAULT_LIMITS) != "video":
            return None, ""
        if browser_playable(path, DEFAULT_LIMITS):
            return path, ""
        codec = probe_video(path, DEFAULT_LIMITS).codec.upper()
        preview = browser_preview(path, Path(path).with_name(f"{Path(path).stem}.preview.mp4"), PREVIEW_SECONDS)
    except InputError:
        return None, ""  # Analyse says what is wrong with the file
    note = views.notice_html("Preview", f"Browsers cannot play this file ({codec}, {Path(path).suffix.lstrip('.').upper() or 'no extension'}), "
                             f"so the player shows an H.264 copy of its first {PREVIEW_SECONDS} s. The analysis reads your original file.")
    return str(preview), note


@registry.gpu_entry
@event_handler
def analyse_video(path: str | None, frame_count: int = 16, rule: str = "mean", with_cam: bool = False, progress=gr.Progress()):
    """(summary, timeline, gallery, face selector, table, FFT, profile, error map, Grad-CAM, JSON report, state).

    ``path`` is the upload as it came (the page's upload field, never the player's preview copy)."""
    if rule not in AGGREGATION_RULES:
        raise gr.Error(f"Unknown aggregation rule {rule!r}; choose one of: {', '.join(AGGREGATION_RULES)}.")
    try:
        progress(0.05, desc="decoding frames")
        path = _require(path, "a video")
        if detect_kind(path, DEFAULT_LIMITS) == "image":
            raise InputError(f"{Path(path).name} is a picture, not a video: analyse it in the Image tab")
        frames = sample_frames(path, int(frame_count), DEFAULT_LIMITS)
    except InputError as error:
        raise gr.Error(str(error)) from None
    progress(0.3, desc=f"finding and scoring faces in {len(frames)} frames")
    reports = analyzer().analyze_frames(frames)
    progress(0.8, desc="building views")
    face_views, tops = [], []
    for frame, report in zip(frames, reports):
        frame_views = _face_views(report, prefix=f"t={frame.timestamp:.2f}s ")
        if report.top is not None:
            tops.append((report.top.suspicion, len(face_views) + report.top_index))
        face_views += frame_views
    analysis = analyzer().video_record(frames, reports, rule)
    record = records.api_record(kind="video", **analysis, level_meaning=analyzer().level_meaning(analysis["level"], clip=True),
                                provenance=provenance.report(path))
    with_face = sum(bool(r.faces) for r in reports)
    summary_face = analyzer().video_summary(reports, rule)
    index = max(tops, key=lambda top: top[0])[1] if tops else 0  # ties (repeated frames): the earliest
    if summary_face is None:
        summary = views.notice_html("No face found", f"None of the {_count(len(frames), 'sampled frame')} shows a face the detector is sure of (confidence >= 0.9).")
    else:
        clip_rule = analyzer().clip_rule
        level_from = (f"The clip's level: {CLIP_RULES[clip_rule.rule]}, on levels fitted on validation clips. "
                      f"Each detector's own row: " if clip_rule is not None else "")
        note = (f"{_count(len(frames), 'frame')} sampled, a face in {with_face}. {level_from}Aggregation: <b>{rule}</b>: "
                f"{AGGREGATION_RULES[rule]}. Below: the most suspicious frame's face.")
        summary = views.verdict_cards_html([], headline=_headline(summary_face, clip=True), note=note)
    names = _display_names()
    series = {d.name: [r.top.scores.get(d.name) if r.top else None for r in reports] for d in analyzer().detectors}
    if analyzer().detectors:
        series["ensemble"] = [r.top.ensemble if r.top else None for r in reports]
    ensemble = analyzer().ensemble
    timeline = views.timeline_figure([f.timestamp for f in frames], series, names,
                                     threshold=getattr(ensemble, "threshold", None))
    return (summary, timeline, *_face_outputs(face_views, index, with_cam), record, face_views)


@event_handler
def provenance_panel(path: str | None) -> str:
    """The Provenance panel for a chosen file, shown as soon as it is chosen and whether or not its pixels
    decode (the upload field holds the original file; the player only a playable copy, see :func:`video_preview`)."""
    return views.provenance_html(provenance.report(path)) if path else ""


# The examples gallery caches its results; Gradio 6 cannot cache a component *update* (the face selector's
# choices), so the cached outputs are the plain values: summary, faces, table, three figures, JSON report.
EXAMPLE_OUTPUTS = (0, 1, 3, 4, 5, 6, 8)  # positions in analyse_image's outputs
VIDEO_EXAMPLE_OUTPUTS = (0, 1, 2, 4, 5, 6, 7, 9)  # positions in analyse_video's outputs


def analyse_image_example(path: str):
    """An example picture with the default settings, for the examples gallery (cached; no session state)."""
    outputs = analyse_image(path)
    return tuple(outputs[i] for i in EXAMPLE_OUTPUTS)


def analyse_video_example(path: str):
    outputs = analyse_video(path, 16, "mean", False, progress=lambda *a, **k: None)
    return tuple(outputs[i] for i in VIDEO_EXAMPLE_OUTPUTS)


def forget_faces():
    """(face selector, face views state) for a newly chosen file: nothing to choose yet."""
    return gr.update(choices=[], value=None, visible=False), []


def empty_image_outputs():
    """analyse_image's outputs with nothing in them: shown while an analysis runs, so that a failure never
    leaves the previous file's result on the page under the error, and when another file is chosen."""
    return ("", *_face_outputs([], 0, False), None, [])


def empty_video_outputs():
    return ("", None, *_face_outputs([], 0, False), None, [])


@event_handler
def select_face(face_views: list[FaceView] | None, index: int | None, with_cam: bool = False):
    return figures(face_views or [], int(index or 0), with_cam)


@registry.gpu_entry
@event_handler
def robustness_probe(path: str | None, whole_image_if_no_face: bool = False):
    """(summary, table): the picture re-scored after JPEG 75 and a 0.5x resize; the table shows once there is one."""
    picture = _picture(path)  # decoded as Analyse decodes it: the probe's "before" is Analyse's result
    try:
        rows = probe(analyzer(), picture, whole_image_if_no_face)
    except InputError as error:  # a file that breaks past its first decoded part
        raise gr.Error(str(error)) from None
    if not rows:
        return views.notice_html("Nothing to probe", "No detector is loaded."), gr.update(value=[], visible=False)
    if all(r.original is None for r in rows):
        return (views.notice_html("Nothing probed", "No face was found in the picture. Tick <b>score the whole image</b> "
                                  "to probe the picture as a whole."), gr.update(value=[], visible=False))
    names = _display_names()
    fmt = lambda v: "" if v is None else round(v, 3)  # noqa: E731
    table = [[r.perturbation, names.get(r.scorer, r.scorer), fmt(r.original), fmt(r.perturbed), r.original_verdict,
              r.perturbed_verdict, "FLIPPED" if r.flipped else ""] for r in rows]
    flipped = [r for r in rows if r.flipped]
    if not flipped:
        text = views.notice_html("Stable", f"No verdict changed under {', '.join(dict.fromkeys(r.perturbation for r in rows))}.")
    else:
        which = ", ".join(f"{names.get(r.scorer, r.scorer)} under {r.perturbation}" for r in flipped)
        text = views.notice_html(f"{len(flipped)} of {len(rows)} verdicts flipped", f"{which}. Treat these verdicts with caution.", tone="warn")
    return text, gr.update(value=table, visible=True)


def about_markdown() -> str:
    """The 'About the detectors' panel, from each loaded detector's spec and its checkpoint's config (``about``)."""
    parts = [about.about_entry(d) for d in analyzer().detectors]
    if not parts:
        return "No detector is loaded."
    return "\n\n".join(parts)
