"""The detectors share the scoring threads by how long each takes: no worker idles while the other runs two."""
import threading
import time

import numpy as np

from detectors.faces import whole_image_crop
from detectors.pipeline import Analyzer


class SlowDetector:
    """Takes ``seconds`` per call and says in which thread it ran."""

    def __init__(self, name: str, seconds: float, threads: dict):
        self.name, self.seconds, self.threads = name, seconds, threads

    def logits(self, crops):
        time.sleep(self.seconds)
        self.threads.setdefault(self.name, set()).add(threading.get_ident())
        return np.zeros(len(crops))

    def verdict(self, probability):
        return "fake" if probability >= 0.5 else "real"


def test_the_longest_detectors_are_paired_with_the_shortest_once_timed():
    threads: dict = {}
    # In the fixed order, two workers would run 80 + 60 ms on one thread and 20 + 40 ms on the other.
    detectors = [SlowDetector(name, seconds, threads) for name, seconds in (("a", 0.08), ("b", 0.02), ("c", 0.06), ("d", 0.04))]
    analyzer = Analyzer(detectors, workers=2)
    crop = whole_image_crop(np.full((64, 64, 3), 128, np.uint8), 256)
    analyzer.score_crops([crop])  # first call: not timed yet, handed out alike
    threads.clear()
    results = analyzer.score_crops([crop, crop])
    assert all(set(result.logits) == {"a", "b", "c", "d"} for result in results)
    assert threads["a"] == threads["b"] and threads["c"] == threads["d"] and threads["a"] != threads["c"]
