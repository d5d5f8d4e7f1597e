"""``scan --engine ray`` against the local scan: the same record for every file, in order, with 2 local workers.

Marked ``ray`` (run alone with ``python -m pytest -m ray``); skipped when Ray is not installed.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from detectors import cli
from tests.fixtures import multi_face_picture, write_video

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def archive_folder(tmp_path_factory, astronaut):
    """About 40 pictures (one face, several faces, none), two short clips, one corrupt file, in sub-folders."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(0)
    for i in range(36):
        folder = root / f"day{i % 3}"
        folder.mkdir(exist_ok=True)
        picture = np.clip(astronaut.astype(int) + rng.integers(-25, 26, 3), 0, 255).astype(np.uint8)
        size = int(rng.integers(200, 700))
        Image.fromarray(picture).resize((size, size)).save(folder / f"photo{i:02d}.jpg", quality=int(rng.integers(60, 96)))
    Image.fromarray(multi_face_picture(3, 1)).save(root / "group.png")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(root / "sky.png")
    write_video(root / "clip_a.mp4", frames=20, fps=10, size=(256, 256), codec="libx264", picture=astronaut)
    write_video(root / "clip_b.mp4", frames=12, fps=6, size=(320, 240), picture=multi_face_picture(2, 0))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    return root


def _scan(capsys, *args) -> tuple[int, list[dict]]:
    status = cli.main(["scan", *args, "--frames", "4"])
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _close(local, remote, where: str = "") -> None:
    """Same fields, same values; floats may differ in the last rounded digit (sums in another process)."""
    if isinstance(local, dict):
        assert isinstance(remote, dict) and local.keys() == remote.keys(), where
        for key in local:
            _close(local[key], remote[key], f"{where}.{key}")
    elif isinstance(local, list):
        assert isinstance(remote, list) and len(local) == len(remote), where
        for i, (a, b) in enumerate(zip(local, remote)):
            _close(a, b, f"{where}[{i}]")
    elif isinstance(local, float):
        assert remote == pytest.approx(local, abs=2e-4), where
    else:
        assert remote == local, where


def test_ray_records_equal_the_local_scan_file_for_file(archive_folder, capsys, tmp_path):
    local_status, local = _scan(capsys, str(archive_folder))
    ray_status, remote = _scan(capsys, str(archive_folder), "--engine", "ray", "--workers", "2")
    assert local_status == ray_status == cli.EXIT_UNREADABLE_INPUT  # the broken file, and only it
    assert len(local) == len(remote) == 36 + 5
    assert [r["path"] for r in remote] == [r["path"] for r in local]  # input order, each file once
    for a, b in zip(local, remote):
        _close(a, b, a["path"])
    broken = next(r for r in remote if r["path"].endswith("broken.jpg"))
    assert broken["error"] and "broken.jpg" in broken["error"]
    assert next(r for r in remote if r["path"].endswith("group.png"))["faces"]["count"] == 3
    # Parquet (written by the driver whatever the engine; the local one here): one row per file, frames nested
    from detectors.records import read_parquet

    out = tmp_path / "records.parquet"
    assert cli.main(["scan", str(archive_folder), "--frames", "4", "-o", str(out)]) == cli.EXIT_UNREADABLE_INPUT
    rows = read_parquet(out)
    assert [row["path"] for row in rows] == [r["path"] for r in local]
    for row, record in zip(rows, local):
        assert (row["faces"], row["verdict"], row["error"]) == (record["faces"]["count"], record["verdict"], record["error"])
        _close(record["scores"], row["scores"], row["path"])
        _close([f["scores"] for f in record.get("frames", [])], [f["scores"] for f in row["frames"]], row["path"])
    assert len(next(row for row in rows if row["path"].endswith("clip_a.mp4"))["frames"]) == 4


def test_a_missing_ray_is_a_clear_message(monkeypatch, capsys, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    assert cli.main(["scan", str(tmp_path), "--engine", "ray"]) == cli.EXIT_MISSING_EXTRA
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err
