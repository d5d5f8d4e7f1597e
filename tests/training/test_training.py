"""Training smoke runs on a tiny data folder the test makes from a public-domain photo (never ../shared)."""
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from detectors import checkpoints
from detectors.training.data import SOURCES, build_cache, load_all, split_of
from detectors.training.model_card import _mix_text
from detectors.training.stream import KINDS, FaceStream
from detectors.training.trainer import RECIPES, STATE_FILE, Run, Trainer, WeightAverage, lr_factor, train

pytestmark = pytest.mark.slow
TINY = {"celeba": 20, "ffhq": 12, "stylegan": 12}
TRAIN_ARGS = dict(steps=4, batch_size=8, val_sbi_count=4, workers=0, overrides={"input_size": 64})


def _variants(astronaut: np.ndarray, count: int, rng: np.random.Generator):
    """Re-framed, recoloured copies of the photo: the face stays findable, the pixels differ."""
    for _ in range(count):
        side = int(rng.integers(300, 420))  # the face (x 181-268, y 62-172) stays inside every crop
        x0 = int(rng.integers(max(0, 268 - side), min(181, 512 - side) + 1))
        y0 = int(rng.integers(max(0, 172 - side), min(62, 512 - side) + 1))
        tile = Image.fromarray(astronaut).crop((x0, y0, x0 + side, y0 + side)).resize((256, 256))
        shifted = np.clip(np.asarray(tile).astype(int) + rng.integers(-20, 21, 3), 0, 255).astype(np.uint8)
        yield Image.fromarray(shifted)


def _names(source, count: int, per_held_out_split: int = 2) -> list[str]:
    """File names whose hash puts ``per_held_out_split`` in val and in test, the rest in train."""
    wanted = {"train": count - 2 * per_held_out_split, "val": per_held_out_split, "test": per_held_out_split}
    names, i = [], 0
    while any(wanted.values()):
        name = f"{source.name}{i:04d}.jpg"
        split = split_of(name, source.fractions)
        if wanted[split]:
            wanted[split] -= 1
            names.append(name)
        i += 1
    return names


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, astronaut):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for source in SOURCES:
        folder = root / source.folder
        folder.mkdir(parents=True)
        for name, image in zip(_names(source, TINY[source.name]), _variants(astronaut, TINY[source.name], rng)):
            image.save(folder / name, quality=90)
    cache = build_cache(root, root / "cache", workers=1)
    return root, cache


def test_splits_are_seeded_hashes_of_the_name():
    source = SOURCES[0]
    names = [f"face{i}.jpg" for i in range(2000)]
    splits = [split_of(n, source.fractions) for n in names]
    shares = [splits.count(s) / len(names) for s in ("train", "val", "test")]
    assert np.allclose(shares, source.fractions, atol=0.03)
    assert splits == [split_of(n, source.fractions) for n in reversed(names)][::-1]  # order-independent
    assert splits != [split_of(n, source.fractions, seed=1) for n in names]


def test_cache_holds_every_face_with_landmarks(tiny_data):
    _, cache = tiny_data
    sets = load_all(cache)
    for name, face_set in sets.items():
        assert face_set.crops.shape == (TINY[name], 256, 256, 3)
        assert face_set.landmarks.shape == (TINY[name], 5, 2)
        assert ((face_set.landmarks > 0) & (face_set.landmarks < 256)).all()
    manifest = (cache / "manifest.json").stat().st_mtime
    build_cache(tiny_data[0], cache, workers=1)  # same settings: reused, not rebuilt
    assert (cache / "manifest.json").stat().st_mtime == manifest


def test_smoke_run_exports_a_calibrated_loadable_checkpoint(tiny_data, tmp_path):
    _, cache = tiny_data
    best = train("sficonv", "small", cache, tmp_path / "run", device="cpu", **{**TRAIN_ARGS, "steps": 2})
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert json.loads(state["meta"])["stage"] == "done"
    loaded = checkpoints.load(best)
    assert loaded.model.config.input_size == 64
    thresholds = loaded.config.thresholds
    assert thresholds.uncertain_low <= thresholds.decision <= thresholds.uncertain_high
    assert set(loaded.config.metrics["validation"]) == {"stylegan", "sbi"}
    assert loaded.config.training["steps_done"] >= 1


