"""The model-free metrics of the measuring system (evaluation/metrics.py): box and mask IoU, GT-known, MaxBoxAcc,
COCO pair IoUs, bootstrap intervals, threshold and k-fold choice, AP@0.5 and CorLoc, the speckle measure. No model;
a few seconds in all.

The small cases are built by hand, with the answer worked out in the comment next to them.
"""

import dataclasses
import random

import numpy as np
import pytest
import torch

import helpers
from evaluation import metrics
from evaluation.metrics import Interval


def plain_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes with exclusive ends, by plain arithmetic."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


# --------------------------------------------------------------------------------------------
# box_iou, best_iou
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),  # half overlap: 5x10 / (100 + 100 - 50)
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # identical
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # disjoint
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges: x1 is exclusive, no shared pixel
        ((0, 0, 10, 10), (2, 2, 7, 7), 25 / 100),  # contained: 5x5 inside 10x10
        ((0, 0, 4, 2), (2, 0, 6, 4), 4 / 20),  # x 2..4, y 0..2 overlap (4); areas 8 and 16: 4 / (8 + 16 - 4)
    ],
)
def test_box_iou_hand_built(a, b, expected):
    iou = metrics.box_iou([a], [b])
    assert tuple(iou.shape) == (1, 1)
    assert float(iou[0, 0]) == pytest.approx(expected, abs=1e-12)
    assert float(metrics.box_iou([b], [a])[0, 0]) == pytest.approx(expected, abs=1e-12)  # symmetric


def test_box_iou_is_pairwise():
    a = [(0, 0, 10, 10), (5, 0, 15, 10)]
    b = [(0, 0, 10, 10), (20, 20, 30, 30), (2, 2, 7, 7)]
    expected = [[1.0, 0.0, 0.25], [1 / 3, 0.0, 10 / 115]]  # row 2, col 3: 2x5 / (100 + 25 - 10)
    np.testing.assert_allclose(metrics.box_iou(a, b).numpy(), expected, atol=1e-12)


def test_box_iou_matches_plain_arithmetic_on_random_boxes():
    rng = random.Random(0)

    def box():
        x0, y0 = rng.uniform(0, 50), rng.uniform(0, 50)
        return (x0, y0, x0 + rng.uniform(0.5, 40), y0 + rng.uniform(0.5, 40))

    a = [box() for _ in range(7)]
    b = [box() for _ in range(5)]
    expected = [[plain_iou(p, q) for q in b] for p in a]
    np.testing.assert_allclose(metrics.box_iou(a, b).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(metrics.box_iou(torch.tensor(a), torch.tensor(b)).numpy(), expected, atol=1e-6)


def test_best_iou():
    gt = [(20, 20, 30, 30), (5, 0, 15, 10), (0, 0, 10, 5)]
    # Against (0, 0, 10, 10): 0, 1/3, and 50 / 100 = 0.5 -> the best is 0.5.
    assert metrics.best_iou((0, 0, 10, 10), gt) == pytest.approx(0.5)
    assert metrics.best_iou((20, 20, 30, 30), gt) == 1.0
    assert metrics.best_iou((100, 100, 110, 110), gt) == 0.0
    assert metrics.best_iou(None, gt) == 0.0
    assert metrics.best_iou((0, 0, 10, 10), []) == 0.0


# --------------------------------------------------------------------------------------------
# GT-known accuracy, top-1 localization, MaxBoxAcc, MaxBoxAccV2
# --------------------------------------------------------------------------------------------

GT = [
    [(0, 0, 10, 10)],
    [(0, 0, 10, 10)],
    [(0, 0, 10, 10)],
    [(50, 50, 60, 60), (0, 0, 10, 10)],
    [(0, 0, 10, 10)],
]
PRED = [
    (0, 0, 10, 10),  # IoU 1 -> hit
    (5, 0, 15, 10),  # IoU 1/3 -> miss at 0.5, hit at 0.3
    None,  # no box -> miss
    (0, 0, 10, 5),  # IoU with the second GT box 50/100 = 0.5 exactly -> hit (>= 0.5)
    (0, 0, 10, 4),  # IoU 40/100 = 0.4 -> miss at 0.5, hit at 0.3
]


def test_best_ious_per_photo():
    np.testing.assert_allclose(metrics.best_ious(PRED, GT).numpy(), [1.0, 1 / 3, 0.0, 0.5, 0.4], atol=1e-12)


def test_gt_known_hits_and_accuracy():
    hits = metrics.gt_known_hits(PRED, GT)
    assert hits.dtype == torch.bool
    assert hits.tolist() == [True, False, False, True, False]
    assert metrics.gt_known_accuracy(PRED, GT) == pytest.approx(2 / 5)
    # At IoU >= 0.3 the 1/3 and 0.4 boxes hit as well.
    assert metrics.gt_known_accuracy(PRED, GT, iou_threshold=0.3) == pytest.approx(4 / 5)
    assert metrics.gt_known_accuracy(PRED, GT, iou_threshold=0.6) == pytest.approx(1 / 5)


@pytest.mark.parametrize("cut", ["pred", "gt"])
def test_gt_known_accuracy_length_mismatch_raises(cut):
    pred, gt = (PRED[:-1], GT) if cut == "pred" else (PRED, GT[:-1])
    with pytest.raises(ValueError, match="same length"):
        metrics.gt_known_accuracy(pred, gt)
    with pytest.raises(ValueError, match="same length"):
        metrics.gt_known_hits(pred, gt)


@pytest.mark.parametrize("bad", [1.5, -0.1])
def test_iou_threshold_out_of_range_raises(bad):
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\]"):
        metrics.gt_known_hits(PRED, GT, bad)


