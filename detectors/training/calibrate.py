"""Fit the ensemble rule (logistic regression on the detectors' logits) on the validation sets, its evidence
levels (``calibration.fit_evidence_levels``), each shipped detector's own thresholds (``--members``), and the
clip rule on the validation clips (``--clips``; also after every ensemble fit when the cache holds clips)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


from .. import registry
from ..calibration import expit, fit_ensemble
from ..checkpoints import CONFIG_FILE, Thresholds
from .clips import clip_report, clip_sets, fit_on_clips, frame_logits
from .data import load_all
from .heldout import HeldOut, heldout
from .model_card import refresh_validation_section
from .trainer import calibrate, calibration_groups, heldout_metrics, real_pair_aucs, selection_score, set_aucs


def member_logits(detectors, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """N x detectors: each loaded detector's logits on the held-out crops, scored in batches."""
    return np.stack([np.concatenate([d.logits(crops[i : i + batch]) for i in range(0, len(crops), batch)]) for d in detectors], axis=1)


def set_weights(held: HeldOut) -> np.ndarray:
    """One weight per held-out face: every criterion set counts alike in the fit, however many faces it holds
    (a face in two sets counts in both); faces in no criterion set weigh nothing. Mean weight 1 where > 0."""
    weights = np.zeros(len(held))
    for name in held.criterion():
        weights[held.sets[name]] += 1.0 / len(held.sets[name])
    return weights * (weights > 0).sum() / weights.sum()


def refit_member_thresholds(detector, held: HeldOut, logits: np.ndarray):
    """Rewrite a checkpoint folder's thresholds and validation figures (``config.json``) from ``logits`` on the
    held-out validation faces, with the members' rule (``training.trainer.calibrate``). Re-pin the manifest after."""
    folder = Path(detector.source)
    probabilities = expit(logits)
    calibration = calibrate(held, probabilities)
    config_file = folder / CONFIG_FILE
    config = json.loads(config_file.read_text())
    config["thresholds"] = {"decision": calibration.decision, "uncertain_low": calibration.uncertain_low,
                            "uncertain_high": calibration.uncertain_high}
    config.setdefault("metrics", {})["calibration"] = calibration.to_dict()
    config["metrics"]["validation"] = heldout_metrics(held, probabilities, calibration)
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    if (folder / "README.md").exists():
        refresh_validation_section(folder)
    return calibration


def fake_votes_of(detectors, logits: np.ndarray) -> np.ndarray:
    """Per row of ``logits`` (one column per detector): how many detectors say "fake" on their own."""
    return np.stack([[d.verdict(float(p)) == "fake" for p in expit(logits[:, j])] for j, d in enumerate(detectors)], axis=1).sum(axis=1)


def thresholds_of(calibration) -> Thresholds:
    return Thresholds(calibration.decision, calibration.uncertain_low, calibration.uncertain_high)


DEFAULT_CLIP_RULE = "trimmed"


def fit_and_save_ensemble(cache: str, device: str = "cpu", path: Path | None = None, members: bool = False,
                          clips: bool = True, clip_rule: str = DEFAULT_CLIP_RULE, clip_splits: tuple[str, ...] = ("val",),
                          clip_logits: str | None = None) -> Path:
    result = registry.load_all(device=torch.device(device))
    if not result.detectors:
        raise SystemExit("calibrate: no detector checkpoint could be loaded: " + "; ".join(result.messages))
    held = heldout(load_all(cache), "val")
    names = [d.name for d in result.detectors]
    logits = member_logits(result.detectors, held.crops)
    if members:
        for j, detector in enumerate(result.detectors):
            detector.config.thresholds = thresholds_of(refit_member_thresholds(detector, held, logits[:, j]))
    # each face's detectors saying "fake" on their own, for the levels' corroboration rule
    fake_votes = fake_votes_of(result.detectors, logits)
    sets = {name: held.sets[name] for name in held.criterion()}
    rule = fit_ensemble(names, logits, held.labels, groups=calibration_groups(held), weights=set_weights(held), sets=sets,
                        fake_votes=fake_votes)
    probabilities = rule.probabilities(logits)
    ensemble_logits = np.log(np.clip(probabilities, 1e-7, 1 - 1e-7) / np.clip(1 - probabilities, 1e-7, 1))
    aucs = set_aucs(held, ensemble_logits)
    report = rule.to_dict()
    report["validation"] = {"worst": round(selection_score(aucs, held), 4),
                            **heldout_metrics(held, probabilities, rule.calibration),
                            "members": {name: set_aucs(held, logits[:, j]) for j, name in enumerate(names)}}
    path = path or registry.ASSETS / registry.ENSEMBLE_FILE
    path.write_text(json.dumps(report, indent=2) + "\n")
    if clips and clip_sets(load_all(cache)):  # the clip rule is fitted on this very ensemble rule's frame scores
        try:
            print(fit_and_save_clip_rule(cache, path, rule=clip_rule, splits=clip_splits,
                                         logits_file=clip_logits, detectors=result.detectors)[1], file=sys.stderr)
        except SystemExit as reason:  # too few validation clips: the ensemble stands, clips keep the faces' levels
            print(f"no clip rule: {reason}", file=sys.stderr)
    return path