def test_an_interrupted_run_resumes_where_it_stopped(tiny_data, tmp_path):
    _, cache = tiny_data
    out = tmp_path / "run"
    train("sficonv", "small", cache, out, device="cpu", **TRAIN_ARGS)  # validates (and saves) at steps 2 and 4
    state_path = out / STATE_FILE
    state = torch.load(state_path, weights_only=True)
    meta = json.loads(state["meta"])
    assert [h["step"] for h in meta["history"]] == [2, 4]
    # Pretend the run was killed right after the save at step 2.
    meta.update(stage="classifier", step=2, history=meta["history"][:1])
    state["meta"] = json.dumps(meta)
    torch.save(state, state_path)
    train("sficonv", "small", cache, out, device="cpu", **TRAIN_ARGS)
    resumed = json.loads(torch.load(state_path, weights_only=True)["meta"])
    assert [h["step"] for h in resumed["history"]] == [2, 4] and resumed["stage"] == "done"
    before = state_path.stat().st_mtime
    train("sficonv", "small", cache, out, device="cpu", **TRAIN_ARGS)  # finished: nothing to do
    assert state_path.stat().st_mtime == before


def test_two_stage_resynthesis_smoke(tiny_data, tmp_path):
    _, cache = tiny_data
    best = train("resynthesis", "small", cache, tmp_path / "run", device="cpu", **TRAIN_ARGS)
    loaded = checkpoints.load(best)
    assert loaded.config.training["recipe"]["sr_steps"] >= 1


def test_mdcsd_fits_its_frequency_normalisation(tiny_data, tmp_path):
    _, cache = tiny_data
    best = train("mdcsd", "small", cache, tmp_path / "run", device="cpu", **TRAIN_ARGS)
    loaded = checkpoints.load(best).model
    fresh = __import__("detectors").models.create("mdcsd", "small", input_size=64)
    buffers = {k: v for k, v in loaded.state_dict().items() if "mean" in k and "frequency" in k.lower()}
    assert buffers, "no frequency normalisation buffer found"
    fresh_state = fresh.state_dict()
    assert any(not torch.allclose(v, fresh_state[k]) for k, v in buffers.items())


def test_torchrun_two_processes_gloo(tiny_data, tmp_path):
    root, cache = tiny_data
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "detectors", "train", "--detector", "sficonv", "--variant", "small", "--device", "cpu",
        "--data", str(root), "--cache", str(cache), "--max-celeba", "0", "--cache-workers", "1",
        "--out", str(tmp_path / "ddp"), "--steps", "2", "--batch-size", "8", "--workers", "0", "--val-sbi", "4",
        "--overrides", '{"input_size": 64}',
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ddp" / "best" / "model.safetensors").exists()
    assert (tmp_path / "ddp" / "best" / "README.md").read_text().startswith("---")