def test_top1_loc_hits_and_accuracy():
    # photo:         0 (hit)  1 (miss)  2 (miss)  3 (hit)  4 (miss)
    true_classes = [7, 7, 7, 3, 3]
    pred_classes = [7, 7, 7, 4, 3]  # photo 3's class is wrong: its hit does not count
    hits = metrics.top1_loc_hits(pred_classes, true_classes, PRED, GT)
    assert hits.tolist() == [True, False, False, False, False]
    # Only photo 0 is right in class and box -> 1/5.
    assert metrics.top1_localization_accuracy(pred_classes, true_classes, PRED, GT) == pytest.approx(1 / 5)
    # All classes right: the same as GT-known hits.
    assert metrics.top1_loc_hits(true_classes, true_classes, PRED, GT).tolist() == [True, False, False, True, False]
    # At IoU >= 0.3 photos 0, 1, 4 are right in class and box (photo 3's class is wrong).
    assert metrics.top1_loc_hits(torch.tensor(pred_classes), true_classes, PRED, GT, 0.3).tolist() == [
        True,
        True,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("short", range(4))
def test_top1_loc_length_mismatch_raises(short):
    arguments = [[7, 7, 7, 3, 3], [7, 7, 7, 3, 3], PRED, GT]
    arguments[short] = arguments[short][:-1]
    with pytest.raises(ValueError, match="same length"):
        metrics.top1_loc_hits(*arguments)
    with pytest.raises(ValueError, match="same length"):
        metrics.top1_localization_accuracy(*arguments)


def test_max_box_acc_best_threshold():
    gt = [[(0, 0, 10, 10)]] * 4
    hit, miss = (0, 0, 10, 10), (20, 20, 30, 30)
    boxes = {
        0.6: [hit, hit, hit, miss],  # 3/4
        0.2: [hit, hit, miss, miss],  # 2/4
        0.8: [hit, None, None, None],  # 1/4
        0.4: [hit, hit, hit, miss],  # 3/4: ties with 0.6, the lowest threshold wins
    }
    accuracy, threshold = metrics.max_box_acc(boxes, gt)
    assert accuracy == pytest.approx(3 / 4)
    assert threshold == 0.4
    # A unique best is returned whatever its position.
    boxes[0.8] = [hit, hit, hit, hit]
    assert metrics.max_box_acc(boxes, gt) == (pytest.approx(1.0), 0.8)


def test_max_box_acc_all_zero_returns_lowest_threshold():
    gt = [[(0, 0, 10, 10)]] * 2
    accuracy, threshold = metrics.max_box_acc({0.5: [None, None], 0.3: [None, None], 0.7: [None, None]}, gt)
    assert (accuracy, threshold) == (0.0, 0.3)


def test_max_box_acc_bad_inputs_raise():
    gt = [[(0, 0, 10, 10)]] * 2
    with pytest.raises(ValueError, match="at least one threshold"):
        metrics.max_box_acc({}, gt)
    with pytest.raises(ValueError, match="same length"):
        metrics.max_box_acc({0.5: [(0, 0, 10, 10)]}, gt)
    with pytest.raises(TypeError, match="dict"):
        metrics.max_box_acc([[(0, 0, 10, 10)]] * 2, gt)
    with pytest.raises(ValueError, match="same length"):
        metrics.max_box_acc_v2({0.5: [(0, 0, 10, 10)]}, gt)


# Four photos, one ground-truth box (0, 0, 10, 10) each.
V2_GT = [[(0, 0, 10, 10)]] * 4
V2_BOXES = {
    # IoUs 1, 0.4, 0.4, 0 -> accuracy 3/4 at IoU 0.3, 1/4 at 0.5, 1/4 at 0.7
    0.2: [(0, 0, 10, 10), (0, 0, 10, 4), (0, 0, 10, 4), None],
    # IoUs 0.8, 0.8, 0, 0 -> accuracy 2/4 at IoU 0.3, 0.5 and 0.7
    0.6: [(0, 0, 10, 8), (0, 0, 10, 8), None, None],
}


def test_max_box_acc_v2_hand_built():
    # MaxBoxAcc: IoU 0.3 -> 3/4 (threshold 0.2); 0.5 -> 2/4 (0.6); 0.7 -> 2/4 (0.6).
    assert metrics.max_box_acc(V2_BOXES, V2_GT, 0.3) == (pytest.approx(0.75), 0.2)
    assert metrics.max_box_acc(V2_BOXES, V2_GT, 0.5) == (pytest.approx(0.5), 0.6)
    assert metrics.max_box_acc(V2_BOXES, V2_GT, 0.7) == (pytest.approx(0.5), 0.6)
    # V2 = (3/4 + 2/4 + 2/4) / 3 = 7/12; a single threshold could only reach 7/12 (0.2: 5/12, 0.6: 6/12).
    assert metrics.max_box_acc_v2(V2_BOXES, V2_GT) == pytest.approx(7 / 12)


def test_max_box_acc_v2_is_mean_of_three_max_box_acc():
    rng = random.Random(1)

    def maybe_box():
        if rng.random() < 0.15:
            return None
        x0, y0 = rng.uniform(0, 30), rng.uniform(0, 30)
        return (x0, y0, x0 + rng.uniform(1, 40), y0 + rng.uniform(1, 40))

    gt = [[(10, 10, 40, 40)], [(0, 0, 20, 30), (25, 25, 50, 50)], [(5, 5, 45, 25)]] * 10
    boxes = {t: [maybe_box() for _ in gt] for t in (0.1, 0.3, 0.5, 0.7)}
    expected = np.mean([metrics.max_box_acc(boxes, gt, iou)[0] for iou in (0.3, 0.5, 0.7)])
    assert metrics.max_box_acc_v2(boxes, gt) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Foreground IoU
# --------------------------------------------------------------------------------------------

# Pets-style ground truth: 0 background, 1 cat, 2 dog, 255 ignore (the trimap border).
GT_MASK = np.array(
    [
        [0, 0, 1, 1],
        [0, 2, 2, 255],
        [0, 0, 255, 255],
        [0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
PRED_MASK = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 1, 1],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
    ],
    dtype=bool,
)
# Valid pixels: all but (1,3), (2,2), (2,3). Foreground: (0,2), (0,3), (1,1), (1,2) -> 4.
# Predicted on valid pixels: (0,0), (0,2), (1,1), (1,2), (3,3) -> 5 ((1,3) and (2,2) are ignored).
# Intersection (0,2), (1,1), (1,2) = 3; union 4 + 5 - 3 = 6 -> IoU 3/6 = 0.5.
# Without the ignore rule the two ignored predictions would join the union: 3/8.


def test_foreground_iou_hand_built_with_ignore():
    assert metrics.foreground_iou(PRED_MASK, GT_MASK) == pytest.approx(0.5)
    assert metrics.foreground_iou(torch.from_numpy(PRED_MASK), torch.from_numpy(GT_MASK)) == pytest.approx(0.5)
    assert metrics.foreground_iou(PRED_MASK.astype(np.uint8), GT_MASK) == pytest.approx(0.5)


def test_foreground_iou_other_ignore_index():
    # With ignore_index 7 (absent), 255 counts as foreground: truth = 4 + 3 = 7 pixels,
    # prediction 7 pixels, intersection (0,2), (1,1), (1,2), (1,3), (2,2) = 5; union 7 + 7 - 5 = 9.
    assert metrics.foreground_iou(PRED_MASK, GT_MASK, ignore_index=7) == pytest.approx(5 / 9)


def test_foreground_iou_extremes():
    gt = np.array([[0, 1], [255, 0]], dtype=np.uint8)
    assert metrics.foreground_iou(gt == 1, gt) == 1.0
    assert metrics.foreground_iou(np.zeros((2, 2), bool), gt) == 0.0
    assert metrics.foreground_iou(np.ones((2, 2), bool), gt) == pytest.approx(1 / 3)  # (0,0), (0,1), (1,1)
    # Nothing predicted and nothing to find: the empty union counts as a perfect score.
    assert metrics.foreground_iou(np.zeros((2, 2), bool), np.array([[0, 0], [255, 0]], np.uint8)) == 1.0


def test_foreground_iou_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        metrics.foreground_iou(np.zeros((4, 5), bool), GT_MASK)


# --------------------------------------------------------------------------------------------
# COCO: per (photo, class) IoU, ImageNet -> COCO label maps, oracle classes
# --------------------------------------------------------------------------------------------

PERSON, CAR, TRUCK, CAT, DOG = 1, 3, 8, 16, 17  # COCO ids in classes.json order
MAPPABLE = {CAR, TRUCK, CAT, DOG}  # person has no ImageNet counterpart

COCO_GT = np.array(
    [
        [0, DOG, DOG, PERSON],
        [0, DOG, DOG, PERSON],
        [CAR, CAR, 255, PERSON],
        [CAR, 0, 0, 0],
    ],
    dtype=np.uint8,
)
COCO_PRED = np.array(
    [
        [DOG, DOG, 0, DOG],
        [0, DOG, DOG, DOG],
        [CAR, DOG, CAR, CAR],
        [0, 0, CAR, 0],
    ],
    dtype=np.int64,
)
# Ignored: (2,2) (gt 255) and the person column (0,3), (1,3), (2,3) (person is not mappable).
# Dog: truth (0,1), (0,2), (1,1), (1,2) = 4; predicted on valid pixels (0,0), (0,1), (1,1), (1,2), (2,1) = 5
#   (the predictions on the person at (0,3), (1,3) do not count); intersection 3 -> 3 / (4 + 5 - 3) = 1/2.
# Car: truth (2,0), (2,1), (3,0) = 3; predicted on valid pixels (2,0), (3,2) = 2 ((2,2) is 255,
#   (2,3) is the person); intersection (2,0) = 1 -> 1 / (3 + 2 - 1) = 1/4.
# Without the ignore rules: dog 3 / (4 + 7 - 3) = 3/8, car 1 / (3 + 4 - 1) = 1/6.
# Person is present but unmappable: no entry.


def test_coco_pair_ious_hand_built_with_ignored_class():
    ious = metrics.coco_pair_ious(COCO_PRED, COCO_GT, [PERSON, CAR, DOG], MAPPABLE)
    assert list(ious) == [CAR, DOG]
    assert ious[CAR] == pytest.approx(1 / 4)
    assert ious[DOG] == pytest.approx(1 / 2)
    # Tensors work the same.
    assert metrics.coco_pair_ious(torch.from_numpy(COCO_PRED), torch.from_numpy(COCO_GT), {1, 3, 17}, MAPPABLE) == ious


def test_coco_pair_ious_person_made_mappable_counts_its_pixels():
    # If person were mappable its column would count: dog then predicts (0,3), (1,3) too -> 3 / (4 + 7 - 3) = 3/8;
    # car predicts (2,3) too -> 1 / (3 + 3 - 1) = 1/5; person: truth 3 pixels, predicted none -> 0.
    ious = metrics.coco_pair_ious(COCO_PRED, COCO_GT, [PERSON, CAR, DOG], MAPPABLE | {PERSON})
    assert ious == {PERSON: 0.0, CAR: pytest.approx(1 / 5), DOG: pytest.approx(3 / 8)}


def test_coco_pair_ious_perfect_and_bad_inputs():
    perfect = np.where(np.isin(COCO_GT, [CAR, DOG]), COCO_GT, 0)
    assert metrics.coco_pair_ious(perfect, COCO_GT, [PERSON, CAR, DOG], MAPPABLE) == {CAR: 1.0, DOG: 1.0}
    with pytest.raises(ValueError, match="same shape"):
        metrics.coco_pair_ious(COCO_PRED[:3], COCO_GT, [CAR], MAPPABLE)
    with pytest.raises(ValueError, match="no pixel"):
        metrics.coco_pair_ious(COCO_PRED, COCO_GT, [CAT], MAPPABLE)  # no cat in the ground truth
    with pytest.raises(ValueError, match=r"1\.\.80"):
        metrics.coco_pair_ious(COCO_PRED, COCO_GT, [81], MAPPABLE)
    with pytest.raises(TypeError, match="integers"):
        metrics.coco_pair_ious(COCO_PRED.astype(float), COCO_GT, [CAR], MAPPABLE)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        metrics.coco_pair_ious(COCO_PRED[None], COCO_GT[None], [CAR], MAPPABLE)


def toy_coco_of_imagenet() -> np.ndarray:
    lut = np.zeros(1000, dtype=np.int64)
    lut[[207, 208]] = DOG  # golden retriever, Labrador
    lut[[281, 282]] = CAT  # tabby, tiger cat
    lut[[717, 407]] = CAR  # pickup (also a truck), ambulance
    lut[555] = TRUCK  # fire engine
    lut[999] = 70  # toilet tissue -> toilet (toy): the last entry is not 0, so -1 must not index it
    return lut


def test_imagenet_to_coco_label_map():
    # -1 background -> 0 (not lut[-1] = 70); 207 -> dog; 717 -> car; 5 (electric ray) has no COCO class -> 0.
    label_map = np.array([[-1, 207], [717, 5]], dtype=np.int64)
    out = metrics.imagenet_to_coco_label_map(label_map, toy_coco_of_imagenet())
    assert out.tolist() == [[0, DOG], [CAR, 0]]
    assert out.dtype == np.int64
    assert metrics.imagenet_to_coco_label_map(
        torch.from_numpy(label_map), torch.from_numpy(toy_coco_of_imagenet())
    ).tolist() == [
        [0, DOG],
        [CAR, 0],
    ]


@pytest.mark.parametrize(("value", "match"), [(1000, "0..999"), (-2, "0..999")])
def test_imagenet_to_coco_label_map_bad_indices_raise(value, match):
    with pytest.raises(ValueError, match=match):
        metrics.imagenet_to_coco_label_map(np.array([[0, value]]), toy_coco_of_imagenet())


def test_imagenet_to_coco_label_map_bad_table_raises():
    with pytest.raises(ValueError, match=r"\[1000\]"):
        metrics.imagenet_to_coco_label_map(np.zeros((2, 2), np.int64), np.zeros(999, np.int64))
    with pytest.raises(TypeError, match="integers"):
        metrics.imagenet_to_coco_label_map(np.zeros((2, 2)), toy_coco_of_imagenet())


def toy_probabilities() -> np.ndarray:
    probabilities = np.full(1000, 0.0001)
    probabilities[207], probabilities[208] = 0.10, 0.30  # dog: Labrador wins
    probabilities[281], probabilities[282] = 0.40, 0.05  # cat: tabby wins
    probabilities[717], probabilities[407], probabilities[555] = 0.08, 0.01, 0.02
    return probabilities


def test_oracle_classes_by_mapping():
    mapping = {DOG: [207, 208], CAT: [281, 282], CAR: [407, 717], TRUCK: [555, 717]}
    # Dog -> 208 (0.30), cat -> 281 (0.40), person skipped (no ImageNet class); ordered 281, 208.
    assert metrics.oracle_classes(toy_probabilities(), [PERSON, DOG, CAT], mapping) == [281, 208]
    # Car -> pickup 717 (0.08 > 0.01) and truck -> pickup 717 (0.08 > 0.02): one entry.
    assert metrics.oracle_classes(toy_probabilities(), [CAR, TRUCK], mapping) == [717]
    assert metrics.oracle_classes(torch.from_numpy(toy_probabilities()), [CAR, DOG], mapping) == [208, 717]
    assert metrics.oracle_classes(toy_probabilities(), [PERSON], mapping) == []


def test_oracle_classes_by_table():
    # The [1000] table knows pickup as a car only: truck -> fire engine 555 (its only class).
    assert metrics.oracle_classes(toy_probabilities(), [PERSON, DOG, CAT], toy_coco_of_imagenet()) == [281, 208]
    assert metrics.oracle_classes(toy_probabilities(), [CAR, TRUCK], toy_coco_of_imagenet()) == [717, 555]


def test_oracle_classes_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[1000\]"):
        metrics.oracle_classes(np.ones(10), [DOG], {DOG: [207]})
    with pytest.raises(TypeError, match="imagenet_to_coco"):
        metrics.oracle_classes(toy_probabilities(), [DOG], [[207]])


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", [0.0, 0.3, 1.0])
def test_bootstrap_of_constant_is_that_constant(constant):
    result = metrics.interval(np.full(37, constant), n_resamples=300)
    assert dataclasses.astuple(result) == pytest.approx((constant, constant, constant))


def test_bootstrap_bool_hits_and_determinism():
    hits = np.arange(200) % 4 == 0  # 50 of 200 -> mean 0.25
    first = metrics.interval(hits, n_resamples=500, seed=3)
    assert first == metrics.interval(torch.from_numpy(hits), n_resamples=500, seed=3)  # tensor, same seed
    assert first == metrics.interval(hits.tolist(), n_resamples=500, seed=3)
    assert first != metrics.interval(hits, n_resamples=500, seed=4)
    mean, low, high = first.mean, first.low, first.high
    assert mean == 0.25
    assert low < mean < high
    # Normal approximation: standard error sqrt(0.25 * 0.75 / 200) = 0.0306, half width 1.96 x that = 0.060.
    assert high - low == pytest.approx(2 * 0.060, abs=0.02)


def test_bootstrap_of_one_photo_is_that_photo():
    assert metrics.interval([0.7]) == Interval(0.7, 0.7, 0.7)


def test_bootstrap_is_the_plain_percentile_bootstrap():
    """scipy.stats.bootstrap against the definition: resample N of N with the same generator, take the means'
    2.5 % and 97.5 % points."""
    values = np.random.default_rng(7).random(57)
    picks = np.random.default_rng(11).integers(0, 57, size=(999, 57))
    low, high = np.quantile(values[picks].mean(axis=1), [0.025, 0.975])
    expected = (values.mean(), low, high)
    result = metrics.interval(values, n_resamples=999, seed=11)
    assert dataclasses.astuple(result) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_two_photos_by_hand():
    # Resampled means of [0, 1]: 0 (p 1/4), 0.5 (1/2), 1 (1/4): the 2.5 % and 97.5 % points are 0 and 1;
    # a 40 % interval (30 % .. 70 % points) holds only 0.5.
    assert metrics.interval([0, 1], n_resamples=4000) == Interval(0.5, 0.0, 1.0)
    assert metrics.interval([0, 1], n_resamples=4000, level=0.4) == Interval(0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "at least one"),
        ([[1.0, 2.0]], {}, ValueError, "one-dimensional"),
        ([0.5, float("nan")], {}, ValueError, "finite"),
        (["a", "b"], {}, TypeError, "numbers or bools"),
        ([0.5], {"level": 1.0}, ValueError, r"level must be in \(0, 1\)"),
        ([0.5], {"n_resamples": 0}, ValueError, "n_resamples must be an int >= 1"),
        ([0.5], {"n_resamples": True}, TypeError, "n_resamples must be an int"),
        ([0.5], {"level": "0.9"}, TypeError, r"level must be a number in \(0, 1\)"),
        ([0.5], {"n_resamples": 2.5}, TypeError, "n_resamples must be an int"),
    ],
)
def test_bootstrap_bad_inputs_raise(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        metrics.interval(values, **kwargs)


# --------------------------------------------------------------------------------------------
# Threshold choice: on all photos, and k-fold cross-validated
# --------------------------------------------------------------------------------------------


def test_choose_threshold_best_and_ties():
    # Means: 0.2 -> 2/4, 0.4 -> 3/4, 0.6 -> 3/4 (tie with 0.4: the lowest wins).
    values = {0.6: [1, 1, 1, 0], 0.2: [1, 1, 0, 0], 0.4: np.array([True, False, True, True])}
    assert metrics.choose_threshold(values) == 0.4
    values[0.6] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert metrics.choose_threshold(values) == 0.6


def test_choose_threshold_float_tie_goes_to_lowest():
    # The same per-photo values in another order sum to means one ulp apart: still a tie.
    low, high = [0.2, 0.3, 0.1], [0.1, 0.2, 0.3]  # means 0.19999999999999998, 0.20000000000000004
    assert np.mean(low) < np.mean(high)  # without the tolerance 0.6 would win the first case
    assert metrics.choose_threshold({0.3: low, 0.6: high}) == 0.3
    assert metrics.choose_threshold({0.3: high, 0.6: low}) == 0.3


def test_kfold_dominant_threshold_chosen_in_every_fold():
    rng = np.random.default_rng(0)
    n = 50
    hits = {t: rng.random(n) < 0.4 for t in (0.1, 0.2, 0.3, 0.5)}
    hits[0.4] = np.ones(n, dtype=bool)  # always a hit: the best on every training split
    cv_mean, chosen, per_photo = metrics.kfold_threshold(hits, k=5, seed=0)
    assert chosen == [0.4] * 5
    assert cv_mean == 1.0
    assert per_photo.shape == (n,) and per_photo.dtype == np.float64 and (per_photo == 1.0).all()


def test_kfold_leave_one_out_by_hand():
    # k = N = 4 (leave one out): every fold is one photo, whatever the shuffle.
    hits = {0.2: [1, 1, 0, 0], 0.4: [1, 0, 1, 1]}
    # Photo 0 out: 0.2 -> 1/3, 0.4 -> 2/3: 0.4, its value 1.   Photo 1 out: 1/3 vs 3/3: 0.4, value 0.
    # Photo 2 out: 2/3 vs 2/3, tie: 0.2, value 0.               Photo 3 out: 2/3 vs 2/3: 0.2, value 0.
    cv_mean, chosen, per_photo = metrics.kfold_threshold(hits, k=4, seed=7)
    assert per_photo.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cv_mean == 0.25
    assert sorted(chosen) == [0.2, 0.2, 0.4, 0.4]
    # Chosen on all photos, 0.4 scores 3/4: the cross-validated 1/4 shows how optimistic that is.
    assert metrics.choose_threshold(hits) == 0.4


def test_kfold_properties_on_random_scores():
    rng = np.random.default_rng(1)
    n, thresholds = 23, (0.15, 0.25, 0.35, 0.45)
    values = {t: rng.random(n) for t in thresholds}
    cv_mean, chosen, per_photo = metrics.kfold_threshold(values, k=5, seed=2)
    assert len(chosen) == 5 and set(chosen) <= set(thresholds)
    assert cv_mean == pytest.approx(per_photo.mean())
    # Every photo is scored once, with one threshold's value.
    for i in range(n):
        assert any(per_photo[i] == values[t][i] for t in chosen)
    assert metrics.kfold_threshold(values, k=5, seed=2)[1] == chosen  # deterministic
    # Two folds work as well.
    assert len(metrics.kfold_threshold(values, k=2, seed=3)[1]) == 2


@pytest.mark.parametrize(
    ("values", "k", "error", "match"),
    [
        ({0.5: [1, 0, 1]}, 1, ValueError, "k must be an int >= 2"),
        ({0.5: [1, 0, 1]}, 4, ValueError, "at most the number of photos"),
        ({}, 2, ValueError, "at least one threshold"),
        ({0.5: [1, 0, 1], 0.6: [1, 0]}, 2, ValueError, "same length"),
        ([[1, 0, 1]], 2, TypeError, "dict"),
        ({0.5: [1, 0, float("nan")]}, 2, ValueError, "finite"),
    ],
)
def test_kfold_bad_inputs_raise(values, k, error, match):
    with pytest.raises(error, match=match):
        metrics.kfold_threshold(values, k=k)


# --------------------------------------------------------------------------------------------
# Centred baselines
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "fraction", "expected"),
    [
        (100, 50, 0.5, (25, 12.5, 75, 37.5)),
        (10, 20, 0.2, (4, 8, 6, 12)),
        (33, 7, 1.0, (0, 0, 33, 7)),
    ],
)
def test_centered_box(width, height, fraction, expected):
    assert metrics.centered_box(width, height, fraction) == pytest.approx(expected)


