"""A detector is registered by its model file and one line: a stand-in, written here as a model file of its own
and registered the way ``detectors.models.DETECTOR_MODULES`` registers the shipped ones, is known to the
registry, the loader, the scorer, the command line, the views, Grad-CAM and the page's text, with no other
file edited."""
import sys

import numpy as np
import pytest
import torch

from detectors import checkpoints, cli, explain, models, registry, service, views
from detectors.pipeline import Analyzer

STANDIN_FILE = '''
"""A tiny stand-in detector: two convolutions and a linear logit."""
import torch
from torch import nn

from ._base import IMAGENET_MEAN, IMAGENET_STD, Detector, DetectorSpec, ModelConfig


class TinyDetector(Detector):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(x)).mean(dim=(2, 3))).squeeze(1)


SMALL_CONFIG = ModelConfig(name="standin", variant="small", input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, arch={"width": 4})

SPEC = DetectorSpec(name="standin", display_name="Stand-in", colour="#123456", variants={"small": SMALL_CONFIG},
                    model=TinyDetector, cam_layer="features")
'''


def _cli_accepts(name: str) -> bool:
    try:
        cli.build_parser().parse_args(["train", "--detector", name, "--out", "unused"])
    except SystemExit:
        return False
    return True


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in's model file in a folder of the models package, registered; forgotten afterwards."""
    folder = tmp_path / "model_files"
    folder.mkdir()
    (folder / "standin.py").write_text(STANDIN_FILE)
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    models.register_modules(("standin",))  # what appending "standin" to DETECTOR_MODULES does at import
    yield models.spec("standin")
    models.unregister("standin")
    sys.modules.pop("detectors.models.standin", None)


def test_the_shipped_detectors_are_registered_by_their_specs():
    assert len(registry.DETECTORS) == len(models.DETECTOR_MODULES)  # one detector per listed model file, in its order
    assert registry.DETECTORS[:4] == ("specxnet", "sficonv", "resynthesis", "mdcsd")
    assert registry.DISPLAY_NAMES["mdcsd"] == "MD-CSDNetwork"
    for spec in models.specs():
        for variant, config in spec.variants.items():
            model = models.create(spec.name, variant)
            assert model.config.input_size == config.input_size and model.config.mean == config.mean
        assert explain._module(models.create(spec.name), spec.cam_layer) is not None  # the Grad-CAM layer exists
        assert views.scorer_colour(spec.name) == spec.colour
    assert len({spec.colour for spec in models.specs()} | {views.ENSEMBLE_COLOUR}) == len(models.specs()) + 1


def test_a_detector_registered_by_its_spec_alone_is_known_everywhere(standin, tmp_path):
    assert not _cli_accepts("nonesuch")  # the check below can fail
    assert registry.DETECTORS[-1] == "standin" and registry.DISPLAY_NAMES["standin"] == "Stand-in"
    assert _cli_accepts("standin")
    assert "Five published detectors" in service.intro_markdown() and "Stand-in" in service.intro_markdown()

    folder = checkpoints.save(models.create("standin"), tmp_path / "standin")
    result = registry.load_all(sources={"standin": str(folder)}, device=torch.device("cpu"))
    assert [d.name for d in result.detectors] == ["standin"] and result.messages == []
    detector = result.detectors[0]
    assert detector.display_name == "Stand-in" and detector.model.config.input_size == 32

    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    from detectors.faces import whole_image_crop

    faces = Analyzer([detector]).score_crops([whole_image_crop(crop, 256) for crop in crops])
    assert all(set(face.scores) == {"standin"} and face.verdicts["standin"] in ("fake", "real", "uncertain") for face in faces)

    figure = views.timeline_figure([0.0, 1.0], {"standin": [0.2, 0.7]}, {"standin": "Stand-in"})
    assert figure.data[0].line.color == "#123456"
    cam = explain.grad_cam(detector, crops[0])
    assert cam is not None and cam.shape == (256, 256) and 0.0 <= cam.min() and cam.max() <= 1.0


def test_a_spec_must_match_its_configs():
    wrong = models.ModelConfig(name="other", variant="small", input_size=32, mean=models.IMAGENET_MEAN, std=models.IMAGENET_STD)
    with pytest.raises(ValueError, match="ModelConfig says other/small"):
        models.register(models.DetectorSpec(name="mismatch", display_name="M", colour="#000000", variants={"small": wrong}, model=models.Detector))
    assert models.spec("mismatch") is None
