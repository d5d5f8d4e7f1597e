"""A tiny data folder and source table the training tests make from a public-domain photo (never ../shared).

Seven sources cover what the real table has: two real photo sources, a GAN drawn beside one of them, face
swaps each paired with its source video's crop, a generator kept out of training, and real and fake clips.
File names are chosen so that every split of every source holds something (splits are hashes of names).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from detectors.training.sources import ROLES, split_of
from tests.fixtures import write_video

TABLE = """name,folder,files,label,family,generator,unit,role,looks_like,groups
photos-a,photos-a,*,real,real,camera A,file,train,,
photos-b,photos-b,*,real,real,camera B,file,train,,
gan,gan,*,fake,gan,a GAN,file,train,photos-b,
swap-real,swaps/real,*,real,real,swap sources,pair,train,,swaps/pairs.csv
swap-fake,swaps/fake,*,fake,faceswap,a swap tool,pair,train,swap-real,swaps/pairs.csv
novel,novel,*,fake,diffusion,a new generator,file,unseen,photos-a photos-b,
clip-real,clips,real_*.mp4,real,real,real clips,file,train,,
clip-fake,clips,fake_*.mp4,fake,reenactment,a talking head,file,unseen,clip-real,
"""
COUNTS = {"photos-a": 12, "photos-b": 10, "gan": 10, "swap": 8, "novel": 6, "clip-real": 3, "clip-fake": 2}


def variants(picture: np.ndarray, count: int, rng: np.random.Generator):
    """Re-framed, recoloured copies of the photo: the face stays findable, the pixels differ."""
    for _ in range(count):
        side = int(rng.integers(300, 420))  # the face (x 181-268, y 62-172) stays inside every crop
        x0 = int(rng.integers(max(0, 268 - side), min(181, 512 - side) + 1))
        y0 = int(rng.integers(max(0, 172 - side), min(62, 512 - side) + 1))
        tile = Image.fromarray(picture).crop((x0, y0, x0 + side, y0 + side)).resize((256, 256))
        shifted = np.clip(np.asarray(tile).astype(int) + rng.integers(-20, 21, 3), 0, 255).astype(np.uint8)
        yield Image.fromarray(shifted)


def unit_names(prefix: str, count: int, role: str, suffix: str = ".jpg") -> list[str]:
    """``count`` names whose hash lands at least one in each split the role uses (train first)."""
    fractions = ROLES[role]
    wanted = [s for s, f in zip(("train", "val", "test"), fractions) if f > 0]
    names, i, seen = [], 0, set()
    while len(names) < count:
        name = f"{prefix}{i:04d}{suffix}"
        split = split_of(name, fractions)
        if split not in seen or len(seen) == len(wanted):
            seen.add(split)
            names.append(name)
        i += 1
    return names


def make(root: Path, picture: np.ndarray) -> Path:
    """Write the tiny data folder and its table; returns the table's path."""
    rng = np.random.default_rng(0)

    def images(folder: str, names: list[str]) -> None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, image in zip(names, variants(picture, len(names), rng)):
            image.save(root / folder / name, quality=90)

    for name in ("photos-a", "photos-b", "gan"):
        images(name, unit_names(name, COUNTS[name], "train"))
    images("novel", unit_names("novel", COUNTS["novel"], "unseen"))
    # Swaps: the split unit is the source video (the real's stem); each fake is named after its own video.
    reals = unit_names("src", COUNTS["swap"], "train", suffix="")
    images("swaps/real", [f"{r}.jpg" for r in reals])
    fakes = [f"swap{i:03d}" for i in range(len(reals))]
    images("swaps/fake", [f"{f}.jpg" for f in fakes])
    (root / "swaps" / "pairs.csv").write_text("fake,real\n" + "".join(f"{f},{r}\n" for f, r in zip(fakes, reals)))
    (root / "clips").mkdir()
    for name in unit_names("real_clip", COUNTS["clip-real"], "train", ".mp4"):
        write_video(root / "clips" / name, frames=12, fps=6, size=(256, 256), picture=picture)
    for name in unit_names("fake_clip", COUNTS["clip-fake"], "unseen", ".mp4"):
        write_video(root / "clips" / name, frames=12, fps=6, size=(256, 256), picture=picture)
    table = root / "sources.csv"
    table.write_text(TABLE)
    return table
