"""The training loop: seeded, resumable, mixed precision on GPU, DistributedDataParallel under ``torchrun``.

One loop serves the four detectors; what differs per detector is its :class:`Recipe`. Re-synthesis trains in
two stages as in its paper: the super-resolution network on real faces only (L1 plus a log-spectrum L1, in
place of the VGG perceptual loss we have no weights for), then the classifier on the frozen network's
reconstruction error. Our recipes are our own (AdamW, warm-up + cosine, binary cross-entropy on one logit,
short schedules sized for two CPU cores); each model card says so next to the paper's recipe.

Every step: a batch from :class:`FaceStream` -> :func:`detectors.preprocess.model_input` (the same function
inference uses) -> loss -> step -> ``model.project_constraints()``. Every ``validate_every`` steps: AUC on the
validation sets; the best model is exported as a checkpoint folder with calibrated thresholds. With
``Recipe.ema_decay`` set, the model validated and exported is a moving average of the weights
(:class:`WeightAverage`), and the raw weights are validated beside it for the record.
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import checkpoints, models
from ..machine import machine_description
from ..calibration import Calibration, expit, fit_guarded_thresholds
from ..checkpoints import CheckpointConfig, Thresholds
from ..metrics import binary_metrics
from ..preprocess import CROP_SIZE, model_input
from .data import load_all
from .heldout import HeldOut, heldout
from .stream import FaceStream

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class Recipe:
    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    validate_every: int = 250
    channels_last: bool = True
    sr_steps: int = 0  # re-synthesis stage 1 (super-resolution on reals)
    sr_lr: float = 5e-4
    sr_batch_size: int = 16
    # Augmentation ramps from mild to full over this share of the classifier's steps (see training.augment).
    curriculum: float = 0.5
    # Share of each fake family in the stream, as (family, share) pairs; None = the stream's DEFAULT_MIX.
    mix: tuple[tuple[str, float], ...] | None = None
    # Validate and export an exponential moving average of the classifier's weights (0 = the raw weights).
    ema_decay: float = 0.0
    # bf16 autocast on the CPU too (always on a GPU): a gain only on processors with bf16 arithmetic (AVX-512
    # BF16 / AMX); measure with `python -m detectors bench --training-only` before turning it on.
    cpu_bf16: bool = False
    # Start from the architecture's ImageNet weights (``models.create(..., pretrained=True)``; EfficientNet-Lite).
    pretrained: bool = False
    # Weight of the source-invariance penalty: the spread of the mean logit of each real training source in the
    # batch (:func:`source_invariance`). A pretrained network otherwise learns which source a face comes from.
    source_invariance: float = 0.0
    # The shortcut gate: a checkpoint whose worst real-vs-real validation AUC exceeds this is never preferred to
    # one that passes (None: not applied).
    shortcut_gate: float | None = None
    # Keep batch norm in inference mode while training (its ImageNet statistics, affine weights still learnt):
    # the penalty then acts on the very logits inference gives, not on batch-statistics ones.
    frozen_norm: bool = False
    # The penalty relative to the batch's logit variance (scale-free, as the AUC it stands for); see source_invariance.
    invariance_relative: bool = False
    # Peak weight of the adversarial source head (:class:`SourceAdversary`): a small network tells a real face's
    # source from the pooled features the classifier reads, through a gradient reversal, so the backbone is
    # pushed to features that carry no source at all (not only a logit that hides it). Ramped in as in DANN.
    source_adversary: float = 0.0


# Sized for <= 90 minutes per small detector on the project's 2-core development machine, measured with two runs
# side by side, one core each (OMP_NUM_THREADS=1): see the model cards. SpecXNet learns more slowly than the
# ResNet-based models, so its augmentation ramps over 75 % of its steps instead of 50 %. Every recipe draws the
# stream's default family mix (self-blended 35 %, diffusion 25 %, GAN 20 %, face swap 20 %: see training.stream);
# the probes behind these choices are in the README. The paper variants are for GPUs.
RECIPES = {
    ("specxnet", "small"): Recipe(steps=2400, validate_every=400, channels_last=False, curriculum=0.75),
    ("sficonv", "small"): Recipe(steps=2600, validate_every=433, channels_last=False),
    ("resynthesis", "small"): Recipe(steps=3000, validate_every=500, sr_steps=800),
    ("mdcsd", "small"): Recipe(steps=4200, validate_every=700),
    # Lite0 from ImageNet: fine-tuned gently (a tenth of the scratch models' rate, short warm-up, full augmentation
    # from the start) with the relative source-invariance penalty and the talking clips' reenactment pairs; the run
    # F of docs/training.md, the one of six whose checkpoint passed the shortcut gate.
    ("effnet", "small"): Recipe(steps=1000, batch_size=32, lr=3e-4, warmup_steps=50, validate_every=250, curriculum=0.0,
                                mix=(("self-blended", 0.3), ("gan", 0.25), ("faceswap", 0.15), ("diffusion", 0.15), ("reenactment", 0.15)),
                                pretrained=True, source_invariance=3.0, invariance_relative=True, shortcut_gate=0.65),
    ("effnet", "paper"): Recipe(steps=20000, batch_size=64, lr=2e-4, validate_every=1000, curriculum=0.0,
                                mix=(("self-blended", 0.3), ("gan", 0.25), ("faceswap", 0.15), ("diffusion", 0.15), ("reenactment", 0.15)),
                                pretrained=True, source_invariance=3.0, invariance_relative=True, shortcut_gate=0.65),
    ("specxnet", "paper"): Recipe(steps=20000, batch_size=64, lr=5e-4, validate_every=1000, channels_last=False),
    ("sficonv", "paper"): Recipe(steps=20000, batch_size=64, lr=5e-4, validate_every=1000),
    ("resynthesis", "paper"): Recipe(steps=20000, batch_size=64, lr=5e-4, validate_every=1000, sr_steps=20000, sr_batch_size=32),
    ("mdcsd", "paper"): Recipe(steps=20000, batch_size=64, lr=5e-4, validate_every=1000),
}


@dataclass
class Run:
    """Where and how: the distributed rank and world, the device, the output folder."""

    out: Path
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_run(out: Path, device: str | None) -> Run:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Run(Path(out), device, rank, world)


INVARIANCE_VARIANCE_FLOOR = 1.0  # below this batch logit variance the relative penalty is the absolute one


def source_invariance(logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Spread of the real faces' mean logit between their sources: the mean over the batch's real sources of
    (mean logit of that source's reals - mean logit of all reals)^2. Zero when a real face's score does not
    depend on where it came from, which is what the shortcut gate (real-vs-real AUC) measures.

    ``relative``: divided by the variance of the whole batch's logits (held constant) once it exceeds
    :data:`INVARIANCE_VARIANCE_FLOOR`, so the penalty is as scale-free as an AUC. The absolute form is also met by
    squashing every logit towards one value, which a weight of 10 did (real logits' spread 0.08); without the
    floor the relative form is largest while the logits are still close together and fought the classifier from
    the first step (both in docs/training.md)."""
    real = (labels == 0) & (sources >= 0)
    if real.sum() < 2:
        return logits.new_zeros(())
    scale = torch.clamp(logits.detach().var(), min=INVARIANCE_VARIANCE_FLOOR) if relative else 1.0
    logits, sources = logits[real], sources[real]
    present = torch.unique(sources)
    if len(present) < 2:
        return logits.new_zeros(())
    means = torch.stack([logits[sources == s].mean() for s in present])
    return ((means - logits.mean()) ** 2).mean() / scale


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times -weight backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