def fit_and_save_clip_rule(cache: str, path: Path | None = None, device: str = "cpu", rule: str = DEFAULT_CLIP_RULE,
                           splits: tuple[str, ...] = ("val",), logits_file: str | None = None, detectors=None) -> tuple[Path, str]:
    """Fit the clip rule (``calibration.ClipRule``) on the cached validation clips and store it as the ``clip``
    field of the ensemble rule at ``path`` (default the shipped ``ensemble.json``; re-pin the manifest after),
    with the side-by-side comparison of every clip rule on those clips. Returns (path, a Markdown report: the
    comparison and the test clips' levels per source). The frames' logits are scored once per set of
    checkpoints and kept beside the cache (``training.clips.frame_logits``)."""
    detectors = detectors or registry.load_all(device=torch.device(device)).detectors
    path = path or registry.ASSETS / registry.ENSEMBLE_FILE
    ensemble = registry.load_ensemble(detectors, path)  # the file itself, pinned or not: it is being refitted
    if ensemble is None:
        raise SystemExit(f"calibrate --clips: no ensemble rule could be read from {path}; run calibrate first")
    frames = frame_logits(cache, detectors, logits_file)
    chosen = np.isin(frames.splits, list(splits))
    if len(set(frames.labels[chosen].tolist())) < 2:
        raise SystemExit(f"calibrate --clips: the cache has no {'+'.join(splits)} clips of both classes (talking-head sources)")
    fitted, record = fit_on_clips(frames, ensemble, splits, rule)
    data = json.loads(path.read_text())
    data["clip"] = {**fitted.to_dict(), "validation": record}
    path.write_text(json.dumps(data, indent=2) + "\n")
    ensemble.rule.clip = fitted
    return path, comparison_markdown(record) + "\n\n" + clip_report(frames, ensemble, fitted, "test")


def comparison_markdown(record: dict) -> str:
    lines = [f"Clip rules on {record['clips']} {'+'.join(record['splits'])} clips ({record['fake']} fake); frame threshold "
             f"{record['frame_threshold']}:", "", "| clip rule | AUC, all clips | AUC, talking heads |", "|---|---|---|"]
    for name, entry in record["rules"].items():
        lines.append(f"| {name} | {entry['auc']} | {entry['auc_talking']} |")
    return "\n".join(lines)


REPORT_SETS = ("gan", "faceswap", "diffusion", "reenactment", "self-blended", "unseen diffusion", "unseen gan", "unseen faceswap",
               "unseen reenactment")


def candidate_scores(folders, held: HeldOut, device: str = "cpu") -> dict[str, np.ndarray]:
    """Label -> logits on the held-out crops of checkpoints that are not shipped (a run's ``best/``), for the
    report's AUC and real-vs-real tables: how a candidate would read before anything is refitted around it."""
    from .. import checkpoints
    from .trainer import predict_logits

    out = {}
    for folder in folders:
        loaded = checkpoints.load(folder, device=torch.device(device))
        out[f"{loaded.config.architecture} ({folder})"] = predict_logits(loaded.model, held.crops, torch.device(device))
    return out


