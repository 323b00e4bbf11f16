"""Several scored boxes per class from one heatmap (helpers.scored_boxes), on hand-built maps."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
# Separate instances
# --------------------------------------------------------------------------------------------


def test_three_separate_blobs_give_three_boxes_sorted_by_peak():
    result = mb.scored_boxes(three_blobs(), 0.3)
    assert len(result) == 3
    for (box, score), (centre, height) in zip(result, THREE, strict=True):
        assert contains(box, centre), (box, centre)
        assert score == pytest.approx(height)
    assert all(isinstance(v, float) for box, _ in result for v in box)
    assert [score for _, score in result] == sorted((score for _, score in result), reverse=True)
    # the old API sees three components too, but boxes only the largest (the highest blob here)
    assert len(helpers.heatmap_to_boxes(three_blobs(), 0.3)) == 3


def test_tensor_input_and_max_boxes():
    heatmap = torch.from_numpy(three_blobs()).float()
    result = mb.scored_boxes(heatmap, 0.3, max_boxes=2)
    assert [score for _, score in result] == pytest.approx([1.0, 0.8])
    assert result == mb.scored_boxes(heatmap.numpy(), 0.3)[:2]


def test_touching_blobs_are_split_into_one_box_each():
    heatmap, parts = touching_blobs()
    threshold = 0.2
    assert len(helpers.heatmap_to_boxes(heatmap, threshold)) == 1  # one component: the old single box
    result = mb.scored_boxes(heatmap, threshold)
    assert len(result) == 2
    peak = heatmap.max()
    for (box, score), part, (centre, height) in zip(result, parts, TOUCHING, strict=True):
        own = mask_box(part >= threshold * peak)  # the blob's box, from the blob alone
        assert iou(box, own) >= 0.5, (box, own)
        assert contains(box, centre)
        assert score == pytest.approx(height)
    # the two regions partition the component: their boxes together make the old box
    union = (*np.min([b[:2] for b, _ in result], axis=0), *np.max([b[2:] for b, _ in result], axis=0))
    assert union == pytest.approx(helpers.heatmap_to_bbox(heatmap, threshold))


def test_large_component_is_split_on_a_pooled_grid():
    """Ten times the touching-blobs map (540,000 pixels > MAX_SPLIT_CELLS): the same two instances."""
    shape = (600, 900)
    parts = [blob(shape, (10 * r, 10 * c), 60.0, height) for (r, c), height in TOUCHING]
    heatmap = np.maximum.reduce(parts).astype(np.float32)
    assert heatmap.size > mb.MAX_SPLIT_CELLS
    result = mb.scored_boxes(heatmap, 0.2)
    assert len(result) == 2
    for (box, score), part, (_, height) in zip(result, parts, TOUCHING, strict=True):
        assert iou(box, mask_box(part >= 0.2)) >= 0.5
        assert score == pytest.approx(height)  # peaks are exact (max pooling keeps maxima)
    union = (*np.min([b[:2] for b, _ in result], axis=0), *np.max([b[2:] for b, _ in result], axis=0))
    assert union == pytest.approx(helpers.heatmap_to_bbox(heatmap, 0.2))  # the outer edges stay exact


def test_touching_blobs_without_splitting_give_one_box():
    heatmap, _ = touching_blobs()
    result = mb.scored_boxes(heatmap, 0.2, split_peaks=False)
    assert result == [(helpers.heatmap_to_bbox(heatmap, 0.2), pytest.approx(1.0))]


def test_shallow_dip_is_not_a_valley():
    """Two summits whose saddle is ~5% of the maximum below the lower one: one object at min_valley_depth=0.1."""
    heatmap = blob(SHAPE, (30, 38), 6.0) + blob(SHAPE, (30, 52), 6.0, 0.97)
    heatmap /= heatmap.max()
    row = heatmap[30]  # the map is symmetric about row 30: summits and saddle lie on it
    left, right = int(row[:45].argmax()), 45 + int(row[45:].argmax())
    dip = row[right] - row[left : right + 1].min()
    assert 0.02 < dip < 0.1
    assert len(mb.scored_boxes(heatmap, 0.3, min_peak_distance=3)) == 1
    # the valley rule is what merges it: a smaller depth splits the two summits
    assert len(mb.scored_boxes(heatmap, 0.3, min_peak_distance=3, min_valley_depth=dip / 2)) == 2
    assert len(mb.scored_boxes(heatmap, 0.3, min_peak_distance=3, min_valley_depth=dip * 1.01)) == 1


def test_peaks_closer_than_min_peak_distance_are_one_instance():
    heatmap, _ = touching_blobs()  # peaks 20 pixels apart
    assert len(mb.scored_boxes(heatmap, 0.2, min_peak_distance=25)) == 1
    assert len(mb.scored_boxes(heatmap, 0.2, min_peak_distance=15)) == 2


def test_a_peak_near_a_higher_one_joins_it_among_several_instances():
    """A (1.0) and C (0.8) far apart, B (0.7) 12 pixels from A behind a deep valley; a low ridge joins all three."""
    rows = np.arange(SHAPE[0])[:, None]
    ridge = 0.15 * np.exp(-((rows - 30) ** 2) / 8.0) * ((np.arange(SHAPE[1]) >= 20) & (np.arange(SHAPE[1]) <= 70))
    peaks = [((30, 20), 1.0), ((30, 32), 0.7), ((30, 70), 0.8)]
    heatmap = np.maximum.reduce([ridge] + [blob(SHAPE, centre, 4.0, height) for centre, height in peaks])
    assert len(helpers.heatmap_to_boxes(heatmap, 0.1)) == 1
    near = mb.scored_boxes(heatmap, 0.1, min_peak_distance=8, nms_iou=1.0)
    assert [score for _, score in near] == pytest.approx([1.0, 0.8, 0.7])
    far = mb.scored_boxes(heatmap, 0.1, min_peak_distance=15, nms_iou=1.0)  # B is within 15 pixels of A
    assert [score for _, score in far] == pytest.approx([1.0, 0.8])
    assert contains(far[0][0], (30, 32)) and not contains(far[1][0], (30, 32))


# --------------------------------------------------------------------------------------------
# Specks and NMS
# --------------------------------------------------------------------------------------------


def test_tiny_speck_is_dropped_but_a_lone_tiny_component_is_kept():
    heatmap = blob(SHAPE, (30, 30), 6.0)
    heatmap[55, 85] = 0.9  # one pixel, far away: its own component
    assert len(helpers.heatmap_to_boxes(heatmap, 0.4)) == 2
    result = mb.scored_boxes(heatmap, 0.4)  # 1 pixel < 1% of 60 * 90
    assert len(result) == 1 and contains(result[0][0], (30, 30))
    kept = mb.scored_boxes(heatmap, 0.4, min_area_fraction=0.0)
    assert [box for box, _ in kept] == [result[0][0], (85.0, 55.0, 86.0, 56.0)]

    alone = np.zeros(SHAPE)
    alone[10:12, 20:23] = 1.0  # 6 pixels, the only component
    assert mb.scored_boxes(alone, 0.5) == [((20.0, 10.0, 23.0, 12.0), 1.0)]
    assert mb.scored_boxes(alone, 0.5, min_area_fraction=1.0) == [((20.0, 10.0, 23.0, 12.0), 1.0)]


def test_tiny_instance_joins_its_neighbour_in_the_same_component():
    heatmap = np.maximum(blob(SHAPE, (30, 35), 6.0), blob(SHAPE, (30, 50), 1.5, 0.8))  # B: ~30 pixels above 0.1
    assert len(helpers.heatmap_to_boxes(heatmap, 0.1)) == 1
    merged = mb.scored_boxes(heatmap, 0.1)  # 30 pixels < 1% of 60 * 90: part of A's region
    assert merged == [(helpers.heatmap_to_bbox(heatmap, 0.1), pytest.approx(1.0))]
    split = mb.scored_boxes(heatmap, 0.1, min_area_fraction=0.0)
    assert [score for _, score in split] == pytest.approx([1.0, 0.8])
    assert contains(split[1][0], (30, 50)) and not contains(split[0][0], (30, 50))


def test_dropped_speck_may_hold_the_global_peak():
    heatmap = 0.9 * blob(SHAPE, (30, 30), 6.0)
    heatmap[55, 85] = 1.0
    assert mb.scored_boxes(heatmap, 0.4) == [(helpers.heatmap_to_bbox(heatmap, 0.4), pytest.approx(0.9))]


def test_nms_removes_the_lower_of_two_overlapping_boxes():
    # diagonal neighbours: the watershed line is diagonal, so the two regions' boxes overlap
    heatmap = np.maximum(blob(SHAPE, (25, 35), 7.0), blob(SHAPE, (38, 50), 7.0, 0.8))
    both = mb.scored_boxes(heatmap, 0.1, nms_iou=1.0)
    assert len(both) == 2
    overlap = iou(both[0][0], both[1][0])
    assert 0.05 < overlap < 0.5
    assert mb.scored_boxes(heatmap, 0.1, nms_iou=overlap + 0.01) == both
    assert mb.scored_boxes(heatmap, 0.1, nms_iou=overlap - 0.01) == both[:1]
    assert mb.scored_boxes(heatmap, 0.1, nms_iou=0.0) == both[:1]


# --------------------------------------------------------------------------------------------
# Degenerate maps, compatibility with heatmap_to_boxes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "heatmap",
    [
        np.zeros(SHAPE),
        np.full(SHAPE, 0.5),
        -1.0 - three_blobs(),
        np.where(three_blobs() > 0.9, np.nan, three_blobs()),
        np.where(three_blobs() > 0.9, np.inf, three_blobs()),
        np.zeros((0, 5)),
        torch.zeros(4, 4),
    ],
    ids=["zeros", "constant", "negative", "nan", "inf", "empty", "tensor-zeros"],
)
def test_degenerate_maps_have_no_box(heatmap):
    assert mb.scored_boxes(heatmap, 0.4) == []
    assert mb.scored_boxes(heatmap, 0.4, split_peaks=False) == []


def smooth_map(seed: int) -> torch.Tensor:
    """A random 7x7 map upsampled bilinearly to 64x80 (Grad-CAM-like, often several components)."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 1, 7, 7, generator=generator) * 2 - 0.5
    return F.interpolate(small, size=(64, 80), mode="bilinear", align_corners=False)[0, 0]


