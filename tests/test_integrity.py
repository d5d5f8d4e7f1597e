"""Checkpoint integrity: pinned sha256 for the shipped checkpoints, tampered / truncated / missing files give a
clear error for that detector while the others still load, and Hub sources must name a revision."""
import json
import shutil

import numpy as np
import pytest
import torch

from detectors import checkpoints, fast_path, models, registry
from detectors.checkpoints import CheckpointError


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """A private copy of the shipped checkpoints, with the registry pointed at it."""
    copy = tmp_path / "checkpoints"
    shutil.copytree(registry.ASSETS, copy)
    monkeypatch.setattr(registry, "ASSETS", copy)
    return copy


def _load_all():
    return registry.load_all(sources={name: str(registry.ASSETS / name) for name in registry.DETECTORS}, device=torch.device("cpu"))


def test_every_shipped_checkpoint_is_pinned_and_matches():
    pinned = registry.manifest()
    assert set(pinned) == set(registry.DETECTORS)
    for name, digests in pinned.items():
        assert digests == checkpoints.folder_digests(registry.ASSETS / name), name


def test_tampered_weights_make_only_that_detector_unavailable(assets):
    weights = assets / "sficonv" / checkpoints.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte deep inside a tensor: safetensors alone would load it silently
    weights.write_bytes(bytes(data))
    result = _load_all()
    assert [d.name for d in result.detectors] == ["specxnet", "resynthesis", "mdcsd"]
    assert result.unavailable == ["sficonv"]
    assert any("SFIConv unavailable" in m and "does not match its pinned sha256" in m for m in result.messages)


def test_truncated_weights_and_edited_config_are_refused(assets):
    weights = assets / "mdcsd" / checkpoints.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    config = assets / "specxnet" / checkpoints.CONFIG_FILE
    data = json.loads(config.read_text())
    data["thresholds"]["decision"] = 0.01  # a quiet edit that would flip every verdict
    config.write_text(json.dumps(data))
    result = _load_all()
    assert sorted(result.unavailable) == ["mdcsd", "specxnet"]
    assert len(result.detectors) == 2
    assert all("pinned sha256" in m for m in result.messages)


def test_missing_checkpoint_is_reported_and_the_rest_load(assets):
    shutil.rmtree(assets / "resynthesis")
    result = _load_all()
    assert result.unavailable == ["resynthesis"]
    assert any("Re-synthesis unavailable" in m and "missing" in m for m in result.messages)
    # What the app shows in its "where each checkpoint was loaded from" panel.
    from detectors import service

    # The panel also builds the process-wide analyzer; it must not outlive this test with three detectors.
    original = registry.shared
    registry.shared = lambda: result
    service.analyzer.cache_clear()
    try:
        status = service.detector_status()
    finally:
        registry.shared = original
        service.analyzer.cache_clear()
    assert "Re-synthesis unavailable" in status and status.count("from `") == 3


def test_a_checkpoint_missing_from_the_manifest_is_refused(assets):
    manifest = json.loads((assets / registry.MANIFEST_FILE).read_text())
    del manifest["checkpoints"]["mdcsd"]
    (assets / registry.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not in MANIFEST.json.*python -m detectors manifest"):
        registry.load_detector("mdcsd", str(assets / "mdcsd"), torch.device("cpu"))


def test_only_safetensors_are_read(assets):
    folder = assets / "sficonv"
    (folder / checkpoints.WEIGHTS_FILE).unlink()
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")  # a pickle is never a fallback
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        checkpoints.load(folder)


def test_hub_sources_must_be_pinned_to_a_revision():
    with pytest.raises(ValueError, match="pin the Hub repo"):
        registry.configured_sources({registry.SOURCES_VARIABLE: "sficonv=someone/sficonv-small"})
    assert registry.configured_sources({registry.SOURCES_VARIABLE: "sficonv=someone/sficonv-small@0123abc"})["sficonv"] == "someone/sficonv-small@0123abc"


def test_fast_path_matches_the_eager_model():
    traced = [spec.name for spec in models.specs() if spec.fast_path]
    assert traced == ["specxnet"]
    for name in traced:
        detector = registry.load_detector(name, str(registry.ASSETS / name), torch.device("cpu"))
        assert detector.fast is not None, name
        crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
        fast = detector.logits(crops)
        detector.fast = None
        assert np.abs(fast - detector.logits(crops)).max() < fast_path.TOLERANCE, name


def test_a_tampered_ensemble_rule_is_not_used(assets):
    detectors = _load_all().detectors
    assert registry.load_ensemble(detectors) is not None
    rule = json.loads((assets / registry.ENSEMBLE_FILE).read_text())
    rule["intercept"] = rule.get("intercept", 0) + 5.0
    (assets / registry.ENSEMBLE_FILE).write_text(json.dumps(rule))
    assert registry.load_ensemble(detectors) is None
