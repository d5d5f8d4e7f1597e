"""Plotly figures built from arrays. No model code here: the app and reports call these with results."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .spectrum import ReferenceBand, radial_profile

_LAYOUT = dict(margin=dict(l=40, r=10, t=40, b=40), height=320, template="plotly_white")


def spectrum_heatmap(spectrum: np.ndarray, title: str = "2D FFT log-magnitude") -> go.Figure:
    """The centred spectrum with axes in cycles per pixel (0 at the centre, +-0.5 at the edges)."""
    height, width = spectrum.shape
    fx = (np.arange(width) - width // 2) / width
    fy = (np.arange(height) - height // 2) / height
    figure = go.Figure(
        go.Heatmap(
            z=spectrum,
            x=fx,
            y=fy,
            colorscale="Viridis",
            colorbar=dict(title="log |F|", thickness=12),
            hovertemplate="fx %{x:.3f}, fy %{y:.3f}<br>log|F| %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(title=title, xaxis_title="horizontal frequency (cycles/px)", yaxis_title="vertical (cycles/px)", **_LAYOUT)
    figure.update_yaxes(scaleanchor="x", scaleratio=1)
    return figure


def radial_profile_plot(
    spectrum: np.ndarray, reference: ReferenceBand | None, title: str = "Radial spectrum profile"
) -> go.Figure:
    """This face's azimuthally averaged spectrum against the 5-95 % band and median of real faces."""
    frequency, profile = radial_profile(spectrum)
    figure = go.Figure()
    if reference is not None and len(reference.frequency) == len(frequency):
        figure.add_trace(go.Scatter(x=reference.frequency, y=reference.high, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
        figure.add_trace(
            go.Scatter(
                x=reference.frequency,
                y=reference.low,
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor="rgba(46, 139, 87, 0.25)",
                name=f"real faces 5-95 % (n={reference.count})",
            )
        )
        figure.add_trace(go.Scatter(x=reference.frequency, y=reference.median, mode="lines", line=dict(color="seagreen", dash="dash"), name="real faces median"))
    figure.add_trace(go.Scatter(x=frequency, y=profile, mode="lines", line=dict(color="crimson", width=2), name="this face"))
    figure.update_layout(
        title=title,
        xaxis_title="spatial frequency (cycles/px)",
        yaxis_title="mean log |F|",
        legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0),
        **_LAYOUT,
    )
    return figure