@pytest.mark.parametrize("threshold", [0.2, 0.4, 0.6, 0.8])
def test_same_boxes_as_heatmap_to_boxes_without_splitting(threshold):
    several = 0
    for seed in range(40):
        heatmap = smooth_map(seed)
        old = helpers.heatmap_to_boxes(heatmap, threshold)
        new = mb.scored_boxes(heatmap, threshold, split_peaks=False, min_area_fraction=0, nms_iou=1.0, max_boxes=1000)
        assert sorted(box for box, _ in new) == sorted(old), seed
        assert new[0][1] == pytest.approx(float(heatmap.max()))  # the first box holds the global peak
        several += len(old) > 1
        # defaults: a subset (specks dropped, overlaps suppressed, at most 10), the largest always there
        default = [box for box, _ in mb.scored_boxes(heatmap, threshold, split_peaks=False)]
        assert set(default) <= set(old) and old[0] in default
        # splitting only cuts components: every split box lies inside one component's box
        for box, _ in mb.scored_boxes(heatmap, threshold, min_area_fraction=0, nms_iou=1.0, max_boxes=1000):
            assert any(o[0] <= box[0] and o[1] <= box[1] and box[2] <= o[2] and box[3] <= o[3] for o in old)
    assert several > 5  # the comparison covered maps with several components


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threshold": 0.0}, ValueError, "threshold must be in"),
        ({"threshold": 1.5}, ValueError, "threshold must be in"),
        ({"threshold": math.nan}, ValueError, "threshold must be in"),
        ({"threshold": "0.4"}, TypeError, "threshold must be a number"),
        ({"threshold": True}, TypeError, "threshold must be a number"),
        ({"min_area_fraction": -0.1}, ValueError, "min_area_fraction must be in"),
        ({"min_area_fraction": 2}, ValueError, "min_area_fraction must be in"),
        ({"min_area_fraction": None}, TypeError, "min_area_fraction must be a number"),
        ({"split_peaks": 1}, TypeError, "split_peaks must be a bool"),
        ({"min_peak_distance": 0}, ValueError, "min_peak_distance must be an int >= 1"),
        ({"min_peak_distance": 2.5}, TypeError, "min_peak_distance must be an int"),
        ({"min_peak_distance": True}, TypeError, "min_peak_distance must be an int"),
        ({"nms_iou": 1.5}, ValueError, "nms_iou must be in"),
        ({"nms_iou": math.nan}, ValueError, "nms_iou must be in"),
        ({"max_boxes": 0}, ValueError, "max_boxes must be an int >= 1"),
        ({"max_boxes": 2.0}, TypeError, "max_boxes must be an int"),
        ({"min_valley_depth": -1}, ValueError, "min_valley_depth must be in"),
    ],
)
def test_bad_arguments_raise_with_clear_messages(kwargs, error, message):
    arguments = {"heatmap": three_blobs(), "threshold": 0.4, **kwargs}
    with pytest.raises(error, match=message):
        mb.scored_boxes(**arguments)