def test_centered_box_default_fraction_is_half():
    assert metrics.centered_box(100, 50) == pytest.approx((25, 12.5, 75, 37.5))
    # The box covers fraction^2 of the photo: IoU with the whole photo is 0.25.
    assert metrics.best_iou(metrics.centered_box(100, 50), [(0, 0, 100, 50)]) == pytest.approx(0.25)


def test_centered_ellipse_4x4_by_hand():
    # Pixel centres at (i + 0.5 - 2) / 2 = -0.75, -0.25, 0.25, 0.75; a corner has 0.5625 * 2 > 1,
    # a pixel next to a corner 0.5625 + 0.0625 <= 1: everything but the four corners.
    expected = torch.ones(4, 4, dtype=torch.bool)
    expected[[0, 0, 3, 3], [0, 3, 0, 3]] = False
    assert torch.equal(metrics.centered_ellipse(4, 4, fraction=1.0), expected)


def test_centered_ellipse_area_and_orientation():
    height, width, fraction = 200, 120, 0.5
    mask = metrics.centered_ellipse(height, width, fraction)
    assert tuple(mask.shape) == (height, width)
    assert int(mask.sum()) == pytest.approx(np.pi / 4 * (fraction * height) * (fraction * width), rel=0.02)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    # Axes are fraction of height (50 % of 200 = 100 rows) and of width (60 columns).
    assert int(rows.max() - rows.min() + 1) == pytest.approx(100, abs=2)
    assert int(cols.max() - cols.min() + 1) == pytest.approx(60, abs=2)
    assert torch.equal(mask, mask.flip(0)) and torch.equal(mask, mask.flip(1))


