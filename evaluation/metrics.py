"""Model-free metrics: box IoU and GT-known, MaxBoxAcc, mask IoU, bootstrap intervals, k-fold choice of a
threshold or setting, AP@0.5 and CorLoc.

Box metrics return torch tensors (bool ``[N]`` per photo); mask metrics work on numpy (``helpers.Segmentation.
label_map`` is numpy) and accept tensors too. The conventions of boxes and label maps are :mod:`.data`'s.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from scipy import ndimage, stats
from torch import Tensor

import helpers
from helpers import NUM_CLASSES, Box, check_fraction, check_int  # the method's argument checks, box and classes

from .data import IGNORE, NUM_COCO_CLASSES

#: IoU thresholds of MaxBoxAccV2 (Choe et al., "Evaluating Weakly Supervised Object Localization
#: Methods Right", CVPR 2020).
MAX_BOX_ACC_V2_IOUS = (0.3, 0.5, 0.7)
#: The speckle measure's "small component": fewer pixels than this fraction of its class's mask.
SPECKLE_FRACTION = 0.01
#: Two means closer than this count as tied (floating-point sums of the same values in another order).
TIE_TOLERANCE = 1e-12

#: Ground truth of one photo: (category, box, is_crowd) per object; crowd regions are neither
#: hits nor misses, as in COCO.
GroundTruth = Sequence[tuple[int, Box, bool]]
#: Detections of one photo: (category, box, score) per box.
Predictions = Sequence[tuple[int, Box, float]]

Sized = Sequence | Tensor | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval (95% unless asked otherwise): what :func:`interval` returns and what the
    records hold, ``{"mean": ..., "low": ..., "high": ...}`` in the JSON."""

    mean: float
    low: float
    high: float


class Speckle(NamedTuple):
    """:func:`speckle`'s result, per class present in a label map (ascending class index): ``classes``; the number
    of 8-connected components of its mask; the share of the mask in components smaller than the fraction."""

    classes: list[int]
    components: list[int]
    small_share: list[float]


class MaxBoxAcc(NamedTuple):
    """:func:`max_box_acc`'s result: the best GT-known accuracy and the map threshold that reaches it."""

    accuracy: float
    threshold: float


class KFold(NamedTuple):
    """:func:`kfold_choice`'s result: the mean held-out value, the key chosen for each fold ``[k]`` and the
    held-out value per photo (float64 ``[N]``)."""

    score: float
    chosen: list
    held_out: np.ndarray



def _check_same_length(**sequences: Sized) -> int:
    """All sequences have one length -> that length; else ValueError naming every length."""
    lengths = {name: len(seq) for name, seq in sequences.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same length, got {described}")
    return next(iter(lengths.values()))


def _per_photo_array(values: object, name: str) -> np.ndarray:
    """Per-photo numbers (bool or real, list/numpy/tensor) -> float64 ``[N]``, N >= 1, all finite."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers or bools, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional [N] (one value per photo), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one value")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} must be finite, got NaN or infinity at index {int(np.flatnonzero(~np.isfinite(array))[0])}"
        )
    return array


def _label_map(array: object, name: str) -> np.ndarray:
    """An integer map ``[H, W]`` (numpy or tensor) -> int64 numpy."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be a map [H, W], got shape {array.shape}")
    return array.astype(np.int64)

# --------------------------------------------------------------------------------------------
# Box metrics
# --------------------------------------------------------------------------------------------


#: Pairwise IoU and the best IoU with any ground-truth box: the method's own (helpers.box_iou uses
#: torchvision's box_iou on float64 boxes with exclusive x1/y1).
box_iou = helpers.box_iou
best_iou = helpers.best_iou


def best_ious(pred_boxes: Sequence[Box | None], gt_boxes: Sequence[Sequence[Box]]) -> Tensor:
    """Per photo, :func:`best_iou` of its predicted box with its ground-truth boxes: float64 ``[N]``."""
    _check_same_length(pred_boxes=pred_boxes, gt_boxes=gt_boxes)
    return torch.tensor([best_iou(p, g) for p, g in zip(pred_boxes, gt_boxes, strict=True)], dtype=torch.float64)


