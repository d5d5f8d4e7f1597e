"""Timing: median and p95 over repeated runs after warm-up, with a ResNet-50 reference from the same run.

Absolute seconds depend on the machine and on what else runs on it; the ratio to one torchvision ResNet-50
forward (224 px, batch 1) measured in the same process compares across machines.
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import models


@dataclass
class Timing:
    name: str
    median_s: float
    p95_s: float
    runs: int
    ratio_to_reference: float | None = None

    def row(self) -> str:
        ratio = "" if self.ratio_to_reference is None else f"{self.ratio_to_reference:.2f}"
        return f"| {self.name} | {self.median_s * 1000:.1f} | {self.p95_s * 1000:.1f} | {ratio} |"


def measure(name: str, run: Callable[[], object], repeats: int = 10, warmup: int = 2, budget_s: float = 60.0) -> Timing:
    """Time ``run`` ``repeats`` times after ``warmup`` calls, stopping early (at least 3 runs) past ``budget_s``."""
    for _ in range(warmup):
        run()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() - started < budget_s):
        begin = time.perf_counter()
        run()
        samples.append(time.perf_counter() - begin)
    return Timing(name, float(np.median(samples)), float(np.percentile(samples, 95)), len(samples))


def _synchronised(device: torch.device, fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def resnet50_reference(device: torch.device) -> Timing:
    from torchvision.models import resnet50

    net = resnet50(weights=None).eval().to(device)
    x = torch.randn(1, 3, 224, 224, device=device)
    with torch.inference_mode():
        return measure("reference: torchvision ResNet-50, 224 px, batch 1", _synchronised(device, lambda: net(x)))


def model_latency(
    device: torch.device, variants: Sequence[str] = ("small", "paper"), batches: Sequence[int] = (1, 16), repeats: int = 5
) -> list[Timing]:
    """Forward latency of every architecture and variant at its input size (random weights: speed only)."""
    timings = []
    for name in models.names():
        for variant in variants:
            net = models.create(name, variant).eval().to(device)
            size = net.config.input_size
            for batch in batches:
                x = torch.randn(batch, 3, size, size, device=device)
                with torch.inference_mode():
                    timings.append(
                        measure(f"{name}/{variant} {size} px, batch {batch}", _synchronised(device, lambda: net(x)), repeats=repeats, warmup=1)
                    )
            del net
    return timings


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def report(reference: Timing, timings: list[Timing], device: torch.device) -> dict:
    for timing in timings:
        timing.ratio_to_reference = timing.median_s / reference.median_s
    return {"device": str(device), "machine": machine_description(device), "reference": asdict(reference), "timings": [asdict(t) for t in timings]}


def markdown_table(reference: Timing, timings: list[Timing]) -> str:
    lines = ["| what | median ms | p95 ms | x ResNet-50 |", "|---|---|---|---|", reference.row(), *(t.row() for t in timings)]
    return "\n".join(lines)
