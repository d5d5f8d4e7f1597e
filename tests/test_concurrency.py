"""Requests served side by side: one concurrency group for every model event, and Grad-CAM that never disturbs
another request's scoring (or another Grad-CAM) on the same shared model."""
import threading

import numpy as np
import pytest
import torch

from detectors import explain, registry

ROUNDS = 12


@pytest.fixture(scope="module")
def detector():
    """A shipped detector as the app holds it: one model shared by every request's thread."""
    return registry.load_detector("sficonv", str(registry.ASSETS / "sficonv"), torch.device("cpu"))


def _side_by_side(*jobs):
    """Run each job ROUNDS times in its own thread, all at once; the exceptions they raised."""
    errors, start = [], threading.Barrier(len(jobs))

    def run(job):
        start.wait()
        for _ in range(ROUNDS):
            try:
                job()
            except Exception as error:  # noqa: BLE001 - the test reports what each thread met
                errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def test_grad_cam_does_not_disturb_scoring_or_another_grad_cam(detector):
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    alone_logits, alone_cam = detector.logits(crops), explain.grad_cam(detector, crops[0])
    logits, cams = [], []
    errors = _side_by_side(lambda: logits.append(detector.logits(crops)), lambda: cams.append(explain.grad_cam(detector, crops[0])),
                           lambda: cams.append(explain.grad_cam(detector, crops[0])))
    assert errors == [], {repr(e) for e in errors}
    assert len(logits) == ROUNDS and len(cams) == 2 * ROUNDS
    assert all(np.allclose(value, alone_logits, atol=1e-5) for value in logits)
    assert all(np.allclose(cam, alone_cam, atol=1e-4) for cam in cams)
    assert all(parameter.grad is None for parameter in detector.model.parameters())  # nothing written into the shared model


# Queued events that run no detector (their own concurrency limit is enough).
NOT_MODEL_EVENTS = {"video_preview", "provenance_panel"}


def test_every_model_event_shares_one_concurrency_group():
    import app

    demo = app.build_demo(concurrency=3)
    queued = [fn for fn in demo.fns.values() if fn.queue]
    model_events = [fn for fn in queued if fn.name not in NOT_MODEL_EVENTS]
    assert {fn.name for fn in model_events} >= {"analyse_image", "analyse_video", "robustness_probe", "select_face", "load_example_output"}
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in model_events} == {(app.MODEL_EVENTS, 3)}
    assert all(fn.concurrency_id != app.MODEL_EVENTS for fn in queued if fn.name in NOT_MODEL_EVENTS)