def test_learning_rate_schedule_warms_up_then_decays():
    factors = [lr_factor(step, 100, 10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[-1] < 0.05 and all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_the_recipes_sample_mix_is_what_the_stream_draws(tiny_data, tmp_path):
    _, cache = tiny_data
    recipe = replace(RECIPES[("sficonv", "small")], steps=4, mix=(("celeba", 0.5), ("sbi", 0.5)))
    trainer = Trainer("sficonv", "small", cache, Run(tmp_path, torch.device("cpu")), recipe=recipe, val_sbi_count=4,
                      workers=0, overrides={"input_size": 64})
    stream = trainer._loader(False, 8, 0).dataset
    assert stream.mix == {"celeba": 0.5, "sbi": 0.5}
    rng = np.random.default_rng(0)
    labels = [stream.sample(rng).label for _ in range(40)]
    assert 0 < sum(labels) < 40  # CelebA reals and self-blended fakes, about half each
    shipped = {kind for r in RECIPES.values() if r.mix for kind, _ in r.mix}
    assert shipped <= set(KINDS)
    assert all(abs(sum(share for _, share in r.mix) - 1) < 1e-9 for r in RECIPES.values() if r.mix)


def test_a_self_blended_pair_is_a_fake_and_its_own_real_augmented_alike(tiny_data):
    _, cache = tiny_data
    sets = load_all(cache)
    rng = np.random.default_rng(0)
    plain = FaceStream(sets, mix={"sbi_pair": 1.0}, augmented=False)
    for _ in range(5):
        fake, real = plain.samples(rng)
        assert (fake.label, real.label) == (1, 0)
        changed = np.abs(fake.crop.astype(int) - real.crop.astype(int)).max(axis=2) > 0
        # the real is the untouched source: only the blended face region differs, never the border
        assert changed.any() and not changed[:8].any() and not changed[:, :8].any()
    augmented = FaceStream(sets, mix={"sbi_pair": 1.0})
    pair_gaps, stranger_gaps = [], []
    for _ in range(8):
        (fake, real), (other, _) = augmented.samples(rng), augmented.samples(rng)
        pair_gaps.append(np.abs(fake.crop.astype(int) - real.crop.astype(int)).mean())
        stranger_gaps.append(np.abs(fake.crop.astype(int) - other.crop.astype(int)).mean())
    # same flip, framing, blur and JPEG for both members: far closer than two independent draws
    assert np.mean(pair_gaps) < 0.5 * np.mean(stranger_gaps)


def test_pair_shares_count_samples_and_unknown_kinds_are_refused(tiny_data):
    _, cache = tiny_data
    sets = load_all(cache)
    stream = FaceStream(sets, mix={"stylegan": 0.5, "sbi_pair": 0.5}, augmented=False)
    rng = np.random.default_rng(1)
    labels = [s.label for _ in range(400) for s in stream.samples(rng)]
    # half the samples are pair members (a quarter fakes, a quarter reals), half StyleGAN fakes
    assert 0.68 < np.mean(labels) < 0.82
    with pytest.raises(ValueError, match="unknown kinds"):
        FaceStream(sets, mix={"celeba": 0.5, "deepfakes": 0.5})
    # the model card splits a pair's share into its fakes and its reals
    assert _mix_text((("sbi_pair", 0.7), ("stylegan", 0.3))) == (
        "self-blended fakes 35 % with, beside each, the real it was made from 35 % (the pair augmented alike), StyleGAN fakes 30 %")


class _Scaled(torch.nn.Module):
    """The smallest model with a float weight, a batch-norm counter and a constraint hook."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.norm = torch.nn.BatchNorm1d(3)

    def project_constraints(self) -> None:
        pass


def test_the_weight_average_warms_up_its_decay_and_copies_counters():
    model = _Scaled()
    average = WeightAverage(model, decay=0.99)
    assert not any(p.requires_grad for p in average.module.parameters())
    with torch.no_grad():
        model.weight.fill_(1.0)
    model.norm.num_batches_tracked.fill_(7)
    average.update(model)  # decay min(0.99, 1/10): mostly the new weights
    assert torch.allclose(average.module.weight, torch.full((3,), 0.9))
    assert int(average.module.norm.num_batches_tracked) == 7
    with torch.no_grad():
        model.weight.fill_(2.0)
    average.update(model)  # decay 2/11
    assert torch.allclose(average.module.weight, torch.full((3,), 0.9 * 2 / 11 + 2.0 * 9 / 11))
    assert torch.equal(model.weight.detach(), torch.full((3,), 2.0))  # the trained model is left alone
    restored = WeightAverage(_Scaled(), decay=0.99)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 2 and torch.equal(restored.module.weight, average.module.weight)


def test_a_run_with_a_weight_average_exports_the_average_and_resumes_it(tiny_data, tmp_path):
    _, cache = tiny_data
    recipe = replace(RECIPES[("sficonv", "small")], steps=4, batch_size=8, warmup_steps=1, validate_every=2, ema_decay=0.9)

    def make_in(folder):
        return Trainer("sficonv", "small", cache, Run(folder, torch.device("cpu")), recipe=recipe, val_sbi_count=4,
                       workers=0, overrides={"input_size": 64})

    best = make_in(tmp_path).fit()
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    meta = json.loads(state["meta"])
    assert all(set(h["raw"]) == {"stylegan", "sbi"} for h in meta["history"])  # raw weights validated beside
    assert "average" not in state  # the finished run keeps no optimiser-side state
    exported = checkpoints.load(best).model.state_dict()
    raw = state["model"]
    name = next(k for k, v in raw.items() if v.is_floating_point() and v.dim() == 4)
    assert not torch.allclose(exported[name], raw[name])  # what ships is the average, not the last step
    # killed right after the save at step 2: the resumed run restores that average and goes on from it
    second = tmp_path / "second"

    class Killed(Exception):
        pass

    interrupted = make_in(second)
    save = interrupted._save_state

    def save_then_die(optimizer, stage):
        save(optimizer, stage)
        if interrupted.state["step"] == 2:
            raise Killed

    interrupted._save_state = save_then_die
    with pytest.raises(Killed):
        interrupted.fit()
    saved = torch.load(second / STATE_FILE, weights_only=True)
    assert saved["average"]["updates"] == 2
    resumed = make_in(second)
    resumed.fit()
    assert resumed.average.updates == 4
