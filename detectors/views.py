"""Plotly figures, overlay images and small HTML blocks built from arrays and results. No model code here (the
detectors' colours come from their specs)."""
from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go

from . import models
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
    """This face's azimuthally averaged spectrum against the 5-95 % band and median of real faces whose face
    squares are its size; the legend says which size and which sources (with their face counts)."""
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
                name=f"real faces 5-95 %, {reference.size_label} (n={reference.count})<br>{reference.sources_label}",
            )
        )
        figure.add_trace(go.Scatter(x=reference.frequency, y=reference.median, mode="lines", line=dict(color="seagreen", dash="dash"), name="real faces median"))
    figure.add_trace(go.Scatter(x=frequency, y=profile, mode="lines", line=dict(color="crimson", width=2), name="this face"))
    figure.update_layout(
        title=title,
        xaxis_title="spatial frequency (cycles/px)",
        yaxis_title="mean log |F|",
        legend=dict(x=0.99, xanchor="right", y=0.99, yanchor="top", bgcolor="rgba(255,255,255,0.7)", font=dict(size=10)),
        **_LAYOUT,
    )
    return figure


def overlay_figure(crop: np.ndarray, heat: np.ndarray, title: str, colour_title: str, colorscale: str = "Inferno",
                   zmax: float | None = None, opacity: float = 0.55) -> go.Figure:
    """A heat map laid over the face crop it was computed on, with its colour scale."""
    height, width = heat.shape
    figure = go.Figure(go.Image(z=crop, hoverinfo="skip"))
    figure.add_trace(
        go.Heatmap(
            z=heat,
            x=np.arange(width),
            y=np.arange(height),
            colorscale=colorscale,
            zmin=0.0,
            zmax=zmax if zmax is not None else float(np.percentile(heat, 99.5)) or 1.0,
            opacity=opacity,
            colorbar=dict(title=colour_title, thickness=12),
            hovertemplate="x %{x}, y %{y}<br>%{z:.4f}<extra></extra>",
        )
    )
    figure.update_layout(title=title, **_LAYOUT)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, scaleanchor="x", scaleratio=1, autorange="reversed")
    return figure


def error_map_figure(crop: np.ndarray, error: np.ndarray, summary: dict[str, float], title: str = "Re-synthesis error") -> go.Figure:
    """The super-resolution reconstruction error over the face, with its mean / p95 / max in the title."""
    numbers = f"mean {summary['mean']:.4f} · p95 {summary['p95']:.4f} · max {summary['max']:.4f}"
    return overlay_figure(crop, error, f"{title}<br><sup>|SR(x/4) - x|: {numbers}</sup>", "|error|")


def cam_figure(crop: np.ndarray, cam: np.ndarray, title: str) -> go.Figure:
    return overlay_figure(crop, cam, title, "Grad-CAM", colorscale="Jet", zmax=1.0, opacity=0.45)


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """One line per named (fpr, tpr) curve, its AUC (trapezoid area) in the legend, plus the chance diagonal."""
    figure = go.Figure()
    for name, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
        auc = float(np.trapezoid(tpr, fpr))
        figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {auc:.3f})"))
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "gray"})
    )
    figure.update_layout(
        title=title,
        xaxis={"title": "false-positive rate (reals called fake)", "range": [0, 1], "constrain": "domain"},
        yaxis={"title": "true-positive rate (fakes caught)", "range": [0, 1], "scaleanchor": "x", "scaleratio": 1},
        legend={"x": 0.98, "y": 0.02, "xanchor": "right", "yanchor": "bottom"},
    )
    return figure


ENSEMBLE_COLOUR = "#d62728"


def scorer_colour(name: str) -> str | None:
    """A detector's colour from its spec, the ensemble's red; None (Plotly picks) for an unknown name."""
    if name == "ensemble":
        return ENSEMBLE_COLOUR
    spec = models.spec(name)
    return spec.colour if spec is not None else None


def timeline_figure(timestamps: list[float], series: dict[str, list[float | None]], names: dict[str, str],
                    threshold: float | None = None, title: str = "Fake probability per sampled frame") -> go.Figure:
    """One line per detector (and the ensemble, thicker) over the sampled frames; gaps where no face was found."""
    figure = go.Figure()
    for key, values in series.items():
        ensemble = key == "ensemble"
        figure.add_trace(
            go.Scatter(
                x=timestamps,
                y=[np.nan if v is None else v for v in values],
                mode="lines+markers",
                name=names.get(key, key),
                line=dict(color=scorer_colour(key), width=4 if ensemble else 1.5, dash=None if ensemble else "dot"),
                hovertemplate="t=%{x:.2f}s<br>P(fake) %{y:.3f}<extra>" + names.get(key, key) + "</extra>",
            )
        )
    if threshold is not None:
        figure.add_hline(y=threshold, line=dict(color="grey", dash="dash"), annotation_text="ensemble: likely fake from here", annotation_position="top left")
    figure.update_layout(title=title, xaxis_title="time (s)", yaxis_title="P(fake)", yaxis_range=[0, 1],
                         legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0), **_LAYOUT)
    return figure