def gt_known_hits(
    pred_boxes: Sequence[Box | None], gt_boxes: Sequence[Sequence[Box]], iou_threshold: float = 0.5
) -> Tensor:
    """Per photo: the box of the true class overlaps some ground-truth box with IoU >= ``iou_threshold``
    (bool ``[N]``)."""
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    return best_ious(pred_boxes, gt_boxes) >= iou_threshold


def gt_known_accuracy(
    pred_boxes: Sequence[Box | None], gt_boxes: Sequence[Sequence[Box]], iou_threshold: float = 0.5
) -> float:
    """GT-known localization accuracy: the fraction of photos where :func:`gt_known_hits` holds."""
    return float(gt_known_hits(pred_boxes, gt_boxes, iou_threshold).double().mean())


def top1_loc_hits(
    pred_classes: Sequence[int] | Tensor,
    true_classes: Sequence[int] | Tensor,
    pred_boxes: Sequence[Box | None],
    gt_boxes: Sequence[Sequence[Box]],
    iou_threshold: float = 0.5,
) -> Tensor:
    """Per photo (bool ``[N]``): the top-1 class is the true class and the box (of the top-1 class)
    has IoU >= ``iou_threshold`` with a ground-truth box."""
    _check_same_length(pred_classes=pred_classes, true_classes=true_classes, pred_boxes=pred_boxes, gt_boxes=gt_boxes)
    right = torch.tensor([int(p) == int(t) for p, t in zip(pred_classes, true_classes, strict=True)], dtype=torch.bool)
    return right & gt_known_hits(pred_boxes, gt_boxes, iou_threshold)


def top1_localization_accuracy(
    pred_classes: Sequence[int] | Tensor,
    true_classes: Sequence[int] | Tensor,
    pred_boxes: Sequence[Box | None],
    gt_boxes: Sequence[Sequence[Box]],
    iou_threshold: float = 0.5,
) -> float:
    """Top-1 localization accuracy: the mean of :func:`top1_loc_hits`."""
    return float(top1_loc_hits(pred_classes, true_classes, pred_boxes, gt_boxes, iou_threshold).double().mean())


def best_key(scores: Mapping[Hashable, float]) -> Hashable:
    """The key of the highest score; among scores within ``TIE_TOLERANCE`` of it, the first key in the mapping's
    order (the lowest threshold, for a mapping in ascending order of thresholds)."""
    top = max(scores.values())
    return next(key for key, score in scores.items() if score >= top - TIE_TOLERANCE)


def _best_ious_by_threshold(
    boxes_by_threshold: Mapping[float, Sequence[Box | None]], gt_boxes: Sequence[Sequence[Box]]
) -> dict[float, Tensor]:
    if not isinstance(boxes_by_threshold, Mapping):
        raise TypeError(
            f"boxes_by_threshold must be a dict {{threshold: boxes}}, got {type(boxes_by_threshold).__name__}"
        )
    if not boxes_by_threshold:
        raise ValueError("boxes_by_threshold must hold at least one threshold")
    return {float(t): best_ious(b, gt_boxes) for t, b in sorted(boxes_by_threshold.items())}


def max_box_acc(
    boxes_by_threshold: Mapping[float, Sequence[Box | None]],
    gt_boxes: Sequence[Sequence[Box]],
    iou_threshold: float = 0.5,
) -> MaxBoxAcc:
    """MaxBoxAcc (Choe et al., CVPR 2020): the best GT-known accuracy over a sweep of map
    thresholds -> (accuracy, the threshold that reaches it; the lowest on ties).
    ``boxes_by_threshold``: {map threshold: one box (or None) per photo, [N]}."""
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    ious = _best_ious_by_threshold(boxes_by_threshold, gt_boxes)
    scores = {t: float((v >= iou_threshold).double().mean()) for t, v in ious.items()}
    best = best_key(scores)
    return MaxBoxAcc(scores[best], best)


