"""Several boxes per class, one per peak (helpers.peak_boxes, Detection.boxes), on hand-built maps."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.ops import box_iou

import helpers
import helpers as mb


def blob(shape: tuple[int, int], centre: tuple[float, float], sigma: float, height: float = 1.0) -> np.ndarray:
    """An isotropic Gaussian ``[H, W]`` with its peak ``height`` at ``centre = (row, col)``."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return height * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma**2))


def contains(box: mb.Box, centre: tuple[float, float]) -> bool:
    """Whether the pixel at ``centre = (row, col)`` lies inside ``box``."""
    row, col = centre
    return box[0] <= col < box[2] and box[1] <= row < box[3]


def iou(a: mb.Box, b: mb.Box) -> float:
    return float(box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])


def mask_box(mask: np.ndarray) -> mb.Box:
    """The box of every True pixel of ``mask``."""
    rows, cols = np.nonzero(mask)
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


SHAPE = (60, 90)
THREE = [((15, 15), 1.0), ((40, 45), 0.8), ((20, 75), 0.6)]  # (centre, height), well apart


def three_blobs() -> np.ndarray:
    return np.maximum.reduce([blob(SHAPE, centre, 4.0, height) for centre, height in THREE])


# two blobs whose heat joins (one component at threshold 0.2), with a deep valley between them
TOUCHING = [((30, 35), 1.0), ((30, 55), 0.8)]


def touching_blobs() -> tuple[np.ndarray, list[np.ndarray]]:
    parts = [blob(SHAPE, centre, 6.0, height) for centre, height in TOUCHING]
    return np.maximum.reduce(parts), parts


# --------------------------------------------------------------------------------------------
# The instance boxes of detect()
# --------------------------------------------------------------------------------------------


def test_cam_to_instances_finds_two_separate_peaks():
    """A 14 x 14 map with two separated bumps, on a 140 x 280 photo: two boxes, one around each bump,
    scored by their peaks (1.0 and 0.8), the stronger first."""
    cam = torch.zeros(14, 14)
    cam[5:9, 1:4] = 1.0
    cam[5:9, 9:12] = 0.8
    found = mb.cam_to_instances(cam, (140, 280), 0.3)
    assert len(found) == 2
    (first, peak1), (second, peak2) = found
    assert peak1 == pytest.approx(1.0) and peak2 == pytest.approx(0.8)
    assert first[2] <= 140 <= second[0]  # left bump in the left half of the photo, right bump in the right
    for box in (first, second):
        assert 0 <= box[1] < 100 and 40 < box[3] <= 140


def test_detect_instance_boxes_and_scores(lite, chihuahua):
    (det,) = mb.detect(lite, chihuahua, topk=1)
    assert len(det.boxes) == len(det.box_scores) >= 1
    assert list(det.box_scores) == sorted(det.box_scores, reverse=True)
    assert det.box_scores[0] == pytest.approx(det.score, rel=1e-6)  # the best instance holds the map's peak (1.0)
    # One dog: the best instance box is the single box at the instance threshold (found on a coarser map).
    (same,) = mb.detect(lite, chihuahua, topk=1, threshold=mb.DEFAULT_INSTANCE_THRESHOLD)
    assert mb.best_iou(det.boxes[0], [same.box]) > 0.95
    (strict,) = mb.detect(lite, chihuahua, topk=1, instance_threshold=0.9)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    assert area(strict.boxes[0]) < area(det.boxes[0])  # a higher instance threshold: a tighter box
    with pytest.raises(ValueError, match="instance_threshold"):
        mb.detect(lite, chihuahua, topk=1, instance_threshold=0.0)


# --------------------------------------------------------------------------------------------
# One box per peak (helpers.peak_boxes, the default instance rule)
# --------------------------------------------------------------------------------------------

# a strong and a weak blob, well apart: the weak one (0.4) lies below half the strong one's height
STRONG_WEAK = [((20, 20), 1.0), ((35, 70), 0.4)]


def strong_weak() -> tuple[np.ndarray, list[np.ndarray]]:
    parts = [blob(SHAPE, centre, 5.0, height) for centre, height in STRONG_WEAK]
    return np.maximum.reduce(parts), parts


def test_each_peak_is_outlined_at_a_fraction_of_its_own_height():
    heatmap, (strong, weak) = strong_weak()
    result = mb.peak_boxes(heatmap, 0.5)
    assert [peak for _, peak in result] == [pytest.approx(1.0), pytest.approx(0.4)]
    # independent computation: each blob's own pixels at half its height (the other blob is ~0 there)
    assert result[0][0] == mask_box(strong >= 0.5 * 1.0)
    assert result[1][0] == mask_box(weak >= 0.5 * 0.4)
    # a threshold on the map's maximum loses the weak instance: 0.4 < 0.5
    assert helpers.heatmap_to_bbox(heatmap, 0.5) == result[0][0]
    assert ndimage.label(np.asarray(heatmap) >= 0.5 * float(heatmap.max()))[1] == 1


def test_gaussian_peak_box_has_the_analytic_radius():
    """A Gaussian of width sigma is above tau times its height within r = sigma * sqrt(2 ln(1 / tau))."""
    sigma, tau, centre = 5.0, 0.35, (30, 45)
    ((box, peak),) = mb.peak_boxes(blob(SHAPE, centre, sigma), tau)
    radius = sigma * math.sqrt(2 * math.log(1 / tau))
    expected = (centre[1] - math.floor(radius), centre[0] - math.floor(radius))
    assert peak == pytest.approx(1.0)
    assert box == (expected[0], expected[1], centre[1] + math.floor(radius) + 1, centre[0] + math.floor(radius) + 1)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.8])