# --------------------------------------------------------------------------------------------
# AP@0.5 (pycocotools) and CorLoc
# --------------------------------------------------------------------------------------------

ONE_OBJECT = [[(1, (0.0, 0.0, 10.0, 10.0), False)]]


def test_average_precision_perfect_box_is_one():
    assert metrics.average_precision(ONE_OBJECT, [[(1, (0.0, 0.0, 10.0, 10.0), 0.9)]]) == pytest.approx(1.0)


def test_average_precision_false_positive_ranked_first_halves_it():
    # Ranked: a miss (0.9) then the hit (0.8): precision 1/2 at recall 1, so every interpolated
    # precision is 1/2 and AP = 0.5.
    found = [[(1, (50.0, 50.0, 60.0, 60.0), 0.9), (1, (0.0, 0.0, 10.0, 10.0), 0.8)]]
    assert metrics.average_precision(ONE_OBJECT, found) == pytest.approx(0.5)
    # Ranked the other way round the miss costs nothing: AP = 1.
    found = [[(1, (50.0, 50.0, 60.0, 60.0), 0.7), (1, (0.0, 0.0, 10.0, 10.0), 0.8)]]
    assert metrics.average_precision(ONE_OBJECT, found) == pytest.approx(1.0)


def test_average_precision_one_of_two_objects():
    # Recall reaches 1/2 at precision 1: of the 101 recall points 0, 0.01, ..., 1 the 51 up to 0.5
    # have precision 1, the other 50 none: AP = 51 / 101.
    truth = [[(1, (0.0, 0.0, 10.0, 10.0), False), (1, (20.0, 20.0, 30.0, 30.0), False)]]
    assert metrics.average_precision(truth, [[(1, (0.0, 0.0, 10.0, 10.0), 0.8)]]) == pytest.approx(51 / 101)
    # One box around both objects matches neither (IoU 100/900): AP 0.
    assert metrics.average_precision(truth, [[(1, (0.0, 0.0, 30.0, 30.0), 0.8)]]) == pytest.approx(0.0)