def max_box_acc_v2(
    boxes_by_threshold: Mapping[float, Sequence[Box | None]], gt_boxes: Sequence[Sequence[Box]]
) -> float:
    """MaxBoxAccV2 (Choe et al., CVPR 2020): the mean of :func:`max_box_acc` at IoU 0.3, 0.5 and 0.7
    (each IoU picks its own best map threshold). IoUs are computed once for all three."""
    ious = _best_ious_by_threshold(boxes_by_threshold, gt_boxes)
    total = 0.0
    for iou_threshold in MAX_BOX_ACC_V2_IOUS:
        total += max(float((v >= iou_threshold).double().mean()) for v in ious.values())
    return total / len(MAX_BOX_ACC_V2_IOUS)


def largest_box_fraction(boxes: Sequence[Box], width: int, height: int) -> float:
    """The area of the largest of ``boxes`` (``(x0, y0, x1, y1)`` pixel edges) as a fraction of the
    ``width`` x ``height`` photo, in (0, 1] for boxes inside the photo."""
    width, height = check_int(width, "width"), check_int(height, "height")
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Sequence) or not boxes:
        raise ValueError(f"boxes must be a non-empty list of (x0, y0, x1, y1) boxes, got {boxes!r}")
    if any(len(box) != 4 for box in boxes):
        raise ValueError(f"each box must be (x0, y0, x1, y1), got {boxes!r}")
    corners = torch.tensor([[float(v) for v in box] for box in boxes], dtype=torch.float64)
    if not ((corners[:, 0] < corners[:, 2]) & (corners[:, 1] < corners[:, 3])).all():  # box_area does not check
        raise ValueError(f"each box must have x0 < x1 and y0 < y1, got {boxes!r}")
    return float(torchvision.ops.box_area(corners).max()) / (width * height)



def centered_box(width: int, height: int, fraction: float = 0.5) -> Box:
    """Baseline: a box of ``fraction`` of the photo's width and height, centred."""
    return (
        width * (1 - fraction) / 2,
        height * (1 - fraction) / 2,
        width * (1 + fraction) / 2,
        height * (1 + fraction) / 2,
    )
# --------------------------------------------------------------------------------------------
# Mask metrics
# --------------------------------------------------------------------------------------------


def foreground_iou(pred_mask: Tensor | np.ndarray, gt_mask: Tensor | np.ndarray, ignore_index: int = IGNORE) -> float:
    """IoU of a predicted foreground mask with a ground-truth mask (``> 0`` is foreground),
    pixels equal to ``ignore_index`` left out. Both ``[H, W]``. Empty union gives 1.0."""
    pred = torch.as_tensor(np.asarray(pred_mask)).bool()
    gt = torch.as_tensor(np.asarray(gt_mask))
    if pred.shape != gt.shape:
        raise ValueError(f"pred_mask {tuple(pred.shape)} and gt_mask {tuple(gt.shape)} must have the same shape")
    valid = gt != ignore_index
    truth = (gt > 0) & valid
    pred = pred & valid
    union = int((pred | truth).sum())
    return 1.0 if union == 0 else int((pred & truth).sum()) / union


def centered_ellipse(height: int, width: int, fraction: float = 0.5) -> Tensor:
    """Baseline mask: the centred ellipse whose axes are ``fraction`` of the photo's: bool ``[H, W]``."""
    ys = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / (fraction * height / 2)
    xs = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / (fraction * width / 2)
    return ys[:, None] ** 2 + xs[None, :] ** 2 <= 1