class SourceAdversary(torch.nn.Module):
    """Names a real face's training source from the features the model's ``classifier`` reads (captured by a
    forward pre-hook). Its own loss trains it to name the source; the reversed gradient trains the backbone to
    make that impossible. Reals only: a fake carries its generator, which is the signal."""

    def __init__(self, classifier: torch.nn.Linear, sources: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(classifier.in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, sources))
        self._features: torch.Tensor | None = None
        classifier.register_forward_pre_hook(self._capture)

    def _capture(self, module, args) -> None:
        self._features = args[0]

    def loss(self, labels: torch.Tensor, sources: torch.Tensor, weight: float) -> torch.Tensor:
        real = (labels == 0) & (sources >= 0)
        if self._features is None or real.sum() < 2:
            return labels.new_zeros(())
        features = _ReverseGradient.apply(self._features[real].float(), weight)
        return F.cross_entropy(self.net(features), sources[real])


def adversary_weight(step: int, steps: int, peak: float) -> float:
    """DANN's ramp: 0 at the first step, ~peak after half the run (the classifier learns something first)."""
    return peak * (2.0 / (1.0 + math.exp(-10.0 * step / max(1, steps))) - 1.0)


def lr_factor(step: int, recipe_steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, recipe_steps - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.inference_mode()
def predict_logits(model: models.Detector, crops: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Logits for N x 256 x 256 x 3 uint8 crops through the inference preprocessing."""
    model.eval()
    out = []
    for start in range(0, len(crops), batch_size):
        pixels = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size])).permute(0, 3, 1, 2).to(device)
        out.append(model(model_input(pixels, model.config)).float().cpu())
    return torch.cat(out).numpy()


def spectrum_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between log-magnitude spectra: makes the SR reproduce real faces' frequency content, not only pixels."""
    spectrum = lambda x: torch.log1p(torch.fft.rfft2(x.float(), norm="ortho").abs())  # noqa: E731
    return F.l1_loss(spectrum(prediction), spectrum(target))


class WeightAverage:
    """Exponential moving average of a model's weights and buffers, kept beside the trained model.

    Batches of 32 on small data make the raw weights noisy from step to step; the average is what gets
    validated and exported (as in timm's ModelEmaV3). The decay warms up as (1 + t) / (10 + t), so the
    random initialisation is forgotten within a short run. Integer buffers (batch-norm counters) are copied.
    Averages of weights that satisfy a linear constraint (SFIConv's constrained filters) satisfy it too; the
    projection is re-applied only to clear rounding. Off in the small recipes: at the end of their cosine
    schedules the average validated no better than the raw weights (figures in the README).
    """

    def __init__(self, model: models.Detector, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: models.Detector) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for average, current in zip(self.module.state_dict().values(), model.state_dict().values()):
            if average.is_floating_point():
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)
        self.module.project_constraints()

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def set_aucs(held: HeldOut, logits: np.ndarray) -> dict[str, float]:
    """AUC of each held-out set that has both classes."""
    return {name: round(binary_metrics(held.labels[idx], logits[idx]).auc, 4) for name, idx in held.sets.items()
            if len(set(held.labels[idx].tolist())) == 2}


def real_pair_aucs(held: HeldOut, logits: np.ndarray) -> dict[str, float]:
    """For every pair of real sources, how well the fake logit tells one from the other: the AUC folded to
    >= 0.5 (0.5 = the score carries nothing about the source; 1.0 = it names the source)."""
    reals = held.real_sources()
    names = sorted(reals)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            labels = np.r_[np.zeros(len(reals[a])), np.ones(len(reals[b]))]
            auc = binary_metrics(labels.astype(int), np.r_[logits[reals[a]], logits[reals[b]]]).auc
            out[f"{a} vs {b}"] = round(float(max(auc, 1.0 - auc)), 4)
    return out


def selection_score(aucs: dict[str, float], held: HeldOut) -> float:
    """What chooses checkpoints: the worst AUC over the criterion sets (unseen generators and pipelines
    included: the SFHQ-T2I generators kept out of training, TPDNE StyleGAN2 against web faces), so a model that
    gains on its own families while it loses on a pipeline it never saw is not preferred."""
    chosen = [aucs[name] for name in held.criterion() if name in aucs]
    return float(min(chosen)) if chosen else float(np.mean(list(aucs.values())))


def deciding_set(aucs: dict[str, float], held: HeldOut) -> str | None:
    """The criterion set whose AUC is the selection score (the one that decided), for the record."""
    chosen = {name: aucs[name] for name in held.criterion() if name in aucs}
    return min(chosen, key=chosen.get) if chosen else None


def calibration_groups(held: HeldOut) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(real source -> indices of its faces, fake family -> indices of its fakes) for the thresholds."""
    reals = held.real_sources()
    fakes = {name: idx[held.labels[idx] == 1] for name, idx in held.sets.items() if name in held.criterion()}
    return reals, fakes


def calibrate(held: HeldOut, probabilities: np.ndarray) -> Calibration:
    """A detector's own thresholds: the pooled guard (``calibration.fit_guarded_thresholds``), so one odd real
    source cannot push its "fake" edge to where it never fires."""
    reals, fakes = calibration_groups(held)
    return fit_guarded_thresholds({k: probabilities[v] for k, v in reals.items()}, {k: probabilities[v] for k, v in fakes.items()},
                                  rule="pooled")


def verdict_shares(probabilities: np.ndarray, calibration: Calibration) -> dict[str, float]:
    thresholds = Thresholds(calibration.decision, calibration.uncertain_low, calibration.uncertain_high)
    verdicts = [thresholds.verdict(float(p)) for p in probabilities]
    return {v: round(verdicts.count(v) / max(1, len(verdicts)), 4) for v in ("fake", "uncertain", "real")}


def heldout_metrics(held: HeldOut, probabilities: np.ndarray, calibration: Calibration) -> dict:
    """Per set: the usual metrics at the decision threshold; per real source: the shares of each verdict."""
    out = {name: binary_metrics(held.labels[idx], probabilities[idx], calibration.decision).to_dict()
           for name, idx in held.sets.items() if len(set(held.labels[idx].tolist())) == 2}
    out["reals"] = {source: {"faces": int(len(idx)), **verdict_shares(probabilities[idx], calibration)}
                    for source, idx in held.real_sources().items()}
    return out


class Trainer:
    def __init__(self, name: str, variant: str, cache: Path, run: Run, seed: int = 0, recipe: Recipe | None = None,
                 val_sbi_count: int = 400, workers: int = 1, overrides: dict | None = None,
                 init_from: str | None = None) -> None:
        self.name, self.variant, self.run, self.seed = name, variant, run, seed
        self.init_from = init_from
        self.recipe = recipe or RECIPES[(name, variant)]
        torch.manual_seed(seed)
        pretrained = {"pretrained": True} if self.recipe.pretrained and init_from is None else {}
        self.model = models.create(name, variant, **(overrides or {}), **pretrained).to(run.device)
        if self.recipe.channels_last and run.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        classifier = getattr(self.model, "classifier", None)
        if self.recipe.source_adversary and not isinstance(classifier, torch.nn.Linear):
            raise ValueError(f"{name} has no linear `classifier` for the source adversary to read")
        self.sets = load_all(cache)
        self.validation = heldout(self.sets, "val", val_sbi_count) if run.main else None
        self.workers = workers
        self.state = {"stage": "sr" if self.recipe.sr_steps else "classifier", "step": 0, "best": -1.0, "history": [], "seconds": 0.0}
        self.distributed = None
        self.average: WeightAverage | None = None  # made when the classifier stage starts (after SR and _prepare)
        self.adversary: SourceAdversary | None = None
        if self.recipe.source_adversary:
            real_sources = sum(1 for s in self.sets.values() if s.source.label == 0)
            self.adversary = SourceAdversary(classifier, real_sources).to(run.device)

    # -- pieces ---------------------------------------------------------------------------------------------
    def _loader(self, reals_only: bool, batch_size: int, step: int) -> DataLoader:
        # Re-seeded with the step so a resumed run continues with fresh, reproducible samples.
        per_rank = max(1, batch_size // self.run.world)
        ramp = int(self.recipe.curriculum * self.recipe.steps * per_rank) if not reals_only else 0
        mix = dict(self.recipe.mix) if self.recipe.mix else None
        stream = FaceStream(self.sets, "train", seed=self.seed * 1_000_003 + step, mix=mix, reals_only=reals_only,
                            rank=self.run.rank, curriculum=(step * per_rank, ramp) if ramp else None,
                            with_sources=not reals_only)
        return DataLoader(stream, batch_size=per_rank, num_workers=self.workers, persistent_workers=False,
                          multiprocessing_context="spawn" if self.workers else None)

    def _wrapped(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.run.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.run.device.index] if self.run.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _optimizer(self, parameters, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=self.recipe.weight_decay)

    def _inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        x = model_input(pixels.permute(0, 3, 1, 2).to(self.run.device, non_blocking=True), self.model.config)
        return x.contiguous(memory_format=torch.channels_last) if self.recipe.channels_last else x

    def _autocast(self):
        enabled = self.run.device.type == "cuda" or self.recipe.cpu_bf16
        return torch.autocast(self.run.device.type, dtype=torch.bfloat16, enabled=enabled)

    # -- stages ---------------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Statistics some models need before training (MD-CSD's log-DCT normalisation)."""
        fit = getattr(self.model, "fit_frequency_normalisation", None)
        if fit is None or self.state["step"] > 0 or self.state["stage"] != "classifier" or "initialised_from" in self.state:
            return
        mix = dict(self.recipe.mix) if self.recipe.mix else None
        stream = FaceStream(self.sets, "train", seed=self.seed + 7, mix=mix, augmented=True)
        rng = np.random.default_rng(self.seed)
        batches = []
        for _ in range(8):  # reals and fakes, as training draws them
            crops = [sample.crop for _ in range(16) for sample in stream.samples(rng)]
            batches.append(self._inputs(torch.stack([torch.from_numpy(np.array(crop)) for crop in crops])))
        fit(batches)

    def _train_stage(self, stage: str, module: torch.nn.Module, steps: int, batch_size: int, lr: float, parameters, loss_fn) -> None:
        optimizer = self._optimizer(parameters, lr)
        state_file = self.run.out / STATE_FILE
        if state_file.exists() and self.state.get("optimizer_stage") == stage and "optimizer" in self.state:
            optimizer.load_state_dict(self.state.pop("optimizer"))
        start = self.state["step"]
        model = self._wrapped(module)
        loader = iter(self._loader(stage == "sr", batch_size, start))
        progress = tqdm(range(start, steps), desc=f"{self.name}/{self.variant} {stage}", unit="step",
                        file=sys.stderr, disable=not self.run.main, initial=start, total=steps)
        began = time.monotonic()
        for step in progress:
            model.train()
            if self.recipe.frozen_norm:
                for layer in module.modules():
                    if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                        layer.eval()
            for group in optimizer.param_groups:
                group["lr"] = group.get("base_lr", lr) * lr_factor(step, steps, self.recipe.warmup_steps)
            pixels, labels, *sources = next(loader)
            with self._autocast():
                loss = loss_fn(model, self._inputs(pixels), labels.float().to(self.run.device), *[s.to(self.run.device) for s in sources])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.model.project_constraints()
            if self.average is not None:  # exists in the classifier stage only
                self.average.update(self.model)
            progress.set_postfix(loss=f"{loss.item():.4f}")
            self.state["step"] = step + 1
            last = step + 1 == steps
            if (step + 1) % self.recipe.validate_every == 0 or last:
                self.state["seconds"] += time.monotonic() - began
                began = time.monotonic()
                if stage == "classifier":
                    self._validate()
                self._save_state(optimizer, stage)
        self.state["step"] = 0

    def _classifier_loss(self, model, x, labels, sources=None):
        logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        if self.recipe.source_invariance and sources is not None:
            loss = loss + self.recipe.source_invariance * source_invariance(logits, labels, sources, self.recipe.invariance_relative)
        if self.adversary is not None and sources is not None:
            weight = adversary_weight(self.state["step"], self.recipe.steps, self.recipe.source_adversary)
            loss = loss + self.adversary.loss(labels, sources, weight)
        return loss

    def _sr_loss(self, sr, x, labels, sources=None):
        reconstruction = sr(self.model.downsample(x))
        return F.l1_loss(reconstruction, x) + 0.1 * spectrum_l1(reconstruction, x)

    def _start_from_checkpoint(self) -> None:
        """A new run that continues a finished one (a shipped checkpoint or another run's ``best``): its weights
        and normalisation statistics are the starting point, so re-synthesis skips its super-resolution stage
        and MD-CSD keeps its log-DCT statistics. A run with a state file resumes that instead."""
        if self.init_from is None or (self.run.out / STATE_FILE).exists():
            return
        start = checkpoints.load(self.init_from, device=self.run.device)
        if start.config.architecture != self.name:
            raise ValueError(f"--init-from {self.init_from} holds a {start.config.architecture} checkpoint, not {self.name}")
        self.model.load_state_dict(start.model.state_dict())
        self.state.update(stage="classifier", initialised_from=str(self.init_from))

    def fit(self) -> Path:
        self.run.out.mkdir(parents=True, exist_ok=True)
        self._load_state()
        self._start_from_checkpoint()
        if self.state["stage"] == "done":
            return self.run.out / "best"
        if self.state["stage"] == "sr":
            sr = self.model.sr
            self._train_stage("sr", sr, self.recipe.sr_steps, self.recipe.sr_batch_size, self.recipe.sr_lr, sr.parameters(), self._sr_loss)
            self.state["stage"] = "classifier"
            self._save_state(None, "classifier")
        if hasattr(self.model, "freeze_sr"):
            self.model.freeze_sr(bool(self.recipe.sr_steps) or "initialised_from" in self.state)
        self._prepare()
        groups = self.model.param_groups(self.recipe.lr) if hasattr(self.model, "param_groups") else None
        parameters = groups or [p for p in self.model.parameters() if p.requires_grad]
        if groups:
            for group in groups:
                group["base_lr"] = group["lr"]
        if self.adversary is not None:  # a fresh head: ten times the backbone's rate, so it keeps up with it
            if "adversary" in self.state:
                self.adversary.load_state_dict(self.state.pop("adversary"))
            parameters = (groups or [{"params": parameters, "base_lr": self.recipe.lr}]) + [
                {"params": list(self.adversary.parameters()), "base_lr": 10 * self.recipe.lr}]
        if self.recipe.ema_decay > 0:
            self.average = WeightAverage(self.model, self.recipe.ema_decay)
            if "average" in self.state:  # resumed
                self.average.load_state_dict(self.state.pop("average"))
        self._train_stage("classifier", self.model, self.recipe.steps, self.recipe.batch_size, self.recipe.lr, parameters, self._classifier_loss)
        self.state["stage"] = "done"
        if self.run.main:
            self._save_state(None, "done")
        if self.run.world > 1:
            dist.barrier()
        return self.run.out / "best"

    # -- validation, checkpoints ------------------------------------------------------------------------------
    def _validate(self) -> None:
        if not self.run.main:
            if self.run.world > 1:
                dist.barrier()
            return
        exported = self.average.module if self.average is not None else self.model
        logits, aucs = self._scored(exported)
        worst = selection_score(aucs, self.validation)
        entry = {"step": self.state["step"], "seconds": round(self.state["seconds"], 1), "worst": round(worst, 4),
                 "decided_by": deciding_set(aucs, self.validation), **aucs}
        pairs = real_pair_aucs(self.validation, logits)
        if pairs:
            entry["worst_real_pair"] = max(pairs.values())
            entry["worst_real_pair_is"] = max(pairs, key=pairs.get)
            entry["real_pairs"] = pairs
        gate = self.recipe.shortcut_gate
        if gate is not None and pairs and entry["worst_real_pair"] > gate:
            entry["gate"] = "failed"
            worst -= 1.0  # any checkpoint that passes the gate is preferred
        if self.average is not None:  # the raw weights too: a paired comparison within one run
            entry["raw"] = self._scored(self.model)[1]
        self.state["history"].append(entry)
        if worst > self.state["best"]:
            self.state["best"] = worst
            self._export_best(exported, logits)
        if self.run.world > 1:
            dist.barrier()

    def _scored(self, model: models.Detector) -> tuple[np.ndarray, dict[str, float]]:
        """Logits of every held-out crop (scored once) and the AUC of each held-out set."""
        logits = predict_logits(model, self.validation.crops, self.run.device)
        return logits, set_aucs(self.validation, logits)

    def _export_best(self, model: models.Detector, logits: np.ndarray) -> None:
        probabilities = expit(logits)
        calibration = calibrate(self.validation, probabilities)
        config = CheckpointConfig.for_model(
            model,
            crop_size=CROP_SIZE,
            thresholds=Thresholds(calibration.decision, calibration.uncertain_low, calibration.uncertain_high),
            training=self._training_info(),
            metrics={"validation": heldout_metrics(self.validation, probabilities, calibration), "calibration": calibration.to_dict()},
        )
        checkpoints.save(model, self.run.out / "best", config)

    def _training_info(self) -> dict:
        counts = {name: {split: int((s.split == split).sum()) for split in ("train", "val", "test")} for name, s in self.sets.items()}
        roles = {name: s.source.role for name, s in self.sets.items()}
        return {
            "recipe": asdict(self.recipe),
            "seed": self.seed,
            "steps_done": self.state["step"],
            "initialised_from": self.state.get("initialised_from"),
            "seconds": round(self.state["seconds"], 1),
            "device": self.run.device.type,
            "world_size": self.run.world,
            "hardware": machine_description(self.run.device),
            "faces": counts,
            "roles": roles,
            "history": self.state["history"],
        }

    def _save_state(self, optimizer, stage: str) -> None:
        if not self.run.main:
            return
        state = {k: v for k, v in self.state.items() if k not in ("optimizer", "average", "adversary")}  # tensors: saved apart
        payload = {"model": self.model.state_dict(), "meta": json.dumps(state), "optimizer_stage": stage}
        if optimizer is not None:
            payload["optimizer"] = optimizer.state_dict()
        if self.average is not None and stage == "classifier":
            payload["average"] = self.average.state_dict()
        if self.adversary is not None:
            payload["adversary"] = self.adversary.state_dict()
        temporary = self.run.out / (STATE_FILE + ".tmp")
        torch.save(payload, temporary)
        temporary.replace(self.run.out / STATE_FILE)  # never leave a half-written state behind

    def _load_state(self) -> None:
        path = self.run.out / STATE_FILE
        if not path.exists():
            return
        payload = torch.load(path, map_location=self.run.device, weights_only=True)  # tensors and plain types only
        self.model.load_state_dict(payload["model"])
        self.state = json.loads(payload["meta"])
        self.state["optimizer_stage"] = payload.get("optimizer_stage")
        if "optimizer" in payload:
            self.state["optimizer"] = payload["optimizer"]
        if "average" in payload:
            self.state["average"] = payload["average"]
        if "adversary" in payload:
            self.state["adversary"] = payload["adversary"]


def recipe_with(recipe: Recipe, changes: dict) -> Recipe:
    """``recipe`` with some fields changed (``train --recipe '{"source_adversary": 1.0}'``): an experiment that
    the model card records in full. ``mix`` is given as {family: share}. Unknown fields are refused by name."""
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"not a recipe field: {', '.join(unknown)} (fields: {', '.join(sorted(known))})")
    changes = dict(changes)
    if isinstance(changes.get("mix"), dict):
        changes["mix"] = tuple((str(family), float(share)) for family, share in changes["mix"].items())
    return replace(recipe, **changes)


