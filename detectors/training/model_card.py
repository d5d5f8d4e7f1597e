"""The model card written next to each trained checkpoint (``README.md`` in the checkpoint folder)."""
from __future__ import annotations

import json
from pathlib import Path

from .. import models
from ..about import data_text, origin_text, pretrained_from, title_and_paper
from ..checkpoints import CONFIG_FILE
from .stream import DEFAULT_MIX, SELF_BLENDED

LIMITS = """- Trained by this project from scratch (no public weights exist or are reachable) on small data: tens of
  thousands of face crops; one GAN (StyleGAN v1), DFDC face swaps, two text-to-image generators (SDXL, Flux.1
  schnell) and self-blended fakes made from real faces. Expect it to miss manipulations unlike those
  (expression re-enactment, full-frame synthesis, new generators) and to be less accurate than the paper's own,
  larger models.
- Scores faces found by MTCNN; a face that is small, profile or occluded gives weaker evidence.
- The thresholds are fitted on our validation data; on other sources the ranking (AUC) transfers better than
  any fixed threshold, which is why the app shows an "uncertain" band.
- Never use a single detector's verdict as proof."""


def _continued(training: dict) -> str:
    """The options of a run that continued another checkpoint's weights (``--init-from``), else nothing."""
    start = training.get("initialised_from")
    if not start:
        return ""
    recipe = training["recipe"]
    return f" --init-from {start} --steps {recipe['steps']} --lr {recipe['lr']:g} --validate-every {recipe['validate_every']}"


def _calibration_text(config: dict) -> str:
    method = (config.get("metrics") or {}).get("calibration", {}).get("method", "")
    return method or "fitted on validation data"


def _mix_text(mix) -> str:
    """The stream's family mix as prose: the recipe's own, or the stream's default when it sets none."""
    shares = dict(mix) if mix else DEFAULT_MIX
    parts = []
    for family, share in shares.items():
        what = "self-blended fakes, each beside the real it was made from" if family == SELF_BLENDED else f"{family} fakes, each beside a real that looks like it"
        parts.append(f"{what} {share * 100:.0f} % of the pairs")
    return "; ".join(parts)


def _invariance_text(recipe: dict) -> str:
    weight = recipe.get("source_invariance") or 0
    return f", plus {weight:g} x the spread of the real sources' mean logits in each batch" if weight else ""


def _pretrained_licence(name: str) -> str:
    start = pretrained_from(name)
    return f"\nIts starting point: {start}." if start else ""


def _shortcut_section(training: dict) -> str:
    """The real-vs-real AUCs of the kept checkpoint on validation (the shortcut gate), when the run measured them."""
    kept = [h for h in training.get("history", []) if h.get("step") == training.get("steps_done") and "real_pairs" in h]
    if not kept:
        return ""
    entry = kept[-1]
    gate = training["recipe"].get("shortcut_gate")
    rows = "\n".join(f"| {pair} | {auc:.3f} |" for pair, auc in sorted(entry["real_pairs"].items(), key=lambda kv: -kv[1]))
    verdict = "" if gate is None else f" The gate is {gate}: this checkpoint {'fails' if entry['worst_real_pair'] > gate else 'passes'} it."
    return f"""
## Shortcut check: can the score tell two real sources apart?
AUC of the fake score between the validation reals of each pair of real sources (folded to >= 0.5; 0.5 = the score
says nothing about where a real face came from).{verdict}

| real sources | AUC |
|---|---|
{rows}
"""


def _metrics_table(validation: dict) -> str:
    rows = ["| validation set | AUC | AP | EER | accuracy at threshold | TPR @ 1 % FPR | TPR @ 5 % FPR |", "|---|---|---|---|---|---|---|"]
    for name, m in validation.items():
        if name == "reals":
            continue
        rows.append(f"| {name} | {m['auc']:.4f} | {m['ap']:.4f} | {m['eer']:.4f} | {m['accuracy']:.4f} | {m['tpr_at_fpr_1pct']:.4f} | {m['tpr_at_fpr_5pct']:.4f} |")
    reals = validation.get("reals", {})
    if reals:
        rows += ["", "| validation reals of | faces | called fake | uncertain | called real |", "|---|---|---|---|---|"]
        rows += [f"| {source} | {r['faces']} | {r['fake']:.1%} | {r['uncertain']:.1%} | {r['real']:.1%} |" for source, r in reals.items()]
    return "\n".join(rows)