def test_average_precision_is_averaged_over_categories_and_ignores_crowds():
    truth = [[(1, (0.0, 0.0, 10.0, 10.0), False), (2, (20.0, 20.0, 30.0, 30.0), False)]]
    found = [[(1, (0.0, 0.0, 10.0, 10.0), 0.8), (1, (20.0, 20.0, 30.0, 30.0), 0.9)]]  # category 2 missed
    # Category 1: a miss ranked first, then the hit -> 0.5; category 2: nothing -> 0; mean 0.25.
    assert metrics.average_precision(truth, found) == pytest.approx(0.25)
    crowd = [[(1, (0.0, 0.0, 10.0, 10.0), False), (1, (40.0, 40.0, 80.0, 80.0), True)]]
    found = [[(1, (40.0, 40.0, 80.0, 80.0), 0.95), (1, (0.0, 0.0, 10.0, 10.0), 0.8)]]  # a box on the crowd: ignored
    assert metrics.average_precision(crowd, found) == pytest.approx(1.0)


def test_average_precision_bad_input():
    with pytest.raises(ValueError, match="same length"):
        metrics.average_precision(ONE_OBJECT, [])
    with pytest.raises(ValueError, match="at least one object"):
        metrics.average_precision([[(1, (0.0, 0.0, 1.0, 1.0), True)]], [[]])
    assert metrics.average_precision(ONE_OBJECT, [[]]) == 0.0


