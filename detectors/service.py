"""What the app's events call: one shared Analyzer, uploads in, view-ready values out.

``app.py`` lays out the page and wires these functions; it holds no logic of its own. Bad input becomes a
``gradio.Error`` (a toast in the page, a clear message for API clients), never a traceback.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import numpy as np

from . import views
from .media import DEFAULT_LIMITS, InputError, load_image, sample_frames
from .pipeline import Analyzer, ImageReport
from .spectrum import load_reference_band, log_spectrum


@functools.lru_cache(maxsize=1)
def analyzer() -> Analyzer:
    """Created once per process, on first use (the app calls it at start-up to warm up)."""
    return Analyzer()


@functools.lru_cache(maxsize=1)
def reference_band():
    return load_reference_band()


@dataclass
class FaceView:
    """Everything the page shows for one face."""

    label: str
    crop: np.ndarray
    spectrum: np.ndarray


def _face_views(report: ImageReport, prefix: str = "") -> list[FaceView]:
    views_ = []
    for i, face in enumerate(report.faces, start=1):
        what = "whole image (no face found)" if face.crop.face is None else f"face {i} ({face.crop.face.score:.0%} sure)"
        views_.append(FaceView(f"{prefix}{what}", face.crop.image, log_spectrum(face.crop.image)))
    return views_


def _require(path: str | None, what: str) -> str:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    return path


def figures(face_views: list[FaceView], index: int):
    """The two spectrum plots of the face at ``index`` (clamped into range)."""
    if not face_views:
        return None, None
    face = face_views[max(0, min(index, len(face_views) - 1))]
    return (
        views.spectrum_heatmap(face.spectrum, title=f"2D FFT log-magnitude: {face.label}"),
        views.radial_profile_plot(face.spectrum, reference_band(), title=f"Radial profile: {face.label}"),
    )


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
    heatmap, profile = figures(face_views, 0)
    return _outputs(face_views, heatmap, profile, status)


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
    heatmap, profile = figures(face_views, 0)
    return _outputs(face_views, heatmap, profile, status)


def _outputs(face_views: list[FaceView], heatmap, profile, status: str):
    gallery = [(face.crop, face.label) for face in face_views]
    choices = [(face.label, i) for i, face in enumerate(face_views)]
    selector = gr.update(choices=choices, value=0 if choices else None, visible=len(choices) > 1)
    return gallery, selector, heatmap, profile, face_views, status


def select_face(face_views: list[FaceView] | None, index: int | None):
    return figures(face_views or [], int(index or 0))
