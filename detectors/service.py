"""What the app's events call: one shared Analyzer, uploads in, view-ready values out.

``app.py`` lays out the page and wires these functions; it holds no logic of its own. Bad input becomes a
``gradio.Error`` (a toast in the page, a clear message for API clients), never a traceback.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import numpy as np

from . import registry, views
from .media import DEFAULT_LIMITS, InputError, load_image, sample_frames
from .pipeline import Analyzer, FaceResult, ImageReport
from .spectrum import load_reference_band, log_spectrum


@functools.lru_cache(maxsize=1)
def analyzer() -> Analyzer:
    """Created once per process, on first use (the app calls it at start-up to warm up)."""
    loaded = registry.shared()
    return Analyzer(loaded.detectors, ensemble=registry.load_ensemble(loaded.detectors))


def detector_status() -> str:
    """One line per detector: loaded from where, or why not."""
    loaded = registry.shared()
    lines = [f"- **{d.display_name}**: `{d.config.architecture}/{d.config.variant}` from `{d.source}`" for d in loaded.detectors]
    lines += [f"- {message}" for message in loaded.messages]
    return "\n".join(lines) or "- no detector checkpoint found: only faces and spectra are shown"


def verdict_rows(face: FaceResult | None) -> list[list]:
    """Rows of the verdict table for one face: detector, probability of fake, verdict, threshold."""
    if face is None:
        return []
    by_name = {d.name: d for d in analyzer().detectors}
    rows = [[by_name[name].display_name, round(p, 3), face.verdicts.get(name, ""), round(by_name[name].threshold, 3)] for name, p in face.scores.items()]
    if face.ensemble is not None:
        rows.append(["Ensemble", round(face.ensemble, 3), face.verdict, ""])
    return rows


@functools.lru_cache(maxsize=1)
def reference_band():
    return load_reference_band()


@dataclass
class FaceView:
    """Everything the page shows for one face."""

    label: str
    crop: np.ndarray
    spectrum: np.ndarray
    rows: list[list]


def _face_views(report: ImageReport, prefix: str = "") -> list[FaceView]:
    views_ = []
    for i, face in enumerate(report.faces, start=1):
        what = "whole image (no face found)" if face.crop.face is None else f"face {i} ({face.crop.face.score:.0%} sure)"
        if face.ensemble is not None:
            what += f": {face.verdict} ({face.ensemble:.0%})"
        views_.append(FaceView(f"{prefix}{what}", face.crop.image, log_spectrum(face.crop.image), verdict_rows(face)))
    return views_


def _require(path: str | None, what: str) -> str:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    return path


TABLE_HEADERS = ["detector", "P(fake)", "verdict", "threshold"]


def figures(face_views: list[FaceView], index: int):
    """The verdict table and the two spectrum plots of the face at ``index`` (clamped into range)."""
    if not face_views:
        return [], None, None
    face = face_views[max(0, min(index, len(face_views) - 1))]
    return (
        face.rows,
        views.spectrum_heatmap(face.spectrum, title=f"2D FFT log-magnitude: {face.label}"),
        views.radial_profile_plot(face.spectrum, reference_band(), title=f"Radial profile: {face.label}"),
    )


@registry.gpu_entry
def analyse_image(path: str | None, whole_image_if_no_face: bool = False):
    """Returns (gallery items, face choices update, heatmap, profile, face views state, status text)."""
    try:
        image = load_image(_require(path, "an image"), DEFAULT_LIMITS)
    except InputError as error:
        raise gr.Error(str(error)) from None
    report = analyzer().analyze_image(image, whole_image_if_no_face=whole_image_if_no_face)
    face_views = _face_views(report)
    if not face_views:
        status = "No face found. Tick 'score the whole image' to analyse the picture as a whole."
    elif report.whole_image:
        status = "No face found: the whole image was analysed instead (results labelled as such)."
    else:
        status = f"{len(face_views)} face(s) found."
    if report.top is not None and report.top.ensemble is not None:
        status += f" Verdict: **{report.verdict}** (the most suspicious face decides)."
    return _outputs(face_views, status)


@registry.gpu_entry
def analyse_video(path: str | None, frame_count: int = 16, progress=gr.Progress()):
    try:
        progress(0.05, desc="decoding frames")
        frames = sample_frames(_require(path, "a video"), int(frame_count), DEFAULT_LIMITS)
    except InputError as error:
        raise gr.Error(str(error)) from None
    progress(0.4, desc=f"finding faces in {len(frames)} frames")
    reports = analyzer().analyze_frames(frames)
    face_views = [
        view
        for frame, report in zip(frames, reports)
        for view in _face_views(report, prefix=f"t={frame.timestamp:.2f}s ")
    ]
    with_face = sum(bool(r.faces) for r in reports)
    status = f"{len(frames)} frames sampled; a face in {with_face} of them."
    summary = analyzer().video_summary(reports)
    if summary is not None and summary.ensemble is not None:
        status += f" Verdict: **{summary.verdict}** ({summary.ensemble:.0%}, mean over frames)."
    return _outputs(face_views, status)


def _outputs(face_views: list[FaceView], status: str):
    """(gallery, face selector, verdict table, heatmap, profile, face views state, status)."""
    gallery = [(face.crop, face.label) for face in face_views]
    choices = [(face.label, i) for i, face in enumerate(face_views)]
    selector = gr.update(choices=choices, value=0 if choices else None, visible=len(choices) > 1)
    table, heatmap, profile = figures(face_views, 0)
    return gallery, selector, table, heatmap, profile, face_views, status


def select_face(face_views: list[FaceView] | None, index: int | None):
    return figures(face_views or [], int(index or 0))