def test_first_box_is_the_component_holding_the_maximum(threshold):
    """The strongest peak's region is the component of ``heatmap >= threshold * max`` holding the maximum."""
    for heatmap in (three_blobs(), touching_blobs()[0], strong_weak()[0]):
        top = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        expected = mask_box(ndimage_component(heatmap >= threshold * heatmap.max(), top))
        assert mb.peak_boxes(heatmap, threshold)[0][0] == expected


def test_min_peak_drops_weak_peaks():
    heatmap, _ = strong_weak()
    assert len(mb.peak_boxes(heatmap, 0.5, min_peak=0.45)) == 1  # 0.4 < 0.45 of the maximum
    assert len(mb.peak_boxes(heatmap, 0.5, min_peak=0.35)) == 2


def test_min_peak_distance_merges_nearby_peaks():
    heatmap, _ = touching_blobs()  # peaks 20 columns apart
    assert len(mb.peak_boxes(heatmap, 0.35, min_peak_distance=25, nms_iou=1.0)) == 1
    two = mb.peak_boxes(heatmap, 0.35, min_peak_distance=15, nms_iou=1.0)
    assert [contains(box, centre) for (box, _), (centre, _) in zip(two, TOUCHING, strict=True)] == [True, True]


def test_a_plateau_is_one_peak():
    heatmap = np.zeros(SHAPE)
    heatmap[10:20, 30:50] = 1.0
    heatmap[40:45, 10:15] = 0.5
    assert mb.peak_boxes(heatmap, 0.5, min_peak_distance=1, nms_iou=1.0) == [
        ((30.0, 10.0, 50.0, 20.0), 1.0),
        ((10.0, 40.0, 15.0, 45.0), 0.5),
    ]


def test_a_low_peak_whose_region_holds_a_higher_one_gives_the_joint_box():
    """A shoulder (0.5) on a strong blob: at 0.35 of the shoulder's height its region reaches the strong peak,
    so its box covers both; NMS removes it when it overlaps the strong box too much."""
    heatmap = np.maximum(blob(SHAPE, (30, 30), 5.0), blob(SHAPE, (30, 40), 3.0, 0.5))
    both = mb.peak_boxes(heatmap, 0.35, min_peak_distance=3, nms_iou=1.0)
    assert [peak for _, peak in both] == [pytest.approx(1.0), pytest.approx(0.5)]
    assert both[1][0] == mask_box(ndimage_component(heatmap >= 0.35 * 0.5, (30, 40)))
    assert contains(both[1][0], (30, 30)) and contains(both[1][0], (30, 40))
    overlap = iou(both[0][0], both[1][0])
    assert mb.peak_boxes(heatmap, 0.35, min_peak_distance=3, nms_iou=overlap - 0.01) == both[:1]
    assert mb.peak_boxes(heatmap, 0.35, min_peak_distance=3, nms_iou=overlap + 0.01) == both


def ndimage_component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 8-connected component of ``mask`` holding ``seed`` (row, col), by flood fill."""
    out = np.zeros_like(mask)
    stack = [seed]
    while stack:
        r, c = stack.pop()
        if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not out[r, c]:
            out[r, c] = True
            stack += [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    return out


def test_peak_boxes_sorted_and_capped():
    result = mb.peak_boxes(three_blobs(), 0.3)
    assert [peak for _, peak in result] == [pytest.approx(h) for _, h in THREE]
    for (box, _), (centre, _) in zip(result, THREE, strict=True):
        assert contains(box, centre)
    assert mb.peak_boxes(three_blobs(), 0.3, max_boxes=2) == result[:2]
    assert mb.peak_boxes(torch.from_numpy(three_blobs()), 0.3) == result


@pytest.mark.parametrize("heatmap", [np.zeros(SHAPE), np.full(SHAPE, 0.3), -three_blobs(), np.full(SHAPE, np.nan)])
def test_peak_boxes_of_maps_without_a_confident_region_are_empty(heatmap):
    assert mb.peak_boxes(heatmap, 0.4) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threshold": 0.0}, ValueError, "threshold must be in"),
        ({"threshold": "0.4"}, TypeError, "threshold must be a number"),
        ({"min_peak": 1.5}, ValueError, "min_peak must be in"),
        ({"min_peak": None}, TypeError, "min_peak must be a number"),
        ({"min_peak_distance": 0}, ValueError, "min_peak_distance must be an int >= 1"),
        ({"nms_iou": -0.1}, ValueError, "nms_iou must be in"),
        ({"max_boxes": 0}, ValueError, "max_boxes must be an int >= 1"),
        ({"heatmap": np.zeros(5)}, ValueError, r"heatmap must be a 2-D \[H, W\]"),
    ],
)
def test_peak_boxes_bad_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        mb.peak_boxes(**{"heatmap": three_blobs(), "threshold": 0.4, **kwargs})


def test_cam_to_instances_outlines_a_weak_peak_at_its_own_height():
    """A 14 x 14 map with a strong (1.0) and a weak (0.4) bump: at 0.5 of each peak's own height both are
    boxed, although the weak one lies below 0.5 of the map's maximum."""
    cam = torch.zeros(14, 14)
    cam[5:9, 1:4] = 1.0
    cam[5:9, 9:12] = 0.4
    found = mb.cam_to_instances(cam, (140, 280), 0.5)
    assert [peak for _, peak in found] == [pytest.approx(1.0), pytest.approx(0.4)]
    assert found[0][0][2] <= 140 <= found[1][0][0]
    with pytest.raises(ValueError, match=r"cam must be a \[h, w\] tensor"):
        mb.cam_to_instances(cam[None], (140, 280), 0.5)
