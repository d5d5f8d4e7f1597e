import json
import time

import numpy as np
import pytest
import torch

from detectors import checkpoints, models, registry
from detectors.checkpoints import CheckpointConfig, CheckpointError, Thresholds

NAME = "sficonv"  # the cheapest architecture to build; the format does not depend on which


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = models.create(NAME, "small", input_size=64)
    with torch.no_grad():  # non-default buffers too, so a round trip that drops them is caught
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return net.eval()


def assert_identical(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_local_folder_round_trip_is_bit_identical(tmp_path, model):
    config = CheckpointConfig.for_model(model, thresholds=Thresholds(0.4, 0.3, 0.6), metrics={"auc": 0.9})
    checkpoints.save(model, tmp_path / "ckpt", config)
    loaded = checkpoints.load(tmp_path / "ckpt")
    assert_identical(model, loaded.model)
    assert loaded.model.config.input_size == 64 and loaded.config.overrides == {}
    assert loaded.config.thresholds == Thresholds(0.4, 0.3, 0.6) and loaded.config.metrics == {"auc": 0.9}
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded.model(x))
    written = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert written["labels"] == {"0": "real", "1": "fake"} and written["crop"]["margin"] == 1.3


def test_overrides_are_rebuilt(tmp_path):
    net = models.create(NAME, "small", input_size=64, stem_width=16)
    checkpoints.save(net, tmp_path / "narrow")
    loaded = checkpoints.load(tmp_path / "narrow")
    assert loaded.config.overrides == {"stem_width": 16}
    assert_identical(net, loaded.model)


def _hub_cache(cache, repo, revision, folder):
    """The layout huggingface_hub itself writes: refs/<branch> -> snapshots/<commit>/<files>."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)


def test_hub_cache_round_trip_offline(tmp_path, model, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    checkpoints.save(model, tmp_path / "export")
    revision = "0123456789abcdef0123456789abcdef01234567"
    _hub_cache(tmp_path / "cache", "someone/sficonv-small", revision, tmp_path / "export")
    for source in (f"someone/sficonv-small@{revision}", "someone/sficonv-small"):
        loaded = checkpoints.load(source)
        assert_identical(model, loaded.model)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="not reachable"):
        checkpoints.load("someone/not-cached@main")
    assert time.monotonic() - started < 5  # offline fails fast


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "wrong_shape", "bad_config"])
def test_damaged_checkpoints_give_a_clear_error(tmp_path, model, damage):
    folder = checkpoints.save(model, tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage":
        weights.write_bytes(b"\x80\x04 pickled? never loaded" * 10)
    elif damage == "missing":
        weights.unlink()
    elif damage == "wrong_shape":
        checkpoints.save(models.create(NAME, "small", stem_width=16), tmp_path / "other")
        weights.write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    else:
        (folder / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError) as error:
        checkpoints.load(folder)
    assert str(folder) in str(error.value)


def test_not_a_source_at_all():
    with pytest.raises(CheckpointError, match="not a Hub repo id"):
        checkpoints.load("/definitely/not/here")


def test_thresholds_make_three_way_verdicts():
    thresholds = Thresholds(decision=0.6, uncertain_low=0.4, uncertain_high=0.7)
    assert [thresholds.verdict(p) for p in (0.1, 0.5, 0.65, 0.9)] == ["real", "uncertain", "uncertain", "fake"]


def test_registry_falls_back_to_shipped_and_reports_unavailable(tmp_path, model, monkeypatch):
    monkeypatch.setattr(registry, "ASSETS", tmp_path / "assets")
    checkpoints.save(model, tmp_path / "assets" / NAME)
    registry.write_manifest()  # shipped checkpoints load only when pinned
    sources = registry.configured_sources({registry.SOURCES_VARIABLE: f"{NAME}=someone/missing@v1"})
    result = registry.load_all(sources, device=torch.device("cpu"))
    assert [d.name for d in result.detectors] == [NAME]
    assert any("using the shipped checkpoint" in m for m in result.messages)
    assert set(result.unavailable) == set(registry.DETECTORS) - {NAME}
    detector = result.detectors[0]
    crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    probabilities = detector.probabilities(crops)
    assert probabilities.shape == (3,) and ((probabilities > 0) & (probabilities < 1)).all()


def test_sources_variable_is_validated():
    with pytest.raises(ValueError, match="expected name=source"):
        registry.configured_sources({registry.SOURCES_VARIABLE: "nonsense"})


def test_one_thresholds_type_reads_and_writes_the_shipped_files_unchanged():
    """checkpoints.Thresholds and calibration.Calibration are one type; the shipped config.json files are written
    back byte for byte, and the ensemble rule's thresholds (with their method) key for key."""
    from detectors.calibration import Calibration, EnsembleRule

    assert Calibration is Thresholds
    for name in registry.DETECTORS:
        text = (registry.ASSETS / name / checkpoints.CONFIG_FILE).read_text()
        config = CheckpointConfig.from_json(json.loads(text))
        assert type(config.thresholds) is Thresholds and config.thresholds.method == ""
        assert json.dumps(config.to_json(), indent=2) + "\n" == text, name
    shipped = json.loads((registry.ASSETS / registry.ENSEMBLE_FILE).read_text())
    rule = EnsembleRule.from_dict(shipped)
    assert rule.calibration.method and rule.to_dict()["calibration"] == shipped["calibration"]
    assert Thresholds(0.6, 0.3, 0.8).verdict(0.5) == "uncertain" and Thresholds(0.6, 0.3, 0.8).verdict(0.85) == "fake"