def _coco_ids(values: Iterable[int], name: str) -> set[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a collection of COCO ids, got {type(values).__name__}")
    ids = {int(v) for v in values}
    bad = sorted(i for i in ids if not 1 <= i <= NUM_COCO_CLASSES)
    if bad:
        raise ValueError(f"{name} must hold COCO ids 1..80, got {bad}")
    return ids


def coco_pair_ious(
    pred_coco_label_map: Tensor | np.ndarray,
    gt_label_map: Tensor | np.ndarray,
    classes_present: Iterable[int],
    mappable: Iterable[int],
) -> dict[int, float]:
    """IoU per (photo, COCO class) pair: for each class of ``classes_present`` that is ``mappable``,
    the IoU of ``pred == c`` with ``gt == c`` -> {COCO id: IoU}, ascending ids.

    ``pred_coco_label_map``: int ``[H, W]``, 0 none, else a COCO id (e.g. from
    :func:`imagenet_to_coco_label_map`). ``gt_label_map``: ``[H, W]``, 0 none, 1..80, 255 ignore.
    Ignored pixels, left out of both prediction and truth: gt 255 and pixels whose gt class is not
    mappable (e.g. person, which ImageNet-1k cannot name)."""
    pred = _label_map(pred_coco_label_map, "pred_coco_label_map")
    gt = _label_map(gt_label_map, "gt_label_map")
    if pred.shape != gt.shape:
        raise ValueError(f"pred_coco_label_map {pred.shape} and gt_label_map {gt.shape} must have the same shape")
    present = _coco_ids(classes_present, "classes_present")
    mappable = _coco_ids(mappable, "mappable")
    valid = (gt == 0) | np.isin(gt, sorted(mappable))  # 255 and unmappable classes fall out
    out = {}
    for c in sorted(present & mappable):
        truth = gt == c
        if not truth.any():
            raise ValueError(f"COCO class {c} is listed in classes_present but has no pixel in gt_label_map")
        predicted = (pred == c) & valid
        out[c] = int((predicted & truth).sum()) / int((predicted | truth).sum())
    return out


def imagenet_to_coco_label_map(label_map: Tensor | np.ndarray, coco_of_imagenet: Tensor | np.ndarray) -> np.ndarray:
    """ImageNet label map ``[H, W]`` (-1 background, else 0..999) -> COCO label map int64 ``[H, W]``
    (0 for background and for ImageNet classes without a COCO counterpart).
    ``coco_of_imagenet``: ``[1000]`` COCO id per ImageNet class, 0 for none (:attr:`CocoSet.coco_of_imagenet`)."""
    labels = _label_map(label_map, "label_map")
    lut = _label_map(np.asarray(coco_of_imagenet).reshape(1, -1), "coco_of_imagenet")[0]
    if lut.shape != (NUM_CLASSES,):
        raise ValueError(f"coco_of_imagenet must have shape [1000], got {tuple(np.asarray(coco_of_imagenet).shape)}")
    if labels.size and (labels.min() < -1 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"label_map must hold -1 or ImageNet indices 0..999, got {labels.min()}..{labels.max()}")
    return np.concatenate([[0], lut])[labels + 1]


def oracle_classes(
    probabilities: Tensor | np.ndarray,
    coco_classes_present: Iterable[int],
    imagenet_to_coco: Mapping[int, Sequence[int]] | Tensor | np.ndarray,
) -> list[int]:
    """The ImageNet classes a segmenter told the true COCO classes would draw: for each mappable
    COCO class present, the ImageNet class with the highest probability among those that mean it.
    Ordered by probability, descending; an ImageNet class chosen for two COCO classes (pickup for
    car and truck) appears once.

    ``probabilities``: ``[1000]``. ``imagenet_to_coco``: either {COCO id: ImageNet indices}
    (:attr:`CocoSet.imagenet_of_coco`) or the ``[1000]`` COCO id per ImageNet class
    (:attr:`CocoSet.coco_of_imagenet`, where pickup only counts as car). Unmappable COCO classes are skipped."""
    probs = probabilities.detach().cpu().numpy() if isinstance(probabilities, Tensor) else np.asarray(probabilities)
    if probs.shape != (NUM_CLASSES,):
        raise ValueError(f"probabilities must have shape [1000], got {probs.shape}")
    present = _coco_ids(coco_classes_present, "coco_classes_present")
    if isinstance(imagenet_to_coco, Mapping):
        candidates = {int(c): [int(i) for i in v] for c, v in imagenet_to_coco.items()}
    elif isinstance(imagenet_to_coco, (Tensor, np.ndarray)):
        lut = np.asarray(imagenet_to_coco.cpu() if isinstance(imagenet_to_coco, Tensor) else imagenet_to_coco)
        if lut.shape != (NUM_CLASSES,):
            raise ValueError(f"imagenet_to_coco as an array must have shape [1000], got {lut.shape}")
        candidates = {int(c): np.flatnonzero(lut == c).tolist() for c in np.unique(lut) if c != 0}
    else:
        raise TypeError(
            "imagenet_to_coco must be a dict {COCO id: [ImageNet indices]} or a [1000] array of COCO ids, "
            f"got {type(imagenet_to_coco).__name__}"
        )
    chosen = {max(candidates[c], key=lambda i: (probs[i], -i)) for c in present if candidates.get(c)}
    return sorted(chosen, key=lambda i: (-probs[i], i))

# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def interval(
    values: Sequence[float] | np.ndarray | Tensor, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval:
    """The mean of per-photo ``values`` ``[N]`` (bool hits or scores) with its percentile bootstrap interval over
    photos (``scipy.stats.bootstrap``, ``method="percentile"``): the ``level`` interval of the mean from
    ``n_resamples`` resamples of N photos drawn with replacement. Deterministic for a given seed."""
    array = _per_photo_array(values, "values")
    n_resamples = check_int(n_resamples, "n_resamples")
    level = check_fraction(level, "level", low_open=True, high_open=True)
    mean = float(array.mean())
    if array.size == 1:  # every resample is the one photo (scipy asks for two)
        return Interval(mean, mean, mean)
    bounds = stats.bootstrap(
        (array,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, 2_000_000 // array.size),  # at most ~16 MB of indices at a time
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return Interval(mean, float(bounds.low), float(bounds.high))


def _per_threshold_matrix(per_photo: Mapping[float, object], name: str) -> tuple[list[float], np.ndarray]:
    """{threshold: values [N]} -> (thresholds ascending, float64 [T, N])."""
    if not isinstance(per_photo, Mapping):
        raise TypeError(f"{name} must be a dict {{threshold: per-photo values [N]}}, got {type(per_photo).__name__}")
    if not per_photo:
        raise ValueError(f"{name} must hold at least one threshold")
    thresholds = sorted(float(t) for t in per_photo)
    if len(set(thresholds)) != len(thresholds):
        raise ValueError(f"{name} holds the same threshold twice")
    rows = {float(t): _per_photo_array(v, f"{name}[{t}]") for t, v in per_photo.items()}
    _check_same_length(**{f"{name}[{t}]": rows[t] for t in thresholds})
    return thresholds, np.stack([rows[t] for t in thresholds])


def choose_threshold(per_photo_values: Mapping[float, Sequence[float] | np.ndarray | Tensor]) -> float:
    """The threshold with the highest mean over all photos (the lowest one on ties).
    ``per_photo_values``: {threshold: per-photo hits or scores [N]}."""
    thresholds, matrix = _per_threshold_matrix(per_photo_values, "per_photo_values")
    return best_key(dict(zip(thresholds, matrix.mean(axis=1).tolist(), strict=True)))


def _per_key_matrix(per_photo: Mapping[Hashable, object], name: str) -> tuple[list[Hashable], np.ndarray]:
    """{key: values [N]} (any hashable keys, e.g. (setting, threshold) pairs) -> (keys in the mapping's
    order, float64 [K, N])."""
    if not isinstance(per_photo, Mapping):
        raise TypeError(f"{name} must be a dict {{key: per-photo values [N]}}, got {type(per_photo).__name__}")
    if not per_photo:
        raise ValueError(f"{name} must hold at least one key")
    keys = list(per_photo)
    rows = [_per_photo_array(per_photo[key], f"{name}[{key!r}]") for key in keys]
    _check_same_length(**{f"{name}[{key!r}]": row for key, row in zip(keys, rows, strict=True)})
    return keys, np.stack(rows)


def kfold_choice(
    per_photo_values: Mapping[Hashable, Sequence[float] | np.ndarray | Tensor], k: int = 5, seed: int = 0
) -> KFold:
    """k-fold cross-validated score of choosing one of several settings (any keys, e.g. (CRF setting,
    mask threshold) pairs): photos are shuffled (``seed``) and split into ``k`` folds of sizes differing
    by at most one; for each fold the key with the highest mean on the other folds (the first key in
    the mapping's order on ties) scores the held-out photos. The folds depend only on N, ``k`` and
    ``seed``: two families of settings on the same photos are held out on the same folds (paired).

    ``per_photo_values``: {key: per-photo hits or scores [N]}, 2 <= k <= N ->
    (mean of the held-out values, the key chosen for each fold [k], held-out value per photo float64 [N])."""
    keys, matrix = _per_key_matrix(per_photo_values, "per_photo_values")
    n = matrix.shape[1]
    k = check_int(k, "k", 2)
    if k > n:
        raise ValueError(f"k must be at most the number of photos ({n}), got {k}")
    folds = np.array_split(np.random.default_rng(seed).permutation(n), k)
    cv_values = np.empty(n)
    chosen = []
    for held_out in folds:
        train = np.ones(n, dtype=bool)
        train[held_out] = False
        best = best_key(dict(zip(keys, matrix[:, train].mean(axis=1).tolist(), strict=True)))
        chosen.append(best)
        cv_values[held_out] = matrix[keys.index(best), held_out]
    return KFold(float(cv_values.mean()), chosen, cv_values)


def kfold_threshold(
    per_photo_hits: Mapping[float, Sequence[float] | np.ndarray | Tensor], k: int = 5, seed: int = 0
) -> KFold:
    """:func:`kfold_choice` over thresholds: the lowest threshold wins a tie.

    ``per_photo_hits``: {threshold: per-photo hits or scores [N]}, 2 <= k <= N ->
    (mean of the held-out values, the threshold chosen for each fold [k], held-out value per photo float64 [N])."""
    thresholds, matrix = _per_threshold_matrix(per_photo_hits, "per_photo_hits")
    return kfold_choice(dict(zip(thresholds, matrix, strict=True)), k, seed)


def hit_bits(hits: np.ndarray) -> str:
    """Per-photo hits as a string of 0s and 1s (compact in JSON)."""
    return "".join("1" if h else "0" for h in np.asarray(hits).astype(bool))


def paired_difference(a: str, b: str) -> Interval:
    """Mean of ``b - a`` over the same photos (strings of per-photo hits, see :func:`hit_bits`) with a
    paired percentile bootstrap interval: is technique b better than a beyond the noise?"""
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same photos, got {len(a)} and {len(b)} hits")
    diff = np.array([int(y) - int(x) for x, y in zip(a, b, strict=True)], dtype=np.float64)
    return interval(diff)


def speckle(label_map: Tensor | np.ndarray, fraction: float = SPECKLE_FRACTION) -> Speckle:
    """Islands of a label map ``[H, W]`` (-1 background, else a class index): per class c present, the number of
    8-connected components of ``label_map == c`` and the share of that mask's pixels lying in components with fewer
    than ``fraction`` times the mask's pixels."""
    labels = _label_map(label_map, "label_map")
    fraction = check_fraction(fraction, "fraction", meaning="a fraction of a class's mask")
    out = Speckle([], [], [])
    for c in (int(c) for c in np.unique(labels) if c >= 0):
        mask = labels == c
        components, n = ndimage.label(mask, structure=helpers.EIGHT_CONNECTED)
        sizes = np.bincount(components.ravel())[1:]
        out.classes.append(c)
        out.components.append(int(n))
        out.small_share.append(float(sizes[sizes < fraction * mask.sum()].sum() / mask.sum()))
    return out


# --------------------------------------------------------------------------------------------
# Detection metrics: AP over all instances (pycocotools), CorLoc
# --------------------------------------------------------------------------------------------


def average_precision(
    ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], iou_threshold: float = 0.5
) -> float:
    """AP at one IoU, the COCO way (pycocotools' ``COCOeval``: greedy matching by score, 101-point
    interpolated precision, at most 100 detections per photo), averaged over the categories that have
    ground truth. ``ground_truth`` and ``predictions``: one list per photo, same length."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _check_same_length(ground_truth=ground_truth, predictions=predictions)
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    images, annotations, results, categories = [], [], [], set()
    for image_id, (truth, found) in enumerate(zip(ground_truth, predictions, strict=True), start=1):
        images.append({"id": image_id})
        for category, (x0, y0, x1, y1), crowd in truth:
            categories.add(int(category))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(category),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(bool(crowd)),
                }
            )
        for category, (x0, y0, x1, y1), score in found:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(category),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    if not any(not crowd for truth in ground_truth for _, _, crowd in truth):
        raise ValueError("ground_truth must hold at least one object that is not a crowd region")
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in sorted(categories | {int(r["category_id"]) for r in results})],
        }
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.iouThrs = np.array([iou_threshold])
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
        evaluation.params.maxDets = [100]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 0]  # [recall points, categories]
    ids = evaluation.params.catIds
    per_category = [precision[:, k][precision[:, k] > -1].mean() for k, c in enumerate(ids) if c in categories]
    return float(np.mean(per_category))


def _photo_bootstrap(
    ground_truth: Sequence[GroundTruth], statistic: Callable[[np.ndarray], float], n_resamples: int, seed: int
) -> Interval:
    """``statistic(photo indices)`` on every photo and a percentile bootstrap interval (95%) over photos;
    resamples without any ground-truth object (crowds aside) are skipped. Hand-written, not
    ``scipy.stats.bootstrap``: AP is undefined on such a resample, and scipy cannot skip one."""
    value = statistic(np.arange(len(ground_truth)))
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(check_int(n_resamples, "n_resamples")):
        pick = rng.integers(0, len(ground_truth), size=len(ground_truth))
        if any(not crowd for i in pick for _, _, crowd in ground_truth[i]):
            samples.append(statistic(pick))
    low, high = np.quantile(samples, [0.025, 0.975])
    return Interval(value, float(low), float(high))


def _ap_of(ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], pick: np.ndarray) -> float:
    return average_precision([ground_truth[i] for i in pick], [predictions[i] for i in pick])


def average_precision_ci(
    ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], n_resamples: int = 200, seed: int = 0
) -> Interval:
    """AP@0.5 with a percentile bootstrap interval over photos (95%)."""
    _check_same_length(ground_truth=ground_truth, predictions=predictions)
    return _photo_bootstrap(ground_truth, lambda pick: _ap_of(ground_truth, predictions, pick), n_resamples, seed)


def ranked_by_truth(ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions]) -> list[list]:
    """The same boxes re-scored by their best IoU with a ground-truth object of their category (crowds
    excluded; ties by the original score): the AP of this ranking is a ceiling for any scoring of them."""
    _check_same_length(ground_truth=ground_truth, predictions=predictions)
    out = []
    for truth, found in zip(ground_truth, predictions, strict=True):
        rescored = []
        for category, box, score in found:
            same = [b for c, b, crowd in truth if c == category and not crowd]
            overlap = float(box_iou([box], same).max()) if same else 0.0
            rescored.append((category, box, overlap + 1e-6 * float(score)))
        out.append(rescored)
    return out


def average_precision_difference(
    ground_truth: Sequence[GroundTruth],
    predictions_a: Sequence[Predictions],
    predictions_b: Sequence[Predictions],
    n_resamples: int = 200,
    seed: int = 0,
) -> Interval:
    """AP@0.5 of ``predictions_a`` minus that of ``predictions_b`` on the same photos, with a paired
    percentile bootstrap interval (95%): both are scored on the same resampled photos each time."""
    _check_same_length(ground_truth=ground_truth, predictions_a=predictions_a, predictions_b=predictions_b)

    def difference(pick: np.ndarray) -> float:
        return _ap_of(ground_truth, predictions_a, pick) - _ap_of(ground_truth, predictions_b, pick)

    return _photo_bootstrap(ground_truth, difference, n_resamples, seed)


def corloc(truth: Sequence[GroundTruth], found: Sequence[Predictions]) -> np.ndarray:
    """Per photo: the best-scored box overlaps a ground-truth box with IoU >= 0.5 (bool ``[N]``)."""
    best = [max(p, key=lambda d: d[2])[1] if p else None for p in found]
    return gt_known_hits(best, [[box for _, box, _ in t] for t in truth]).numpy()