# -- overlays as images (for galleries) -------------------------------------------------------------------
_JET = np.array([[0, 0, 0.5], [0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0], [0.5, 0, 0]])


def heat_overlay_image(crop: np.ndarray, heat: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """``heat`` in [0, 1] coloured blue -> red and blended over the crop, as H x W x 3 uint8."""
    stops = np.linspace(0.0, 1.0, len(_JET))
    h = np.clip(heat, 0.0, 1.0)
    colour = np.stack([np.interp(h, stops, _JET[:, c]) for c in range(3)], axis=-1) * 255.0
    return np.clip((1 - opacity) * crop.astype(np.float32) + opacity * colour, 0, 255).astype(np.uint8)


# -- verdict cards (HTML) ----------------------------------------------------------------------------------
_TONES = {"fake": ("#b42318", "#fef3f2"), "real": ("#067647", "#ecfdf3"), "uncertain": ("#b54708", "#fffaeb"),
          "no-face": ("#475467", "#f2f4f7"), "warn": ("#b54708", "#fffaeb"), "info": ("#475467", "#f2f4f7"),
          "likely fake": ("#b42318", "#fef3f2"), "leaning fake": ("#c4320a", "#fff6ed"),
          "leaning real": ("#3b7c0f", "#f3fee7"), "likely real": ("#067647", "#ecfdf3")}
_WORDS = {"fake": "Likely fake", "real": "Likely real", "uncertain": "Uncertain", "no-face": "No face",
          "likely fake": "Likely fake", "leaning fake": "Leaning fake", "leaning real": "Leaning real", "likely real": "Likely real"}
# How the page names each held-out set (``training.heldout``) when it says what a level meant on it.
SET_TITLES = {"gan": "StyleGAN", "faceswap": "DFDC swaps", "diffusion": "diffusion", "unseen diffusion": "unseen diffusion",
              "unseen gan": "unseen StyleGAN2 (web)", "self-blended": "self-blended", "reenactment": "talking heads",
              "unseen reenactment": "unseen talking heads (FLOAT, SadTalker)"}
SCALE = ("likely real", "leaning real", "uncertain", "leaning fake", "likely fake")  # left to right in the page


def _badge(verdict: str) -> str:
    colour, background = _TONES.get(verdict, _TONES["info"])
    return (f'<span class="verdict-badge" data-verdict="{escape(verdict)}" style="background:{background};color:{colour};'
            f'border:1px solid {colour};border-radius:999px;padding:2px 10px;font-weight:600">{_WORDS.get(verdict, escape(verdict))}</span>')


def _agreement(agree: int, total: int) -> str:
    dots = "".join("●" if i < agree else "○" for i in range(total))
    return f'<span class="agreement" title="{agree} of {total} detectors lean the same way">{dots} {agree} of {total} detectors lean the same way</span>'


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def level_meaning_text(level: str, meaning: dict | None, set_names: dict[str, str] | None = None, unit: str = "faces") -> str:
    """One sentence: how often faces (or clips: ``unit``) at this level were fake on validation (overall and per
    held-out set)."""
    if not meaning or meaning.get("fake_share") is None:
        return "This level has no validation measurement."
    names = set_names or {}
    per_set = ", ".join(f"{escape(names.get(k, k))} {_share(v)}" for k, v in meaning.get("by_set", {}).items() if v is not None)
    share = meaning["fake_share"]
    # a level says how often it was right about its own side; "uncertain" gives its share of fakes
    lean = f"real {1 - share:.0%} of the time" if level.endswith("real") else f"fake {share:.0%} of the time"
    count = f"{meaning['faces']} " if unit == "clips" and meaning.get("faces") is not None else ""
    return (f'<span class="level-meaning" data-unit="{escape(unit)}">On validation {unit} (sources never trained on included, '
            f'real and fake at even odds), this level was {lean}' + (f" (share fake by set: {per_set})" if per_set else "")
            + (f"; {count}validation clips were at it" if count else "") + ".</span>")


def level_share_text(level: str, share: float | None) -> str:
    """A level's validation share in the words of its side: "79% real" for the real levels, "96% fake" else."""
    if share is None:
        return "n/a"
    return f"{1 - share:.0%} real" if level.endswith("real") else f"{share:.0%} fake"


def level_scale_html(level: str | None, meanings: dict[str, dict] | None, unit: str = "faces") -> str:
    """The five levels left to right, the face's (or clip's: ``unit``) level marked, each with how often
    validation faces (clips) at that level were what it leans to."""
    cells = []
    for name in SCALE:
        colour, background = _TONES[name]
        share = (meanings or {}).get(name, {}).get("fake_share")
        active = name == level
        border = f"2px solid {colour}" if active else "1px solid #d0d5dd"
        cells.append(f'<div class="level-step{" active" if active else ""}" data-level="{name}" title="{_WORDS[name]}: '
                     f'{level_share_text(name, share)} among validation {unit} at this level" style="flex:1;min-width:72px;text-align:center;'
                     f'border:{border};background:{background if active else "#fff"};border-radius:6px;padding:3px 4px;'
                     f'font-weight:{700 if active else 400}"><span style="color:{colour}">{_WORDS[name]}</span>'
                     f'<br><small>{level_share_text(name, share)}</small></div>')
    return f'<div class="level-scale" style="display:flex;flex-wrap:wrap;gap:4px;margin-top:6px">{"".join(cells)}</div>'


def verdict_cards_html(cards: list[dict], headline: dict | None, note: str = "") -> str:
    """The ensemble's evidence level (headline) with P(fake), what the level meant on validation and the five-step
    scale; one small card per face: level, P(fake), detectors leaning the same way."""
    parts = ['<div class="verdict-summary">']
    if headline is not None:
        level = headline.get("level") or headline["verdict"]
        colour, background = _TONES.get(level, _TONES["info"])
        meaning = headline.get("meanings", {}).get(level) if headline.get("meanings") else None
        parts.append(
            f'<div class="ensemble-verdict" data-level="{escape(level)}" style="border-left:6px solid {colour};background:{background};'
            f'padding:10px 14px;border-radius:8px">'
            f'<div style="font-size:1.4em;font-weight:700;color:{colour}">Ensemble{", whole clip" if headline.get("unit") == "clips" else ""}: {_WORDS.get(level, escape(level))}'
            f' <span style="font-weight:400">· {escape(headline.get("score_name", "P(fake)"))} {headline["probability"]:.0%}</span></div>'
            f'<div>{level_meaning_text(level, meaning, headline.get("set_names"), headline.get("unit", "faces"))}</div>'
            f'<div>{_agreement(headline["agree"], headline["total"])}</div>'
            + (level_scale_html(level, headline.get("meanings"), headline.get("unit", "faces")) if headline.get("meanings") else "")
            + "</div>"
        )
    if note:
        parts.append(f'<p class="verdict-note" style="margin:6px 2px">{note}</p>')
    if len(cards) > 1:
        parts.append('<div style="display:flex;flex-wrap:wrap;gap:8px">')
        for card in cards:
            probability = "" if card["probability"] is None else f' · {card["probability"]:.0%}'
            parts.append(f'<div class="face-card" style="border:1px solid #d0d5dd;border-radius:8px;padding:6px 10px">'
                         f'<b>{escape(card["label"])}</b>{probability}<br>{_badge(card.get("level") or card["verdict"])} '
                         f'{_agreement(card["agree"], card["total"])}</div>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def notice_html(title: str, text: str, tone: str = "info") -> str:
    colour, background = _TONES[tone]
    return (f'<div class="notice" style="border-left:6px solid {colour};background:{background};padding:10px 14px;border-radius:8px">'
            f'<b style="color:{colour}">{escape(title)}</b><br>{text}</div>')


# -- provenance panel (HTML) -------------------------------------------------------------------------------
_PROVENANCE_TONES = {"generated": "fake", "composite": "fake", "enhanced": "uncertain", "captured": "real"}
_PROVENANCE_WARNINGS = {  # outcomes that undermine what the credentials declare
    "mismatch": "Content changed after signing: the file's content no longer matches its Content Credentials, so what "
                "they declare held for an earlier version of the file, not necessarily for this one.",
    "invalid": "Signature broken: the Content Credentials' signature does not verify, so what they declare cannot be relied on.",
    "malformed": "Malformed manifest: part of the Content Credentials does not follow the C2PA format and could not be checked.",
    "revoked": "Certificate revoked: the signer's certificate was withdrawn by its issuer.",
    "failed": "Validation failed: c2pa reported a problem with the Content Credentials (see the codes below).",
    "unreadable": "The file carries Content Credentials that could not be read (malformed or truncated).",
}
def _provenance_details(p: dict) -> list[str]:
    """One line per thing found, every value escaped (all of it comes from the uploaded file)."""
    lines, c2pa, meta = [], p.get("c2pa"), p.get("metadata") or {}
    if c2pa is not None:
        signer = p.get("signer") or {}
        lines.append(f"Signer: {escape(signer.get('subject') or 'not named')}; certificate issued by {escape(signer.get('issuer') or 'not named')}; "
                     + (f"signed {escape(p['signed_at'])}" if p.get("signed_at") else "no trusted time stamp"))
        lines.append(f"Claim generator: {escape(c2pa.get('claim_generator') or 'not named')}"
                     + (f"; title \u201c{escape(c2pa['title'])}\u201d" if c2pa.get("title") else ""))
        for action in c2pa.get("actions", [])[:10]:
            extra = ", ".join(escape(v) for v in (action.get("digital_source_type"), action.get("software_agent")) if v)
            lines.append(f"Action: {escape(action.get('action') or '?')}" + (f" ({extra})" if extra else ""))
        for ingredient in c2pa.get("ingredients", [])[:10]:
            lines.append(f"Ingredient: {escape(ingredient.get('title') or 'untitled')} ({escape(ingredient.get('relationship') or '?')}"
                         + (", with its own Content Credentials)" if ingredient.get("has_credentials") else ")"))
        lines.append("Signer checked against: " + escape(c2pa.get("trust_list") or "no trust list (every signer reads \u201cnot on the trust list\u201d)"))
        if c2pa.get("ingredient_codes"):
            lines.append("An ingredient's own Content Credentials did not validate: " + escape(", ".join(c2pa["ingredient_codes"][:6])))
    if meta.get("digital_source_type"):
        lines.append(f"XMP DigitalSourceType: {escape(meta['digital_source_type'])}")
    for line in (meta.get("credit_lines") or [])[:4]:
        lines.append(f"Credit / description line: \u201c{escape(line)}\u201d")
    exif = meta.get("exif") or {}
    if exif:
        lines.append("EXIF: " + "; ".join(f"{escape(k)} {escape(v)}" for k, v in exif.items()))
    for key, value in list((meta.get("text") or {}).items())[:6]:
        shown = value if len(value) <= 160 else value[:160] + "\u2026"
        lines.append(f"Text \u201c{escape(key)}\u201d: <code>{escape(shown)}</code>")
    return lines


def _provenance_findings(c2pa: dict) -> list[str]:
    """One plain sentence per family of validation codes, the raw codes under a disclosure."""
    found = c2pa.get("findings") or []
    if not found:
        return []
    items = "".join(f'<li data-family="{escape(f["family"])}">{escape(f["sentence"])}</li>' for f in found)
    codes = ", ".join(escape(code) for code in c2pa.get("validation_codes") or [])
    return [f'<ul class="provenance-findings" style="margin:4px 0 0 18px">{items}</ul>',
            f'<details class="provenance-codes" style="margin:2px 0 0 18px;opacity:0.85"><summary>Validation codes from c2pa</summary>'
            f'<code>{codes}</code></details>']


def provenance_html(p: dict | None) -> str:
    """The Provenance panel: what the file declares leads, then who vouches for it, then the details found."""
    if not p:
        return ""
    if not p.get("found") and not p.get("notes"):  # one line: absence says nothing
        return (f'<div class="provenance" data-kind="none" data-declares="none" data-validation="none" style="opacity:0.85;padding:4px 2px">'
                f'<b>Provenance:</b> {escape(p.get("statement") or "")}</div>')
    tone = "warn" if p.get("validation") in _PROVENANCE_WARNINGS else _PROVENANCE_TONES.get(p.get("declares"), "info")
    colour, background = _TONES[tone]
    data = " ".join(f'data-{name}="{escape(str(p.get(name) or "none"))}"' for name in ("kind", "declares", "validation"))
    parts = [f'<div class="provenance" {data} style="border-left:6px solid {colour};background:{background};padding:10px 14px;border-radius:8px">',
             f'<b style="color:{colour}">Provenance</b> <span style="opacity:0.8">(what the file says about itself: '
             f'a separate line of evidence, never part of P(fake))</span>',
             f'<div class="provenance-statement" style="font-weight:600;margin:4px 0">{escape(p.get("statement") or "")}</div>']
    warning = _PROVENANCE_WARNINGS.get(p.get("validation"))
    if warning:
        parts.append(f'<div class="provenance-warning" role="alert" style="color:{_TONES["warn"][0]}">\u26a0 {warning}</div>')
    if p.get("chain"):
        parts.append(f'<div class="provenance-chain"><b>Chain:</b> {escape(p["chain"])}</div>')
    parts += _provenance_findings(p.get("c2pa") or {})
    details = _provenance_details(p)
    if details:
        parts.append('<ul class="provenance-details" style="margin:4px 0 0 18px">' + "".join(f"<li>{line}</li>" for line in details) + "</ul>")
    parts += [f'<div class="provenance-note" style="opacity:0.85">{escape(note)}</div>' for note in p.get("notes", [])]
    parts.append("</div>")
    return "".join(parts)