def validation_section(config: dict) -> str:
    """The card's "Validation" section: the held-out sets, the reals' verdict shares and the thresholds."""
    training, thresholds = config["training"], config["thresholds"]
    return f"""## Validation (best checkpoint: step {training['steps_done']} of {training['recipe']['steps']})
{_metrics_table(config['metrics']['validation'])}

"Fake" at or above {thresholds['uncertain_high']:.4f} ({_calibration_text(config)}); "real" below
{thresholds['uncertain_low']:.4f}; "uncertain" in between. The checkpoint kept is the one with the best worst-set
validation AUC, the generators it never trained on included.
"""


def refresh_validation_section(folder: Path) -> Path:
    """Rewrite an existing card's "Validation" section from its ``config.json`` (after ``calibrate --members``
    refits the thresholds), keeping every other section as it is."""
    config = json.loads((Path(folder) / CONFIG_FILE).read_text())
    path = Path(folder) / "README.md"
    card = path.read_text()
    start = card.index("## Validation")
    end = card.find("\n## ", start + 1)
    path.write_text(card[:start] + validation_section(config) + (card[end:] if end >= 0 else ""))
    return path


def write_model_card(folder: Path, args) -> Path:
    config = json.loads((Path(folder) / CONFIG_FILE).read_text())
    name = config["architecture"]
    title, paper = title_and_paper(name)
    training = config["training"]
    parameters = sum(p.numel() for p in models.create(name, config["variant"], **config["overrides"]).parameters())
    minutes = training["seconds"] / 60
    card = f"""---
license: other
license_name: research-only
tags: [deepfake-detection, image-classification, pytorch, safetensors]
---
# {title} ({config['variant']}), trained by this project

Architecture: {paper}; our re-implementation in `detectors/models/{name}.py` (deviations from the authors'
code are listed in its docstring). Variant `{config['variant']}`: {parameters / 1e6:.2f} M parameters, input
{config['input_size']} px, normalisation mean {config['normalisation']['mean']}, std {config['normalisation']['std']}.
Output: one logit, `sigmoid(logit)` = probability that the face is fake (label 1 = fake).

## Data
Face crops from facenet-pytorch MTCNN (most confident face, square box x{config['crop']['margin']}, {config['crop']['size']} px,
then resized to the input size) of the sources in `detectors/training/sources.csv` (`../shared/data`): {data_text(training)}.
Self-blended fakes are synthesised on the fly from the real crops of every real source (a 5-landmark face
mask, colour and resampling mismatch; Shiohara & Yamasaki, CVPR 2022). Splits are by a seeded hash of each
source's split unit (file, video, a face swap with its source video, a figure of tiles); faces per split:
`{json.dumps(training['faces'])}`.
Every training draw is a pair, a fake beside a real that looks like it: {_mix_text(training['recipe'].get('mix'))}.
Both members of a pair are brought to the same effective resolution (the lower of the two, half of the time
lower still) and get the same augmentation: flips, re-framing, resolution changes, colour, blur, JPEG quality
40-100; the destructive parts (JPEG, down-sampling, blur) ramp from mild to full over the first
{training['recipe'].get('curriculum', 0) * 100:.0f} % of the classifier's steps.

## Recipe
Starting weights: {origin_text(name)}.
`{json.dumps(training['recipe'])}` (AdamW, warm-up + cosine, binary cross-entropy{_invariance_text(training['recipe'])}; seed {training['seed']}).
This is our recipe for short CPU training, not the paper's (see `detectors/training/trainer.py`).

Reproduce:
```bash
python -m detectors train --detector {name} --variant {config['variant']} --seed {training['seed']} --max-celeba {args.max_celeba} --out runs/{name}-{config['variant']}{_continued(training)}
```
Training time: {minutes:.1f} min of training steps on {training['hardware']} ({training['device']}, world size {training['world_size']}),
face caching excluded.

{validation_section(config)}{_shortcut_section(training)}
## Limits
{LIMITS if not pretrained_from(name) else LIMITS.replace("Trained by this project from scratch (no public weights exist or are reachable)", "Fine-tuned by this project from ImageNet weights")}

## Licence
The weights are derived from CelebA, FFHQ (CC BY-NC-SA 4.0), StyleGAN-generated faces, DFDC (competition terms),
Unsplash portraits, SFHQ-T2I (MIT) and SDXL portraits (CC BY 4.0): non-commercial research use only.{_pretrained_licence(name)}
"""
    path = Path(folder) / "README.md"
    path.write_text(card)
    return path