def heldout_report(cache: str, split: str = "test", device: str = "cpu", candidates=(), clip_logits: str | None = None) -> str:
    """Markdown: each shipped detector's and the ensemble's AUC per held-out set of ``split``, the share of each
    evidence level per source (as the app gives them: the corroboration rule included), and how often a decisive
    level (likely fake / likely real) was given and was right over all faces together; with a clip rule, each
    source's clips: AUC and the share of each clip level. Scores the cached crops. ``candidates``: checkpoint
    folders scored beside the shipped detectors (AUC and real-vs-real rows only; they are not in the ensemble)."""
    from ..calibration import LEVELS
    from ..metrics import binary_metrics

    result = registry.load_all(device=torch.device(device))
    ensemble = registry.load_ensemble(result.detectors)
    if ensemble is None or ensemble.rule.levels is None:
        raise SystemExit("heldout report: the shipped ensemble rule (with levels) could not be loaded; run calibrate")
    held = heldout(load_all(cache), split)
    names = [d.name for d in result.detectors]
    logits = member_logits(result.detectors, held.crops)
    columns = np.stack([logits[:, names.index(n)] if n in names else np.full(len(held), np.nan) for n in ensemble.rule.names], axis=1)
    p = ensemble.rule.probabilities(columns)
    votes = fake_votes_of(result.detectors, logits)
    levels = np.array([ensemble.level(float(q), int(v)) for q, v in zip(p, votes)], dtype=object)
    sets = [s for s in REPORT_SETS if s in held.sets and len(set(held.labels[held.sets[s]].tolist())) == 2]
    lines = ["| detector | " + " | ".join(f"{s} ({(held.labels[held.sets[s]] == 0).sum()} / {(held.labels[held.sets[s]] == 1).sum()})" for s in sets) + " |",
             "|---|" + "---|" * len(sets)]
    extra = candidate_scores(candidates, held, device)
    for name, scores in [*zip(names, logits.T), *extra.items(), ("ensemble", p)]:
        lines.append(f"| {name} | " + " | ".join(f"{binary_metrics(held.labels[held.sets[s]], scores[held.sets[s]]).auc:.3f}" for s in sets) + " |")
    lines += ["", "| " + split + " source | faces | " + " | ".join(LEVELS) + " |", "|---|---|" + "---|" * len(LEVELS)]
    for label in (0, 1):
        for source in sorted(set(held.sources[held.labels == label].tolist())):
            chosen = (held.sources == source) & (held.labels == label)
            lines.append(f"| {'fake' if label else 'real'}: {source} | {chosen.sum()} | " + " | ".join(f"{np.mean(levels[chosen] == level):.1%}" for level in LEVELS) + " |")
    pairs = {name: real_pair_aucs(held, scores) for name, scores in [*zip(names, logits.T), *extra.items(), ("ensemble", p)]}
    if pairs[names[0]]:
        lines += ["", "Real vs real (the shortcut check): AUC of each score between two real sources' " + split + " faces, folded "
                  "to >= 0.5 (0.5 = the score says nothing about the source).", "",
                  "| real sources | " + " | ".join(pairs) + " |", "|---|" + "---|" * len(pairs)]
        for pair in pairs[names[0]]:
            lines.append(f"| {pair} | " + " | ".join(f"{pairs[name][pair]:.3f}" for name in pairs) + " |")
        lines.append("| **worst pair** | " + " | ".join(f"**{max(pairs[name].values()):.3f}**" for name in pairs) + " |")
    y = held.labels
    right = np.mean(((levels == "likely fake") & (y == 1)) | ((levels == "likely real") & (y == 0)))
    wrong = np.mean(((levels == "likely fake") & (y == 0)) | ((levels == "likely real") & (y == 1)))
    lines += ["", f"All {len(y)} {split} faces together: a decisive level (likely fake / likely real) right on {right:.1%}, wrong on {wrong:.1%}."]
    if ensemble.rule.clip is not None and ensemble.rule.clip.levels is not None and clip_sets(load_all(cache)):
        lines += ["", clip_report(frame_logits(cache, result.detectors, clip_logits), ensemble, ensemble.rule.clip, split)]
    return "\n".join(lines)