@pytest.mark.parametrize(
    ("heatmap", "error", "message"),
    [
        (np.zeros((2, 3, 4)), ValueError, r"heatmap must be a 2-D \[H, W\]"),
        (np.zeros(5), ValueError, r"heatmap must be a 2-D \[H, W\]"),
        ([[0.0, 1.0]], ValueError, r"heatmap must be a 2-D \[H, W\]"),
        (np.ones((4, 4), dtype=bool), TypeError, "heatmap must hold real numbers"),
        (np.ones((4, 4), dtype=complex), TypeError, "heatmap must hold real numbers"),
    ],
)
def test_bad_heatmaps_raise(heatmap, error, message):
    with pytest.raises(error, match=message):
        mb.scored_boxes(heatmap, 0.4)


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
    assert [box for box, _ in mb.scored_boxes(heatmap, 0.5)] == [result[0][0]]


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
    """The strongest peak's region is heatmap_to_bbox's "peak" component at the same threshold."""
    for heatmap in (three_blobs(), touching_blobs()[0], strong_weak()[0]):
        assert mb.peak_boxes(heatmap, threshold)[0][0] == mb.heatmap_to_bbox(heatmap, threshold, "peak")


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


def test_instance_rules_of_cam_to_instances():
    """A 14 x 14 map with a strong and a weak bump: "peaks" outlines both, "components" at 0.5 of the
    maximum only the strong one; an unknown rule is an error that names the rules."""
    cam = torch.zeros(14, 14)
    cam[5:9, 1:4] = 1.0
    cam[5:9, 9:12] = 0.4
    assert len(mb.cam_to_instances(cam, (140, 280), 0.5, "peaks")) == 2
    assert len(mb.cam_to_instances(cam, (140, 280), 0.5, "components")) == 1
    with pytest.raises(ValueError, match=r"instance_rule must be one of \('peaks', 'components', 'split'\)"):
        mb.cam_to_instances(cam, (140, 280), 0.5, "watershed")


def test_detect_rejects_an_unknown_instance_rule(lite, chihuahua):
    with pytest.raises(ValueError, match="instance_rule must be one of"):
        mb.detect(lite, chihuahua, topk=1, instance_rule="largest")
