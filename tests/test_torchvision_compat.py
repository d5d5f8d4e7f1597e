import torch

from detectors._torchvision_compat import _nms_box_by_box, nms_reference


def test_reference_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.1])
    assert nms_reference(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms_reference(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]
    assert nms_reference(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_pairwise_and_box_by_box_suppression_keep_the_same_boxes():
    generator = torch.Generator().manual_seed(0)
    for count in (1, 7, 300):
        corners = torch.rand(count, 2, generator=generator) * 200
        boxes = torch.cat([corners, corners + 5 + torch.rand(count, 2, generator=generator) * 60], dim=1)
        scores = torch.rand(count, generator=generator)
        for threshold in (0.3, 0.5, 0.7):
            assert nms_reference(boxes, scores, threshold).tolist() == _nms_box_by_box(boxes, scores, threshold).tolist()


def test_torchvision_and_its_nms_work_after_importing_the_package():
    import detectors  # noqa: F401
    from torchvision.ops import batched_nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11.0]])
    keep = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 2]