def test_corloc_uses_the_best_scored_box():
    truth = [[(1, (0.0, 0.0, 10.0, 10.0), False)], [(1, (0.0, 0.0, 10.0, 10.0), False)], [(1, (0, 0, 4, 4), False)]]
    found = [
        [(1, (0.0, 0.0, 10.0, 10.0), 0.9), (1, (50.0, 50.0, 60.0, 60.0), 0.1)],  # best box hits
        [(1, (0.0, 0.0, 10.0, 10.0), 0.1), (1, (50.0, 50.0, 60.0, 60.0), 0.9)],  # best box misses
        [],  # no box
    ]
    assert metrics.corloc(truth, found).tolist() == [True, False, False]


def test_paired_difference_hand_built():
    # b wins on photos 2 and 3, loses on photo 4: mean difference (0 + 1 + 1 - 1) / 4 = 0.25.
    result = metrics.paired_difference("1001", "1110")
    assert result.mean == pytest.approx(0.25)
    assert result.low <= 0.25 <= result.high
    assert metrics.paired_difference("1010", "1010") == Interval(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same photos"):
        metrics.paired_difference("10", "101")


def test_ranked_by_truth_puts_hits_first():
    # The miss ranked first halves AP (see above); ranked by IoU with the truth the hit comes first: AP 1.
    found = [[(1, (50.0, 50.0, 60.0, 60.0), 0.9), (1, (0.0, 0.0, 10.0, 10.0), 0.8)]]
    assert metrics.average_precision(ONE_OBJECT, found) == pytest.approx(0.5)
    ranked = metrics.ranked_by_truth(ONE_OBJECT, found)
    assert [box for _, box, _ in ranked[0]] == [box for _, box, _ in found[0]]  # the same boxes, re-scored
    assert ranked[0][1][2] > ranked[0][0][2]
    assert metrics.average_precision(ONE_OBJECT, ranked) == pytest.approx(1.0)
    # a box of a category absent from the photo scores 0 (only its tie-break remains)
    assert metrics.ranked_by_truth(ONE_OBJECT, [[(2, (0.0, 0.0, 10.0, 10.0), 0.5)]])[0][0][2] < 1e-5


def test_average_precision_difference_is_paired():
    truth = [ONE_OBJECT[0], [(1, (20.0, 20.0, 30.0, 30.0), False)]]
    good = [[(1, (0.0, 0.0, 10.0, 10.0), 0.9)], [(1, (20.0, 20.0, 30.0, 30.0), 0.9)]]
    half = [[(1, (0.0, 0.0, 10.0, 10.0), 0.9)], [(1, (60.0, 60.0, 70.0, 70.0), 0.95)]]
    same = metrics.average_precision_difference(truth, good, good, n_resamples=50)
    assert same == Interval(0.0, 0.0, 0.0)  # paired: every resample scores both alike
    gain = metrics.average_precision_difference(truth, good, half, n_resamples=50)
    expected = metrics.average_precision(truth, good) - metrics.average_precision(truth, half)
    assert gain.mean == pytest.approx(expected) and expected > 0
    assert 0.0 <= gain.low <= gain.high
    with pytest.raises(ValueError, match="same length"):
        metrics.average_precision_difference(truth, good, half[:1])


# --------------------------------------------------------------------------------------------
# kfold_choice (any keys)
# --------------------------------------------------------------------------------------------


def test_kfold_choice_takes_the_first_key_on_ties_in_the_mapping_order():
    # Two settings score alike on every photo: the first key of the mapping wins every fold, whatever
    # its sort order (kfold_threshold would take the lowest threshold).
    values = {("wb20", 0.45): [0.5, 0.7, 0.2, 0.9], ("wb5", 0.2): [0.5, 0.7, 0.2, 0.9]}
    mean, chosen, cv = metrics.kfold_choice(values, k=2)
    assert chosen == [("wb20", 0.45)] * 2
    assert cv.tolist() == [0.5, 0.7, 0.2, 0.9] and mean == pytest.approx(0.575)


def test_kfold_choice_scores_each_fold_by_the_key_best_on_the_other_folds():
    # Leave-one-out on 3 photos; the means on the two other photos: photo 0 held out: a (1.0+0.0)/2 = 0.5
    # against b (0.0+0.9)/2 = 0.45 -> a; photo 1 held out: a 0.1 against b 0.5 -> b; photo 2: a 0.6, b 0.05 -> a.
    values = {"a": [0.2, 1.0, 0.0], "b": [0.1, 0.0, 0.9]}
    _, chosen, cv = metrics.kfold_choice(values, k=3, seed=0)
    folds = np.array_split(np.random.default_rng(0).permutation(3), 3)
    best_without = {0: "a", 1: "b", 2: "a"}  # the photo held out -> the key chosen on the other two
    for fold, key in zip(folds, chosen, strict=True):
        assert key == best_without[int(fold[0])]
        assert cv[fold[0]] == values[key][int(fold[0])]


def test_kfold_threshold_is_kfold_choice_over_sorted_thresholds():
    rng = np.random.default_rng(5)
    values = {t: rng.random(30) for t in (0.4, 0.1, 0.25)}
    by_threshold = metrics.kfold_threshold(values, k=5, seed=1)
    by_choice = metrics.kfold_choice({t: values[t] for t in sorted(values)}, k=5, seed=1)
    assert by_threshold[0] == by_choice[0] and by_threshold[1] == by_choice[1]
    assert np.array_equal(by_threshold[2], by_choice[2])


def test_best_key_takes_the_first_key_among_ties():
    # 0.4 and 0.6 tie (to within floating-point round-off): the first in the mapping's order wins.
    assert metrics.best_key({0.2: 0.5, 0.4: 0.75, 0.6: 0.75 + 1e-15}) == 0.4
    assert metrics.best_key({"b": 0.3, "a": 0.3, "c": 0.1}) == "b"
    assert metrics.best_key({0.2: 0.5, 0.4: 0.75, 0.6: 0.76}) == 0.6


# --------------------------------------------------------------------------------------------
# Object size: the largest box's share of the photo
# --------------------------------------------------------------------------------------------


def test_largest_box_fraction_takes_the_largest_box():
    # 100x50 photo (area 5000): boxes of area 400 and 1000 -> 1000 / 5000
    assert metrics.largest_box_fraction([(0, 0, 20, 20), (10, 10, 60, 30)], 100, 50) == pytest.approx(0.2)


def test_largest_box_fraction_rejects_empty_input():
    with pytest.raises(ValueError, match="non-empty"):
        metrics.largest_box_fraction([], 10, 10)
    with pytest.raises(ValueError, match="x0 < x1"):
        metrics.largest_box_fraction([(5, 0, 5, 3)], 10, 10)


# --------------------------------------------------------------------------------------------
# The speckle measure
# --------------------------------------------------------------------------------------------


def test_speckle_of_a_hand_built_label_map():
    labels = np.full((20, 30), -1, dtype=np.int64)
    labels[2:12, 2:12] = 3  # class 3: a 10 x 10 block (100 px) ...
    labels[15, 20] = 3  # ... and a one-pixel island: 101 px, the island 1/101 < 1%
    labels[16, 21] = 3  # diagonal to it: the same 8-connected island (2 px: 2/102 >= 1%)
    labels[0:5, 20:30] = 7  # class 7: one 50 px block with a 1-pixel hole (a hole is no component)
    labels[2, 25] = -1
    out = metrics.speckle(labels)
    assert out.classes == [3, 7]
    assert out.components == [2, 1]
    assert out.small_share == [pytest.approx(0.0), 0.0]  # 2 of 102 px is not below 1%
    out = metrics.speckle(labels, fraction=0.05)  # at 5% the 2-pixel island is small
    assert out.small_share[0] == pytest.approx(2 / 102)
    assert metrics.speckle(np.full((4, 4), -1)).components == []
    with pytest.raises(ValueError, match="label_map"):
        metrics.speckle(np.zeros((2, 2, 2), dtype=np.int64))


def test_speckle_after_remove_specks_is_clean():
    labels = np.zeros((40, 40), dtype=np.int64)  # one class, a big mask
    labels[10, 10] = -1  # an enclosed one-pixel hole
    labels[30:32, 30:32] = -1  # an enclosed 4-pixel hole
    labels[0, 39] = 5  # a one-pixel island of another class: its own whole mask, not small
    before = metrics.speckle(labels)
    cleaned = helpers.remove_specks(labels, 0.01)  # holes < 1% of class 0's mask (~15 px) are filled
    assert (cleaned[10, 10], cleaned[30, 30]) == (0, 0)
    assert metrics.speckle(cleaned).components == before.components == [1, 1]
