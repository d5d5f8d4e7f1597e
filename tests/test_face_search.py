"""The face search against facenet-pytorch's own MTCNN (the reference it replaces), piece by piece and whole."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from detectors.face_search import FaceSearch, ProposalNet, Pyramid, SummedArea, load_network
from tests.fixtures import multi_face_picture

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def search():
    return FaceSearch()


@pytest.fixture(scope="module")
def reference():
    import detectors  # noqa: F401  (torchvision on CPU-only torch)
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, min_face_size=40, select_largest=False)


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _pictures(astronaut) -> dict[str, np.ndarray]:
    """What users send: a portrait, several faces, a small picture, a face filling the frame, a wide frame,
    nothing at all, and a few of the project's own photos when ../shared is beside the checkout."""
    tight = astronaut[62:172, 181:268]
    pictures = {
        "portrait": astronaut,
        "three faces": multi_face_picture(3, 1),
        "five faces": multi_face_picture(5, 2),
        "small": np.asarray(Image.fromarray(astronaut).resize((120, 120), Image.Resampling.BILINEAR)),
        "face filling the frame": np.asarray(Image.fromarray(tight).resize((200, 250), Image.Resampling.BICUBIC)),
        "wide frame": np.pad(astronaut, ((0, 0), (300, 40), (0, 0)), mode="edge"),
        "no face": np.full((180, 260, 3), 90, np.uint8),
    }
    for folder in ("gan/ffhq-real", "real/unsplash-portraits", "faceswap/dfdc/real"):
        for path in sorted((SHARED / folder).glob("*.jpg"))[:3]:
            pictures[f"{folder}/{path.name}"] = np.asarray(Image.open(path).convert("RGB"))
    return pictures


def test_the_same_faces_boxes_scores_and_landmarks_as_facenet_pytorch(search, reference, astronaut):
    for name, picture in _pictures(astronaut).items():
        boxes, scores, points = reference.detect(picture, landmarks=True)
        found = search(picture[None], 40)[0]
        if boxes is None:
            assert len(found.boxes) == 0, name
            continue
        boxes, scores, points = (np.asarray(a, dtype=np.float64) for a in (boxes, scores, points))
        assert len(found.boxes) == len(boxes), name
        for ours, theirs in zip(found.boxes, boxes):
            assert _iou(ours, theirs) > 0.99, name
        assert np.allclose(found.scores, scores, atol=1e-4), name
        assert np.abs(found.landmarks - points).max() < 0.5, name


def test_several_pictures_at_once_give_what_each_gives_alone(search, astronaut):
    frames = np.stack([astronaut, astronaut[:, ::-1], np.full_like(astronaut, 30), np.roll(astronaut, 90, axis=1)])
    together = search(frames, 40)
    for frame, found in zip(frames, together):
        alone = search(frame[None], 40)[0]
        assert np.allclose(found.boxes, alone.boxes, atol=1e-3) and np.allclose(found.scores, alone.scores, atol=1e-5)
    assert len(together[0].boxes) == 1 and len(together[2].boxes) == 0


def test_summed_area_resampling_is_area_interpolation():
    rng = np.random.default_rng(0)
    picture = torch.from_numpy(rng.integers(0, 256, (2, 70, 93, 3), dtype=np.uint8))
    table = SummedArea(picture)
    as_float = picture.permute(0, 3, 1, 2).float()
    level = table.level(31, 17)
    expected = (F.interpolate(as_float, size=(31, 17), mode="area") - 127.5) * 0.0078125
    assert level.shape == (2, 3, 31, 17) and torch.allclose(level, expected, atol=1e-5)
    index = torch.tensor([0, 1, 1, 0])
    top, bottom = torch.tensor([0, 5, 60, 10]), torch.tensor([70, 9, 70, 50])  # tall, 4 rows (blown up), edge
    left, right = torch.tensor([0, 40, 80, 3]), torch.tensor([93, 90, 93, 20])
    crops = table.resample(index, top, bottom, left, right, 24)
    for k in range(4):
        region = as_float[index[k], :, top[k]:bottom[k], left[k]:right[k]][None]
        expected = (F.adaptive_avg_pool2d(region, 24) - 127.5) * 0.0078125
        assert torch.allclose(crops[k:k + 1], expected, atol=1e-5), k


def test_one_packed_pass_scores_every_level_as_alone():
    net = load_network(ProposalNet(), "pnet.pt")
    search = FaceSearch()
    for height, width in ((256, 256), (181, 333), (61, 47)):  # odd sizes: ceil-mode pooling at the levels' edges
        pyramid = Pyramid.build(height, width, search.scales(height, width, 20))
        levels = [torch.rand(1, 3, rows, columns) * 2 - 1 for rows, columns in pyramid.shapes]
        canvas = torch.zeros(1, 3, *pyramid.canvas)
        for level, (top, left) in zip(levels, pyramid.origins):
            canvas[:, :, top:top + level.shape[2], left:left + level.shape[3]] = level
        with torch.no_grad():
            _, packed = net(canvas, pyramid.valid)
            for i, (level, (top, left)) in enumerate(zip(levels, pyramid.origins)):
                _, alone = net(level)
                rows, columns = alone.shape[2:]
                assert torch.allclose(packed[0, :, top // 2:top // 2 + rows, left // 2:left // 2 + columns], alone[0], atol=1e-5)
                assert (pyramid.level[top // 2:top // 2 + rows, left // 2:left // 2 + columns] == i).all()
        assert int((pyramid.level >= 0).sum()) == sum(net(level)[1][0, 0].numel() for level in levels)


def test_pictures_too_small_for_the_smallest_face_have_none(search):
    assert len(search(np.zeros((1, 30, 500, 3), np.uint8), 40)[0].boxes) == 0
    assert len(search(np.zeros((2, 12, 12, 3), np.uint8), 12)[1].boxes) == 0