def train(name: str, variant: str, cache: Path, out: Path, seed: int = 0, device: str | None = None,
          steps: int | None = None, workers: int = 1, val_sbi_count: int = 400, overrides: dict | None = None,
          batch_size: int | None = None, lr: float | None = None, cpu_bf16: bool | None = None,
          init_from: str | None = None, validate_every: int | None = None, recipe_changes: dict | None = None) -> Path:
    recipe = recipe_with(RECIPES[(name, variant)], recipe_changes or {})
    run = setup_run(out, device)
    if batch_size is not None:
        recipe = replace(recipe, batch_size=batch_size, sr_batch_size=batch_size)
    if lr is not None:
        recipe = replace(recipe, lr=lr)
    if cpu_bf16 is not None:
        recipe = replace(recipe, cpu_bf16=cpu_bf16)
    if init_from is not None:  # the weights went through the augmentation ramp already: full augmentation at once
        recipe = replace(recipe, curriculum=0.0)
    if steps is not None:  # smoke runs and quick experiments: shorten every stage proportionally
        scale = steps / recipe.steps
        recipe = replace(recipe, steps=steps, sr_steps=int(recipe.sr_steps * scale) and max(1, int(recipe.sr_steps * scale)),
                         warmup_steps=max(1, int(recipe.warmup_steps * scale)), validate_every=max(1, steps // 2))
    if validate_every is not None:
        recipe = replace(recipe, validate_every=validate_every)
    try:
        return Trainer(name, variant, cache, run, seed, recipe, val_sbi_count, workers, overrides, init_from).fit()
    finally:
        if run.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
