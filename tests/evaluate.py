"""Evaluation harness: data loaders, box and mask metrics, bootstrap intervals, k-fold threshold
choice and run records. Run from the repository root (not a pytest test; it defines no tests)::

    python tests/evaluate.py                       # every technique on every data set found
    python tests/evaluate.py --technique plain     # one technique
    python tests/evaluate.py --summary             # the data sets found, with their counts
    python tests/evaluate.py --sizes               # boxes by object size, zoom pass, refined box -> results/sizes.json
    python tests/evaluate.py --refine              # the CRF refinement's protocol -> results/refine.json
    python tests/evaluate.py --markdown            # the README's tables from results/*.json

This file holds the pure, model-free part; every function is small and checks its arguments.

Conventions
- Boxes are ``(x0, y0, x1, y1)`` float pixel edges with ``x1``/``y1`` exclusive, as
  ``torchvision.ops.box_iou`` expects. ``None`` stands for "no box" (it hits nothing).
- Box metrics return torch tensors (bool ``[N]`` per photo); mask metrics work on numpy
  (``helpers.Segmentation.label_map`` is numpy) and accept tensors too.
- COCO class ids are 1..80 in ``classes.json`` order, 0 is "no object", 255 "ignore".
- ImageNet label maps hold -1 for background, else the ImageNet-1k class index 0..999.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import math
import numbers
import os
import platform
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from scipy import ndimage, stats
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: helpers.py sits in the repository root
    sys.path.insert(0, str(ROOT))

import helpers  # noqa: E402
from helpers import check_fraction, check_int, check_real  # noqa: E402  (one set of argument checks for the method and the harness)

Box = tuple[float, float, float, float]

NUM_IMAGENET_CLASSES = 1000
NUM_COCO_CLASSES = 80
IGNORE = 255
#: IoU thresholds of MaxBoxAccV2 (Choe et al., "Evaluating Weakly Supervised Object Localization
#: Methods Right", CVPR 2020).
MAX_BOX_ACC_V2_IOUS = (0.3, 0.5, 0.7)
#: Two means closer than this count as tied (floating-point sums of the same values in another order).
TIE_TOLERANCE = 1e-12

TEST_DATA = ROOT / "tests" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


Sized = Sequence | Tensor | np.ndarray


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
# Data sets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxSample:
    """An annotated photo: ImageNet class index and ground-truth boxes (clipped to the photo)."""

    photo: Image.Image
    class_index: int
    boxes: list[Box]
    name: str


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"No annotation file at {str(path)!r}")
    return json.loads(path.read_text())


def _clip_box(box: Sequence[float], width: int, height: int, where: str) -> Box:
    if len(box) != 4:
        raise ValueError(f"{where}: a box must be [x0, y0, x1, y1], got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    clipped = (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        raise ValueError(f"{where}: box {box!r} is empty once clipped to the {width}x{height} photo")
    return clipped


def load_box_set(root: str | os.PathLike) -> list[BoxSample]:
    """``root/annotations.json`` + ``root/images/`` (``imagenet_val`` or ``imagenet_val_227``):
    photos (RGB) with ImageNet class and boxes ``[x0, y0, x1, y1]``, in the file's order. Boxes are
    clipped to the real photo size (the stored ``imagenet_val`` photos may be a few pixels smaller)."""
    root = Path(root)
    entries = _read_json(root / "annotations.json")
    if not isinstance(entries, list):
        raise ValueError(f"{str(root / 'annotations.json')!r} must hold a list of photos")
    samples = []
    for entry in entries:
        photo = helpers.load_image(root / "images" / entry["file"])
        class_index = int(entry["class_index"])
        if not 0 <= class_index < NUM_IMAGENET_CLASSES:
            raise ValueError(f"{entry['file']}: class_index must be in 0..999, got {class_index}")
        boxes = [_clip_box(b, photo.width, photo.height, entry["file"]) for b in entry["boxes_xyxy"]]
        if not boxes:
            raise ValueError(f"{entry['file']}: no ground-truth box")
        samples.append(BoxSample(photo, class_index, boxes, entry["file"]))
    return samples


def load_pets(root: str | os.PathLike) -> list[tuple[str, Image.Image, np.ndarray]]:
    """``root/images/*.jpg`` with ``root/masks/<stem>.png`` -> (name, RGB photo, mask uint8 ``[H, W]``)
    sorted by name; mask values 0 background, 1 cat, 2 dog, 255 ignore."""
    root = Path(root)
    paths = sorted((root / "images").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"No *.jpg photos in {str(root / 'images')!r}")
    out = []
    for path in paths:
        mask_path = root / "masks" / f"{path.stem}.png"
        if not mask_path.is_file():
            raise FileNotFoundError(f"No mask for {path.name}: expected {str(mask_path)!r}")
        with Image.open(mask_path) as image:
            mask = np.array(image)
        photo = helpers.load_image(path)
        if mask.shape != (photo.height, photo.width):
            raise ValueError(f"{path.name}: mask {mask.shape} does not match the photo {(photo.height, photo.width)}")
        out.append((path.stem, photo, mask))
    return out


#: The previous names (helpers.py): same functions.
load_imagenet_sample = load_box_set
load_pets_sample = load_pets


@dataclass(frozen=True)
class CocoInstance:
    """One annotated object: COCO class id 1..80, crowd flag, box in photo pixels (clipped)."""

    class_index: int
    iscrowd: bool
    box: Box


@dataclass(frozen=True)
class CocoPhoto:
    """``labels``: uint8 ``[H, W]`` (0 none, 1..80 COCO class, 255 ignore);
    ``classes_present``: the COCO ids with pixels in ``labels``, ascending."""

    name: str
    photo: Image.Image
    labels: np.ndarray
    classes_present: tuple[int, ...]
    instances: tuple[CocoInstance, ...]


@dataclass(frozen=True)
class CocoSet:
    """The COCO segmentation set with its ImageNet mapping.

    ``class_names``: COCO id -> name (1..80). ``imagenet_of_coco``: COCO id -> the ImageNet
    classes that mean it (only the mappable ids are keys). ``coco_of_imagenet``: int64 ``[1000]``,
    the COCO id of each ImageNet class, 0 where there is none; pickup (717) means both car (3)
    and truck (8): it holds the lower id, 3. ``mappable_coco``: the keys of ``imagenet_of_coco``.
    """

    photos: list[CocoPhoto]
    class_names: dict[int, str]
    imagenet_of_coco: dict[int, tuple[int, ...]]
    coco_of_imagenet: np.ndarray
    mappable_coco: frozenset[int]


def _coco_mapping(raw: object, class_names: Mapping[int, str]) -> tuple[dict[int, tuple[int, ...]], np.ndarray]:
    """``imagenet_to_coco.json`` (``{"coco_to_imagenet": {COCO name: [ImageNet indices]}}``) ->
    (COCO id -> ImageNet indices, COCO id per ImageNet class ``[1000]``, 0 for none, lowest id on a clash)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("coco_to_imagenet"), dict):
        raise ValueError('imagenet_to_coco.json must hold {"coco_to_imagenet": {COCO class name: [ImageNet indices]}}')
    id_of_name = {name: i for i, name in class_names.items()}
    imagenet_of_coco: dict[int, tuple[int, ...]] = {}
    for name, indices in raw["coco_to_imagenet"].items():
        if name not in id_of_name:
            raise ValueError(f"imagenet_to_coco.json names {name!r}, which is not a COCO class of classes.json")
        bad = [i for i in indices if not 0 <= int(i) < NUM_IMAGENET_CLASSES]
        if bad:
            raise ValueError(f"imagenet_to_coco.json: {name!r} maps to ImageNet indices outside 0..999: {bad}")
        imagenet_of_coco[id_of_name[name]] = tuple(sorted(int(i) for i in indices))
    coco_of_imagenet = np.zeros(NUM_IMAGENET_CLASSES, dtype=np.int64)
    for coco_id in sorted(imagenet_of_coco, reverse=True):  # the lowest COCO id is written last and wins
        coco_of_imagenet[list(imagenet_of_coco[coco_id])] = coco_id
    return dict(sorted(imagenet_of_coco.items())), coco_of_imagenet


def load_coco(root: str | os.PathLike) -> CocoSet:
    """``root`` = ``coco_seg``: ``annotations.json``, ``classes.json``, ``imagenet_to_coco.json``,
    ``images/*.jpg`` and ``labels/*.png`` -> :class:`CocoSet` (photos in the annotation file's order)."""
    root = Path(root)
    classes = _read_json(root / "classes.json")
    class_names = {int(k): v["name"] for k, v in classes.items() if isinstance(v, dict)}
    if sorted(class_names) != list(range(1, NUM_COCO_CLASSES + 1)):
        raise ValueError(f"classes.json must name the COCO classes 1..80, got ids {sorted(class_names)}")
    imagenet_of_coco, coco_of_imagenet = _coco_mapping(_read_json(root / "imagenet_to_coco.json"), class_names)
    photos = []
    for entry in _read_json(root / "annotations.json"):
        photo = helpers.load_image(root / "images" / entry["file"])
        label_path = root / "labels" / entry["label"]
        if not label_path.is_file():
            raise FileNotFoundError(f"No label map for {entry['file']}: expected {str(label_path)!r}")
        with Image.open(label_path) as image:
            labels = np.array(image)
        if labels.shape != (photo.height, photo.width):
            raise ValueError(f"{entry['label']}: label map {labels.shape} does not match the photo")
        present = tuple(sorted(int(c) for c in entry["classes_present"]))
        if any(not 1 <= c <= NUM_COCO_CLASSES for c in present):
            raise ValueError(f"{entry['file']}: classes_present must be COCO ids 1..80, got {present}")
        instances = tuple(
            CocoInstance(
                int(i["class_index"]),
                bool(i["iscrowd"]),
                _clip_box(i["box_xyxy"], photo.width, photo.height, entry["file"]),
            )
            for i in entry["instances"]
        )
        photos.append(CocoPhoto(Path(entry["file"]).stem, photo, labels, present, instances))
    return CocoSet(photos, class_names, imagenet_of_coco, coco_of_imagenet, frozenset(imagenet_of_coco))


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


def _best_key(scores: Mapping[float, float]) -> float:
    """The key of the highest score; among scores within ``TIE_TOLERANCE`` of it, the lowest key."""
    top = max(scores.values())
    return min(t for t, s in scores.items() if s >= top - TIE_TOLERANCE)


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
) -> tuple[float, float]:
    """MaxBoxAcc (Choe et al., CVPR 2020): the best GT-known accuracy over a sweep of map
    thresholds -> (accuracy, the threshold that reaches it; the lowest on ties).
    ``boxes_by_threshold``: {map threshold: one box (or None) per photo, [N]}."""
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    ious = _best_ious_by_threshold(boxes_by_threshold, gt_boxes)
    scores = {t: float((v >= iou_threshold).double().mean()) for t, v in ious.items()}
    best = _best_key(scores)
    return scores[best], best


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
    if lut.shape != (NUM_IMAGENET_CLASSES,):
        raise ValueError(f"coco_of_imagenet must have shape [1000], got {tuple(np.asarray(coco_of_imagenet).shape)}")
    if labels.size and (labels.min() < -1 or labels.max() >= NUM_IMAGENET_CLASSES):
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
    if probs.shape != (NUM_IMAGENET_CLASSES,):
        raise ValueError(f"probabilities must have shape [1000], got {probs.shape}")
    present = _coco_ids(coco_classes_present, "coco_classes_present")
    if isinstance(imagenet_to_coco, Mapping):
        candidates = {int(c): [int(i) for i in v] for c, v in imagenet_to_coco.items()}
    elif isinstance(imagenet_to_coco, (Tensor, np.ndarray)):
        lut = np.asarray(imagenet_to_coco.cpu() if isinstance(imagenet_to_coco, Tensor) else imagenet_to_coco)
        if lut.shape != (NUM_IMAGENET_CLASSES,):
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


def bootstrap_ci(
    values: Sequence[float] | np.ndarray | Tensor, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Percentile bootstrap over photos (``scipy.stats.bootstrap``, ``method="percentile"``): ``values``
    ``[N]`` (bool hits or per-photo scores) -> (mean, low, high), the ``level`` interval of the mean from
    ``n_resamples`` resamples of N photos drawn with replacement. Deterministic for a given seed."""
    array = _per_photo_array(values, "values")
    n_resamples = check_int(n_resamples, "n_resamples")
    level = check_fraction(level, "level", low_open=True, high_open=True)
    mean = float(array.mean())
    if array.size == 1:  # every resample is the one photo (scipy asks for two)
        return mean, mean, mean
    interval = stats.bootstrap(
        (array,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, 2_000_000 // array.size),  # at most ~16 MB of indices at a time
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return mean, float(interval.low), float(interval.high)


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
    return _best_key(dict(zip(thresholds, matrix.mean(axis=1).tolist(), strict=True)))


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


def _first_best(keys: Sequence[Hashable], means: np.ndarray) -> Hashable:
    """The key of the highest mean; among means within ``TIE_TOLERANCE`` of it, the first key."""
    top = float(means.max())
    return keys[int(np.flatnonzero(means >= top - TIE_TOLERANCE)[0])]


def kfold_choice(
    per_photo_values: Mapping[Hashable, Sequence[float] | np.ndarray | Tensor], k: int = 5, seed: int = 0
) -> tuple[float, list[Hashable], np.ndarray]:
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
        best = _first_best(keys, matrix[:, train].mean(axis=1))
        chosen.append(best)
        cv_values[held_out] = matrix[keys.index(best), held_out]
    return float(cv_values.mean()), chosen, cv_values


def kfold_threshold(
    per_photo_hits: Mapping[float, Sequence[float] | np.ndarray | Tensor], k: int = 5, seed: int = 0
) -> tuple[float, list[float], np.ndarray]:
    """:func:`kfold_choice` over thresholds: the lowest threshold wins a tie.

    ``per_photo_hits``: {threshold: per-photo hits or scores [N]}, 2 <= k <= N ->
    (mean of the held-out values, the threshold chosen for each fold [k], held-out value per photo float64 [N])."""
    thresholds, matrix = _per_threshold_matrix(per_photo_hits, "per_photo_hits")
    return kfold_choice(dict(zip(thresholds, matrix, strict=True)), k, seed)


# --------------------------------------------------------------------------------------------
# Boxes by object size
# --------------------------------------------------------------------------------------------

#: Names of the object-size buckets, smallest first.
SIZE_BUCKETS = ("small", "medium", "large")
#: Bucket edges (fractions of the photo's area): a photo whose largest ground-truth box covers ``f`` of it
#: is ``small`` for f < 0.1, ``medium`` for 0.1 <= f < 0.4 and ``large`` for f >= 0.4.
SIZE_EDGES = (0.1, 0.4)
#: The key of the whole set beside the buckets in :func:`gt_known_by_size` and :func:`paired_by_size`.
ALL_PHOTOS = "all"


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


def size_bucket(fraction: float) -> str:
    """The bucket name (:data:`SIZE_BUCKETS`) of a largest-box area ``fraction`` in (0, 1]; a value on
    an edge (:data:`SIZE_EDGES`) goes to the larger bucket."""
    fraction = check_fraction(fraction, "fraction", low_open=True, meaning="a box's area as a fraction of the photo")
    return SIZE_BUCKETS[int(np.searchsorted(np.asarray(SIZE_EDGES), fraction, side="right"))]


def size_buckets(samples: Sequence[BoxSample]) -> np.ndarray:
    """Per photo, the size bucket of its largest ground-truth box: str ``[N]`` (see :data:`SIZE_EDGES`)."""
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence) or not samples:
        raise ValueError("samples must be a non-empty list of BoxSample")
    out = []
    for i, sample in enumerate(samples):
        if not isinstance(sample, BoxSample):
            raise TypeError(f"samples[{i}] must be a BoxSample, got {type(sample).__name__}")
        out.append(size_bucket(largest_box_fraction(sample.boxes, sample.photo.width, sample.photo.height)))
    return np.array(out, dtype=str)


def _check_buckets(buckets: object, n: int) -> np.ndarray:
    """Per-photo bucket names ``[n]`` -> str numpy array, else ValueError."""
    array = np.asarray(buckets)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"buckets must hold one bucket name per photo ([{n}]), got shape {array.shape}")
    unknown = sorted(set(array.tolist()) - set(SIZE_BUCKETS))
    if unknown:
        raise ValueError(f"buckets must hold names from {SIZE_BUCKETS}, got {unknown}")
    return array


def _bucket_entry(thresholds: list[float], matrix: np.ndarray, default_threshold: float) -> dict[str, object]:
    """One bucket of :func:`gt_known_by_size`; ``matrix``: the hits ``[T, n]`` of its photos."""
    n = matrix.shape[1]
    if n == 0:
        return dict.fromkeys(("gt_known", "curve", "best_threshold", "best_gt_known", "oracle")) | {"photos": 0}
    curve = dict(zip(thresholds, matrix.mean(axis=1).tolist(), strict=True))
    best = _best_key(curve)
    return {
        "photos": n,
        "gt_known": _interval(matrix[thresholds.index(default_threshold)]),
        "curve": curve,
        "best_threshold": best,
        "best_gt_known": curve[best],
        "oracle": _interval(matrix.max(axis=0)),  # a photo counts if any threshold hits
    }


def gt_known_by_size(
    hits_by_threshold: Mapping[float, Sequence[bool] | np.ndarray | Tensor],
    buckets: Sequence[str] | np.ndarray,
    default_threshold: float = helpers.DEFAULT_BOX_THRESHOLD,
) -> dict[str, dict[str, object]]:
    """GT-known per object-size bucket and over all photos.

    ``hits_by_threshold``: {box threshold: per-photo hits, bool ``[N]``} (:func:`gt_known_hits`);
    ``buckets``: per-photo bucket name ``[N]`` (:func:`size_buckets`); ``default_threshold``: one of the
    thresholds.

    -> {``"small"``, ``"medium"``, ``"large"``, ``"all"``: {``photos``; ``gt_known`` at the default
    threshold ({mean, low, high}, bootstrap 95%); ``curve`` {threshold: GT-known}; ``best_threshold``
    (the lowest on ties) and ``best_gt_known`` (chosen on these same photos: the ceiling of one fixed
    threshold for the bucket, not a held-out score); ``oracle``: the per-photo oracle ceiling (a photo
    counts if any threshold hits) with its interval}}. An empty bucket has ``photos`` 0 and None elsewhere.
    """
    thresholds, matrix = _per_threshold_matrix(hits_by_threshold, "hits_by_threshold")
    if not np.isin(matrix, (0.0, 1.0)).all():
        raise ValueError("hits_by_threshold must hold hits (bools or 0/1), got other values")
    default = check_fraction(default_threshold, "default_threshold")
    matched = [t for t in thresholds if abs(t - default) < 1e-9]
    if not matched:
        raise ValueError(f"default_threshold {default} must be one of the thresholds {thresholds}")
    names = _check_buckets(buckets, matrix.shape[1])
    out = {name: _bucket_entry(thresholds, matrix[:, names == name], matched[0]) for name in SIZE_BUCKETS}
    out[ALL_PHOTOS] = _bucket_entry(thresholds, matrix, matched[0])
    return out


def paired_by_size(
    base_hits: Sequence[bool] | np.ndarray | Tensor,
    new_hits: Sequence[bool] | np.ndarray | Tensor,
    buckets: Sequence[str] | np.ndarray,
) -> dict[str, dict[str, float] | None]:
    """GT-known of ``new_hits`` minus ``base_hits`` (the same photos, bool ``[N]``) per size bucket and over
    all photos, each a paired bootstrap 95% interval {mean, low, high}; None for an empty bucket."""
    base = _per_photo_array(base_hits, "base_hits")
    new = _per_photo_array(new_hits, "new_hits")
    _check_same_length(base_hits=base, new_hits=new)
    names = _check_buckets(buckets, base.shape[0])
    diff = new - base
    out: dict[str, dict[str, float] | None] = {
        name: _interval(diff[names == name]) if (names == name).any() else None for name in SIZE_BUCKETS
    }
    out[ALL_PHOTOS] = _interval(diff)
    return out


# --------------------------------------------------------------------------------------------
# Run records
# --------------------------------------------------------------------------------------------


def _jsonable(value: object, where: str, digits: int = 4) -> object:
    """Plain JSON types with floats rounded to ``digits``; tensors and numpy become lists/numbers."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON has no NaN or infinity")
        return round(float(value), digits)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, numbers.Real)):
                raise TypeError(f"{where}: keys must be strings or numbers, got {type(key).__name__}")
            name = key if isinstance(key, str) else str(_jsonable(key, where, digits))
            if name in out:
                raise ValueError(f"{where}: two keys give the same JSON key {name!r}")
            out[name] = _jsonable(item, f"{where}[{name!r}]", digits)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{i}]", digits) for i, item in enumerate(value)]
    raise TypeError(f"{where} has type {type(value).__name__}, which cannot be written as JSON")


def write_run(path: str | os.PathLike, record: Mapping[str, object]) -> Path:
    """Write one run's record as JSON (indent 1, sorted keys, floats rounded to 4 digits; numeric
    keys become strings) -> the path. Parent folders are made; an existing file is replaced."""
    path = Path(path)
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    if path.is_dir():
        raise ValueError(f"path must be a file name, {str(path)!r} is a folder")
    text = json.dumps(_jsonable(record, "record"), indent=1, sort_keys=True, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def run_record(
    config: Mapping[str, object], results: Mapping[str, object], seconds: float, model: str | None = None
) -> dict[str, object]:
    """One run's record: ``config`` and ``results`` with the date (UTC), the duration, the model name
    (``model``, else ``config["model"]``), torch/torchvision/Python versions and torch's thread count."""
    if not isinstance(config, Mapping) or not isinstance(results, Mapping):
        raise TypeError("config and results must be dicts")
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds >= 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    if model is None:
        if "model" not in config:
            raise ValueError('the model name is needed: pass model=... or put it in config["model"]')
        model = str(config["model"])
    return {
        "config": dict(config),
        "results": dict(results),
        "seconds": float(seconds),
        "model": model,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


# --------------------------------------------------------------------------------------------
# Script
# --------------------------------------------------------------------------------------------


def data_summary(shared: Path = SHARED_DATA, local: Path = TEST_DATA) -> dict[str, object]:
    """Counts of the data sets found (photos, boxes, mappable COCO pairs); a missing set is skipped."""
    summary: dict[str, object] = {}
    for name in ("imagenet_val", "imagenet_val_227"):
        root = shared / name if (shared / name).is_dir() else local / name
        if (root / "annotations.json").is_file():
            samples = load_box_set(root)
            summary[name] = {"photos": len(samples), "boxes": sum(len(s.boxes) for s in samples), "root": root}
    pets = shared / "pets_seg" if (shared / "pets_seg").is_dir() else local / "pets_seg"
    if (pets / "images").is_dir():
        summary["pets_seg"] = {"photos": len(load_pets(pets)), "root": pets}
    if (shared / "coco_seg" / "annotations.json").is_file():
        coco = load_coco(shared / "coco_seg")
        pairs = sum(len(set(p.classes_present) & coco.mappable_coco) for p in coco.photos)
        summary["coco_seg"] = {
            "photos": len(coco.photos),
            "pairs": sum(len(p.classes_present) for p in coco.photos),
            "mappable_pairs": pairs,
            "mappable_classes": len(coco.mappable_coco),
            "root": shared / "coco_seg",
        }
    return summary


# --------------------------------------------------------------------------------------------
# Detection metrics: AP over all instances (pycocotools), CorLoc
# --------------------------------------------------------------------------------------------

#: Ground truth of one photo: (category, box, is_crowd) per object; crowd regions are neither
#: hits nor misses, as in COCO.
GroundTruth = Sequence[tuple[int, Box, bool]]
#: Detections of one photo: (category, box, score) per box.
Predictions = Sequence[tuple[int, Box, float]]


def average_precision(
    ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], iou_threshold: float = 0.5
) -> float:
    """AP at one IoU, the COCO way (pycocotools' ``COCOeval``: greedy matching by score, 101-point
    interpolated precision, at most 100 detections per photo), averaged over the categories that have
    ground truth. ``ground_truth`` and ``predictions``: one list per photo, same length."""
    import contextlib
    import io

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
) -> dict[str, float]:
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
    return {"mean": value, "low": float(low), "high": float(high)}


def _ap_of(ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], pick: np.ndarray) -> float:
    return average_precision([ground_truth[i] for i in pick], [predictions[i] for i in pick])


def average_precision_ci(
    ground_truth: Sequence[GroundTruth], predictions: Sequence[Predictions], n_resamples: int = 200, seed: int = 0
) -> dict[str, float]:
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
) -> dict[str, float]:
    """AP@0.5 of ``predictions_a`` minus that of ``predictions_b`` on the same photos, with a paired
    percentile bootstrap interval (95%): both are scored on the same resampled photos each time."""
    _check_same_length(ground_truth=ground_truth, predictions_a=predictions_a, predictions_b=predictions_b)

    def difference(pick: np.ndarray) -> float:
        return _ap_of(ground_truth, predictions_a, pick) - _ap_of(ground_truth, predictions_b, pick)

    return _photo_bootstrap(ground_truth, difference, n_resamples, seed)


# --------------------------------------------------------------------------------------------
# Running the method: one configuration of detect() and segment() on every data set found
# --------------------------------------------------------------------------------------------

#: Box and mask thresholds swept (fractions of each map's maximum).
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 17))
#: The techniques measured against the plain recipe: ``dilated`` selects the model (its last stage
#: at stride 1, see helpers.load_model); the other keys are keyword arguments of detect() and segment().
TECHNIQUES: dict[str, dict[str, object]] = {
    "plain": {"dilated": False, "input_sizes": (224,), "flip": False},
    "flip": {"dilated": False, "input_sizes": (224,), "flip": True},
    "size 320": {"dilated": False, "input_sizes": (320,), "flip": False},
    "sizes 224+320, flip": {"dilated": False, "input_sizes": (224, 320), "flip": True},
    "dilated": {"dilated": True, "input_sizes": (224,), "flip": False},
    "dilated, flip": {"dilated": True, "input_sizes": (224,), "flip": True},
    "dilated, size 320": {"dilated": True, "input_sizes": (320,), "flip": False},
    "dilated, sizes 224+320": {"dilated": True, "input_sizes": (224, 320), "flip": False},
}
#: Box rules measured at each fixed threshold: "largest" (the largest component, detect()'s box), "peak" (the
#: component holding the map's maximum) and "union" (the box around all components); "peak" and "union" tie or
#: lose (tests/results/dilated.json), so only the harness holds them. Also two thresholds adapted to each map
#: with the largest component: "mass" (the region holding a fraction of the map's mass, the fraction swept) and
#: "otsu" (Otsu's threshold of the map's histogram; no parameter, stored under the key 0.0).
BOX_RULES = ("largest", "peak", "union")
MASS_LEVELS = tuple(round(0.05 * i, 2) for i in range(10, 20))
RESULTS = ROOT / "tests" / "results"


def predict(loaded: helpers.LoadedModel, photo: Image.Image, size: int = 224) -> Tensor:
    """Softmax probabilities ``[C]`` of one plain forward pass at ``size`` (as detect/segment score)."""
    with torch.inference_mode():
        return loaded.model(loaded.preprocess(photo, size).to(loaded.device))[0].softmax(dim=0).cpu()


def _interval(values: object) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "low": low, "high": high}


def otsu_fraction(heatmap: Tensor, bins: int = 256) -> float:
    """Otsu's threshold of a normalised map ``[H, W]`` (values in [0, 1]), as a fraction of its
    maximum: the level that maximises the between-class variance of the value histogram."""
    values = heatmap.flatten().float()
    counts = torch.histc(values, bins=bins, min=0.0, max=1.0).double()
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    weight = counts.cumsum(0)  # pixels at or below each bin
    mass = (counts * centres).cumsum(0)
    total, total_mass = weight[-1], mass[-1]
    low, high = weight, total - weight
    valid = (low > 0) & (high > 0)
    between = torch.where(
        valid, (total_mass * low - total * mass) ** 2 / (low * high).clamp_min(1), torch.zeros_like(low)
    )
    return float(min(1.0, max(1.0 / bins, (int(between.argmax()) + 1) / bins)))


def mass_fraction(heatmap: Tensor, level: float) -> float:
    """The threshold (fraction of the maximum) whose region ``heatmap >= t * max`` holds ``level`` of
    the map's total mass (ReLU'd values); ``heatmap``: normalised ``[H, W]``."""
    values = heatmap.flatten().double().clamp_min(0).sort(descending=True).values
    cumulative = values.cumsum(0)
    index = int(torch.searchsorted(cumulative, level * cumulative[-1]))
    return float(max(1e-6, min(1.0, values[min(index, values.numel() - 1)] / values[0])))


def peak_box(heatmap: Tensor | np.ndarray, threshold: float) -> Box | None:
    """Box rule "peak": the 8-connected component of ``heatmap >= threshold * max`` (``[H, W]``) that holds
    the map's first maximum (row-major), or None when the map has no confident region."""
    if helpers.heatmap_to_bbox(heatmap, threshold) is None:  # also checks the arguments
        return None
    values = heatmap.detach().cpu().numpy() if isinstance(heatmap, Tensor) else np.asarray(heatmap)
    labels, _ = ndimage.label(values >= threshold * float(values.max()), structure=np.ones((3, 3), dtype=bool))
    rows, cols = np.nonzero(labels == labels.flat[int(np.argmax(values))])
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


def union_box(heatmap: Tensor | np.ndarray, threshold: float) -> Box | None:
    """Box rule "union": the box around every component of ``heatmap >= threshold * max``, or None."""
    boxes = np.array(helpers.heatmap_to_boxes(heatmap, threshold)).reshape(-1, 4)
    return None if len(boxes) == 0 else (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())


BOX_OF: dict[str, Callable[[Tensor, float], Box | None]] = {
    "largest": helpers.heatmap_to_bbox,
    "peak": peak_box,
    "union": union_box,
}


def box_sweep(
    loaded: helpers.LoadedModel, samples: Sequence[BoxSample], options: Mapping[str, object]
) -> tuple[dict[str, dict[float, list[Box | None]]], list[bool], float]:
    """The true class's boxes on every photo for every box rule and threshold, from one
    :func:`helpers.detect` per photo (one forward and one backward pass per view) -> ({rule: {threshold:
    [box per photo]}}, per photo whether the true class is the top-1 class, s/photo)."""
    boxes: dict[str, dict[float, list[Box | None]]] = {r: {t: [] for t in THRESHOLDS} for r in BOX_RULES}
    boxes["mass"] = {level: [] for level in MASS_LEVELS}
    boxes["otsu"] = {0.0: []}
    right = []
    start = time.perf_counter()
    for sample in samples:
        size = (sample.photo.height, sample.photo.width)
        (det,) = helpers.detect(loaded, sample.photo, class_indices=[sample.class_index], **options)
        for rule in BOX_RULES:
            for t, box in zip(THRESHOLDS, helpers.cam_to_boxes(det.cam, size, THRESHOLDS, BOX_OF[rule]), strict=True):
                boxes[rule][t].append(box)
        heatmap = torch.from_numpy(det.heatmap)
        adapted = [mass_fraction(heatmap, level) for level in MASS_LEVELS] + [otsu_fraction(heatmap)]
        found = helpers.cam_to_boxes(det.cam, size, adapted)
        for level, box in zip(MASS_LEVELS, found, strict=False):
            boxes["mass"][level].append(box)
        boxes["otsu"][0.0].append(found[-1])
        right.append(det.rank == 0)  # the detection's own forward pass ranked the true class first
    return boxes, right, (time.perf_counter() - start) / max(1, len(samples))


def _first_size(options: Mapping[str, object]) -> int:
    sizes = options.get("input_sizes", helpers.DEFAULT_INPUT_SIZES)
    return int(sizes if isinstance(sizes, int) else sizes[0])


def _bits(hits: np.ndarray) -> str:
    """Per-photo hits as a string of 0s and 1s (compact in JSON)."""
    return "".join("1" if h else "0" for h in np.asarray(hits).astype(bool))


def paired_difference(a: str, b: str) -> dict[str, float]:
    """Mean of ``b - a`` over the same photos (strings of per-photo hits, see :func:`_bits`) with a
    paired percentile bootstrap interval: is technique b better than a beyond the noise?"""
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same photos, got {len(a)} and {len(b)} hits")
    diff = np.array([int(y) - int(x) for x, y in zip(a, b, strict=True)], dtype=np.float64)
    return _interval(diff)


def box_results(
    boxes: Mapping[str, Mapping[float, list[Box | None]]],
    right: Sequence[bool],
    samples: Sequence[BoxSample],
    chosen: Mapping[str, float] | None = None,
) -> dict[str, object]:
    """Per box rule: GT-known at every threshold, MaxBoxAcc and MaxBoxAccV2, and at one threshold per
    rule (``chosen``, e.g. chosen on other photos; else chosen here by 5-fold cross-validation and
    on all photos) GT-known and top-1 localization with bootstrap intervals; top-1 classification."""
    gt = [s.boxes for s in samples]
    right = np.array(right, dtype=bool)
    _check_same_length(right=right, samples=samples)
    areas = [largest_box_fraction(s.boxes, s.photo.width, s.photo.height) for s in samples]
    out: dict[str, object] = {
        "photos": len(samples),
        "top1_classification": _interval(right),
        "median_largest_box_area": float(np.median(areas)),  # fraction of the photo
    }
    for rule, by_threshold in boxes.items():
        hits = {t: gt_known_hits(b, gt).numpy() for t, b in by_threshold.items()}
        entry: dict[str, object] = {
            "gt_known_by_threshold": {t: float(h.mean()) for t, h in hits.items()},
            "max_box_acc": max_box_acc(by_threshold, gt)[0],
            "max_box_acc_threshold": max_box_acc(by_threshold, gt)[1],
            "max_box_acc_v2": max_box_acc_v2(by_threshold, gt),
        }
        if chosen is None:
            _, per_fold, cv_hits = kfold_threshold(hits)
            threshold = choose_threshold(hits)
            entry.update(gt_known_cv=_interval(cv_hits), cv_thresholds=per_fold, threshold=threshold)
            entry["cv_hits"] = _bits(cv_hits)
        else:
            threshold = chosen[rule]
            entry["threshold"] = threshold
        entry["gt_known"] = _interval(hits[threshold])
        entry["hits"] = _bits(hits[threshold])  # per photo, for paired comparisons between techniques
        entry["top1_localization"] = _interval(hits[threshold] & right)
        out[rule] = entry
    return out


def _mask_items(
    loaded: helpers.LoadedModel,
    pets: Sequence[tuple[str, Image.Image, np.ndarray]],
    coco: CocoSet | None,
    oracle: bool,
    options: Mapping[str, object] | None = None,
) -> Iterable[tuple[str, Image.Image, helpers.Segmentation, Callable[[np.ndarray], list[float]]]]:
    """(set name, photo, plain segmentation, score) per photo, one ``segment`` (``refine=False``, with the
    test-time ``options``) each: ``pets_seg`` (top-3, foreground IoU) and COCO (mappable pairs' IoUs of the map
    mapped to COCO classes; ``coco_seg_oracle`` with the best ImageNet class of each COCO class present, else
    ``coco_seg_top3``). ``score(label map [H, W]) -> values of the photo``."""
    options = dict(options or {})
    for _, photo, mask in pets:
        seg = helpers.segment(loaded, photo, topk=3, refine=False, **options)
        yield "pets_seg", photo, seg, lambda labels, mask=mask: [foreground_iou(labels >= 0, mask)]
    for item in coco.photos if coco is not None else ():
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        if not present:
            continue
        if oracle:
            classes = oracle_classes(predict(loaded, item.photo, _first_size(options)), present, coco.imagenet_of_coco)
            seg = helpers.segment(loaded, item.photo, class_indices=classes, refine=False, **options)
        else:
            seg = helpers.segment(loaded, item.photo, topk=3, refine=False, **options)

        def score(labels: np.ndarray, item: CocoPhoto = item) -> list[float]:
            mapped = imagenet_to_coco_label_map(labels, coco.coco_of_imagenet)
            return list(coco_pair_ious(mapped, item.labels, item.classes_present, coco.mappable_coco).values())

        yield "coco_seg_oracle" if oracle else "coco_seg_top3", item.photo, seg, score


def _plain_threshold_sweep(items: Iterable[tuple], photos: int) -> tuple[dict[float, list[float]], float]:
    """The plain maps (``helpers.relabel``) of :func:`_mask_items` at every threshold of :data:`THRESHOLDS`,
    scored -> ({threshold: values}, seconds per photo over ``photos``)."""
    ious: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    start = time.perf_counter()
    for _, _, seg, score in items:
        for t in THRESHOLDS:
            ious[t].extend(score(helpers.relabel(seg, t)))
    return ious, (time.perf_counter() - start) / max(1, photos)


def pets_sweep(
    loaded: helpers.LoadedModel, pets: Sequence[tuple[str, Image.Image, np.ndarray]], options: Mapping[str, object]
) -> tuple[dict[float, list[float]], float]:
    """Foreground IoU of the top-3 map (union of the masks) per photo and threshold -> (values, s/photo)."""
    return _plain_threshold_sweep(_mask_items(loaded, pets, None, False, options), len(pets))


def coco_sweep(
    loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], oracle: bool
) -> tuple[dict[float, list[float]], float]:
    """IoU per (photo, mappable COCO class present) pair and threshold, of the multi-class map mapped
    to COCO classes; with ``oracle`` the classes are the best ImageNet class of each COCO class
    present, else the top-3 -> (values, s/photo)."""
    return _plain_threshold_sweep(_mask_items(loaded, [], coco, oracle, options), len(coco.photos))


def mask_results(values: Mapping[float, Sequence[float]], chosen: float | None = None) -> dict[str, object]:
    """Mean IoU at every threshold, and (at ``chosen``, else by 5-fold cross-validation) with an interval."""
    out: dict[str, object] = {
        "items": len(next(iter(values.values()))),
        "mean_by_threshold": {t: float(np.mean(v)) for t, v in values.items()},
    }
    if chosen is None:
        _, per_fold, cv_values = kfold_threshold(values)
        out.update(cv=_interval(cv_values), cv_thresholds=per_fold, threshold=choose_threshold(values))
    else:
        out["threshold"] = chosen
    out["at_threshold"] = _interval(values[out["threshold"]])
    out["values"] = list(values[out["threshold"]])  # per item, for paired comparisons
    return out


#: Instance boxes tried for AP: (instance rule, threshold), see helpers.cam_to_instances (one box per peak). The
#: rules that lost, "components" (the components of the map at a fraction of its maximum, +0.6 points
#: [-1.4, +3.3] against one box per class on COCO) and "split" (those split at valleys by a watershed, -6.0
#: [-10.6, -3.7]), were deleted; tests/results/detection.json records them.
INSTANCE_SETTINGS = tuple(("peaks", t) for t in (0.25, 0.35, 0.45))


def _predictions(detections: Sequence[helpers.Detection], category_of, key: object) -> list[tuple[int, Box, float]]:
    """One photo's scored boxes: ``key`` "one" (``det.box`` scored by the class probability) or an
    instance setting (rule, threshold): every instance box, scored by its peak times the probability;
    ``category_of(class_index)`` gives the category, 0 to drop the class."""
    out = []
    for det in detections:
        category = int(category_of(det.class_index))
        if category == 0:
            continue
        if key == "one":
            out += [] if det.box is None else [(category, det.box, det.score)]
        else:
            found = helpers.cam_to_instances(det.cam, det.image_size, key[1])
            out += [(category, b, peak * det.score) for b, peak in found]
    return out


def _keys() -> list:
    return ["one", *INSTANCE_SETTINGS]


def _key_name(key: object) -> str:
    return key if isinstance(key, str) else f"{key[0]} {key[1]}"


def coco_detection_sweep(
    loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], oracle: bool, topk: int = 5
) -> tuple[list[list[tuple[int, Box, bool]]], dict[object, list[list[tuple[int, Box, float]]]], float]:
    """Ground truth (mappable COCO classes; crowds flagged) and detections on every COCO photo: one box
    per class ("one") and the instance boxes of each of INSTANCE_SETTINGS. ``oracle``: the best
    ImageNet class of each mappable COCO class present; else the top-``topk`` ImageNet classes, those
    without a COCO class dropped."""
    truth, found = [], {key: [] for key in _keys()}
    start = time.perf_counter()
    for item in coco.photos:
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        truth.append([(i.class_index, i.box, i.iscrowd) for i in item.instances if i.class_index in coco.mappable_coco])
        if oracle:
            classes = oracle_classes(predict(loaded, item.photo, _first_size(options)), present, coco.imagenet_of_coco)
            detections = helpers.detect(loaded, item.photo, class_indices=classes, **options) if classes else []
        else:
            detections = helpers.detect(loaded, item.photo, topk=topk, **options)
        for key in found:
            found[key].append(_predictions(detections, lambda c: coco.coco_of_imagenet[c], key))
    return truth, found, (time.perf_counter() - start) / max(1, len(coco.photos))


def imagenet_detection_sweep(
    loaded: helpers.LoadedModel, samples: Sequence[BoxSample], options: Mapping[str, object]
) -> tuple[list[list[tuple[int, Box, bool]]], dict[object, list[list[tuple[int, Box, float]]]]]:
    """The true class's boxes on every photo (one category: the class is given), one and several."""
    truth, found = [], {key: [] for key in _keys()}
    for sample in samples:
        detections = helpers.detect(loaded, sample.photo, class_indices=[sample.class_index], **options)
        truth.append([(1, box, False) for box in sample.boxes])
        for key in found:
            found[key].append(_predictions(detections, lambda c: 1, key))
    return truth, found


def corloc(truth: Sequence[GroundTruth], found: Sequence[Predictions]) -> np.ndarray:
    """Per photo: the best-scored box overlaps a ground-truth box with IoU >= 0.5 (bool ``[N]``)."""
    best = [max(p, key=lambda d: d[2])[1] if p else None for p in found]
    return gt_known_hits(best, [[box for _, box, _ in t] for t in truth]).numpy()


def detection_results(loaded: helpers.LoadedModel, options: Mapping[str, object], data: Path) -> dict[str, object]:
    """AP@0.5 (all instances) and CorLoc, one box per class against one box per instance, on COCO (oracle
    classes and the top-5) and on the ImageNet photos with several ground-truth boxes. The instance
    rule and threshold are chosen by AP on COCO with oracle classes (development photos); the 60 test
    photos report at them. Every rule at the chosen threshold gets a paired AP difference against one
    box per class; the COCO oracle entry also gets the ceiling of the boxes ranked by their IoU with the truth."""
    results: dict[str, object] = {}
    chosen = ("peaks", helpers.DEFAULT_INSTANCE_THRESHOLD)
    if (data / "coco_seg" / "annotations.json").is_file():
        coco = load_coco(data / "coco_seg")
        runs = {}
        for oracle in (True, False):
            truth, found, seconds = coco_detection_sweep(loaded, coco, options, oracle)
            entry = {_key_name(key): {"ap50": average_precision_ci(truth, boxes)} for key, boxes in found.items()}
            results["coco_oracle" if oracle else "coco_top5"] = entry | {"seconds_per_photo": seconds}
            runs[oracle] = truth, found
        oracle_entry = results["coco_oracle"]
        chosen = max(INSTANCE_SETTINGS, key=lambda k: oracle_entry[_key_name(k)]["ap50"]["mean"])
        for oracle, (truth, found) in runs.items():  # paired differences at the chosen threshold
            for key in INSTANCE_SETTINGS:
                if key[1] == chosen[1]:
                    results["coco_oracle" if oracle else "coco_top5"][_key_name(key)]["ap50_minus_one"] = (
                        average_precision_difference(truth, found[key], found["one"])
                    )
        truth, found = runs[True]
        oracle_entry["ceiling"] = {
            _key_name(key): average_precision(truth, ranked_by_truth(truth, found[key])) for key in ("one", chosen)
        }
    results["instance_setting"] = _key_name(chosen)
    for name in ("imagenet_val_227", "imagenet_val"):
        root = data / name if (data / name).is_dir() else TEST_DATA / name
        if not (root / "annotations.json").is_file():
            continue
        samples = [s for s in load_box_set(root) if len(s.boxes) > 1]
        truth, found = imagenet_detection_sweep(loaded, samples, options)
        entry: dict[str, object] = {"photos": len(samples)}
        for key, boxes in found.items():
            if key == "one" or key[1] == chosen[1]:
                entry[_key_name(key)] = {
                    "ap50": average_precision_ci(truth, boxes),
                    "corloc": _interval(corloc(truth, boxes)),
                }
                if key != "one":
                    entry[_key_name(key)]["ap50_minus_one"] = average_precision_difference(truth, boxes, found["one"])
        results[f"{name}_several_objects"] = entry
    return results


# --------------------------------------------------------------------------------------------
# Boxes by object size on the box sets; the zoom-in second pass and the refined box (both lost: harness only)
# --------------------------------------------------------------------------------------------

#: Margin of the zoom-in crop: each side of the first box moves out by this fraction of the box's width
#: (left, right) or height (top, bottom), so the crop is twice the box's size.
ZOOM_MARGIN = 0.5
#: The most forward passes of the published classifier ``detect`` top-5 may cost (issue 15).
DETECT_BUDGET_X_FORWARD = 3.0


def zoom_crop(box: Box, width: int, height: int, margin: float = ZOOM_MARGIN) -> tuple[int, int, int, int]:
    """The crop ``(left, top, right, bottom)`` (integer pixel edges, right/bottom exclusive, as
    ``PIL.Image.crop`` takes) around ``box``: each side moved out by ``margin`` times the box's width
    (left, right) or height (top, bottom), rounded outwards and clipped to the ``width`` x ``height`` photo."""
    width, height = check_int(width, "width"), check_int(height, "height")
    margin = check_real(margin, "margin", meaning="a fraction of the box's side")
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"box must be non-empty and inside the {width}x{height} photo, got {box!r}")
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (
        max(0, math.floor(x0 - dx)),
        max(0, math.floor(y0 - dy)),
        min(width, math.ceil(x1 + dx)),
        min(height, math.ceil(y1 + dy)),
    )


def uncrop_box(box: Box | None, crop: tuple[int, int, int, int]) -> Box | None:
    """A box in the pixels of ``crop`` (``(left, top, right, bottom)``) -> the same box in the photo's
    pixels (shifted by the crop's corner); None stays None."""
    if box is None:
        return None
    left, top, right, bottom = crop
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (0 <= x0 < x1 <= right - left and 0 <= y0 < y1 <= bottom - top):
        raise ValueError(f"box {box!r} must be non-empty and inside the {right - left}x{bottom - top} crop")
    return (x0 + left, y0 + top, x1 + left, y1 + top)


def zoom_boxes(
    loaded: helpers.LoadedModel,
    photo: Image.Image,
    detections: Sequence[helpers.Detection],
    thresholds: Sequence[float] = (helpers.DEFAULT_BOX_THRESHOLD,),
    margin: float = ZOOM_MARGIN,
) -> list[list[Box | None]]:
    """The zoom-in second pass: for each detection of ``photo`` (from ``helpers.detect``), crop around
    its box with ``margin`` (:func:`zoom_crop`), run Grad-CAM of the same class on the crop and read
    its box (the largest component) at each of ``thresholds``, in photo pixels -> per detection a list
    of boxes ``[T]``. All crops go through one batched ``helpers.detect`` (one forward and one backward
    pass per view). A detection without a box keeps None; one whose crop is the whole photo keeps its
    own map (a second pass would repeat the first)."""
    thresholds = [helpers.check_threshold(t) for t in thresholds]
    size = (photo.height, photo.width)
    out: list[list[Box | None]] = [[None] * len(thresholds) for _ in detections]
    crops, classes, slots = [], [], []
    for i, det in enumerate(detections):
        if det.box is None:
            continue
        crop = zoom_crop(det.box, photo.width, photo.height, margin)
        if crop == (0, 0, photo.width, photo.height):
            out[i] = helpers.cam_to_boxes(det.cam, size, thresholds)
            continue
        crops.append(photo.crop(crop))
        classes.append([det.class_index])
        slots.append((i, crop))
    if crops:
        found = helpers.detect(loaded, crops, class_indices=classes)
        for (i, crop), image, (second,) in zip(slots, crops, found, strict=True):
            boxes = helpers.cam_to_boxes(second.cam, (image.height, image.width), thresholds)
            out[i] = [uncrop_box(box, crop) for box in boxes]
    return out


def detect_zoomed(
    loaded: helpers.LoadedModel,
    photo: Image.Image,
    topk: int = 5,
    threshold: float = helpers.DEFAULT_BOX_THRESHOLD,
    margin: float = ZOOM_MARGIN,
) -> list[helpers.Detection]:
    """``helpers.detect(loaded, photo, topk, threshold)`` with each box replaced by the zoom-in pass's
    box (:func:`zoom_boxes`); the maps, scores and instance boxes stay those of the first pass."""
    detections = helpers.detect(loaded, photo, topk=topk, threshold=threshold)
    zoomed = zoom_boxes(loaded, photo, detections, (threshold,), margin)
    return [dataclasses.replace(det, box=boxes[0]) for det, boxes in zip(detections, zoomed, strict=True)]


# The box of the refined mask (it lost: harness only). Per detection, a 2-label dense CRF (background vs the
# detection's class alone, helpers.refine_label_map) on the detection's own normalised map; its box is the largest
# 8-connected component of the refined mask.

#: CRF unary thresholds (tau) tried for the refined box, chosen on the development sets pooled.
REFINED_BOX_TAUS = (0.25, 0.3, 0.35, 0.4)


def refined_box(label_map: np.ndarray | Tensor, class_index: int) -> Box | None:
    """The box (pixel edges, exclusive ends) of the largest 8-connected component of ``label_map == class_index``
    (``label_map``: integer ``[H, W]``, as ``helpers.refine_label_map`` returns; the first of equal areas in scan
    order), ``(0, 0, W, H)`` when the class fills the map, None when it is absent."""
    mask = _label_map(label_map, "label_map") == check_int(class_index, "class_index", minimum=0)
    if not mask.any():
        return None
    if mask.all():  # a constant map has no confident region for heatmap_to_bbox
        return (0.0, 0.0, float(mask.shape[1]), float(mask.shape[0]))
    return helpers.heatmap_to_bbox(mask.astype(np.uint8), 1.0)


def detection_segmentation(detection: helpers.Detection) -> helpers.Segmentation:
    """A detection as a one-class ``helpers.Segmentation`` for ``helpers.refine_label_map``: its normalised map
    ``[h, w]`` as the CAM ``[1, h, w]`` and zero per-pixel logits (with one class the logit share is 1, so the
    CRF's unaries are background ``1 - s`` and the class ``s``, ``s = sigmoid((cam - tau) / temperature)``); the
    stored label map (``[H, W]``, all background) only carries the photo's size."""
    if not isinstance(detection, helpers.Detection):
        raise TypeError(f"detection must be a helpers.Detection, got {type(detection).__name__}")
    cam = detection.cam.detach().float().cpu()
    return helpers.Segmentation(
        np.full(detection.image_size, -1, dtype=np.int64),
        [(detection.class_index, detection.label, detection.score)],
        cam[None],
        torch.zeros(1, *cam.shape),
    )


def refined_boxes(
    photo: Image.Image,
    detection: helpers.Detection,
    taus: Sequence[float] = (helpers.DEFAULT_REFINED_MASK_THRESHOLD,),
    settings: helpers.CRFSettings | None = None,
) -> list[Box | None]:
    """The refined box of one detection of ``photo`` at each CRF unary threshold of ``taus``: the 2-label CRF
    (background vs the detection's class, :func:`detection_segmentation`; ``settings``: default
    ``helpers.CRFSettings()``) by ``helpers.refine_label_maps``, its box by :func:`refined_box` -> ``[len(taus)]``
    boxes in photo pixels. No new forward pass."""
    seg = detection_segmentation(detection)
    maps = helpers.refine_label_maps(photo, seg, list(taus), settings)  # one lattice for every tau
    return [refined_box(labels, detection.class_index) for labels in maps]


def detect_refined(
    loaded: helpers.LoadedModel,
    photo: Image.Image,
    topk: int = 5,
    tau: float = helpers.DEFAULT_REFINED_MASK_THRESHOLD,
    settings: helpers.CRFSettings | None = None,
) -> list[helpers.Detection]:
    """``helpers.detect(loaded, photo, topk)`` with each box replaced by its refined box at ``tau``
    (:func:`refined_boxes`, one CRF per detection); the maps, scores and instance boxes stay detect's."""
    detections = helpers.detect(loaded, photo, topk=topk)
    return [dataclasses.replace(d, box=refined_boxes(photo, d, (tau,), settings)[0]) for d in detections]


def size_sweep(
    loaded: helpers.LoadedModel, samples: Sequence[BoxSample], taus: Sequence[float] = REFINED_BOX_TAUS
) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray], dict[float, np.ndarray], np.ndarray, float]:
    """Per photo and threshold (:data:`THRESHOLDS`), GT-known hits of today's box (``detect``'s, default
    set-up) and of the zoom-in pass (crop around the first box at the default threshold, its box at each
    threshold), and per CRF unary threshold of ``taus`` the hits of the refined box (:func:`refined_boxes`,
    ``helpers.CRFSettings()``), for the sample's class -> ({t: bool [N]}, {t: bool [N]}, {tau: bool [N]},
    whether the class is the top-1 bool [N], s/photo)."""
    base: list[list[Box | None]] = []
    zoom: list[list[Box | None]] = []
    refined: list[list[Box | None]] = []
    right = []
    start = time.perf_counter()
    for sample in samples:
        size = (sample.photo.height, sample.photo.width)
        (det,) = helpers.detect(loaded, sample.photo, class_indices=[sample.class_index])
        base.append(helpers.cam_to_boxes(det.cam, size, THRESHOLDS))
        zoom.append(zoom_boxes(loaded, sample.photo, [det], THRESHOLDS)[0])
        refined.append(refined_boxes(sample.photo, det, taus))
        right.append(det.rank == 0)
    seconds = (time.perf_counter() - start) / max(1, len(samples))
    gt = [s.boxes for s in samples]

    def hits(boxes: list[list[Box | None]], keys: Sequence[float]) -> dict[float, np.ndarray]:
        return {t: gt_known_hits([b[i] for b in boxes], gt).numpy() for i, t in enumerate(keys)}

    return hits(base, THRESHOLDS), hits(zoom, THRESHOLDS), hits(refined, taus), np.array(right, dtype=bool), seconds


def coco_box_samples(loaded: helpers.LoadedModel, coco: CocoSet) -> list[BoxSample]:
    """COCO as a full-size box set: one BoxSample per (photo, mappable COCO class with a non-crowd
    instance), its class the oracle ImageNet class (:func:`oracle_classes`), its boxes that class's instances."""
    out = []
    for item in coco.photos:
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        if not present:
            continue
        probabilities = predict(loaded, item.photo)
        for c in present:
            boxes = [i.box for i in item.instances if i.class_index == c and not i.iscrowd]
            if boxes:
                (oracle,) = oracle_classes(probabilities, [c], coco.imagenet_of_coco)
                out.append(BoxSample(item.photo, oracle, boxes, f"{item.name}:{coco.class_names[c]}"))
    return out


def size_set_results(
    base: Mapping[float, np.ndarray],
    zoom: Mapping[float, np.ndarray],
    right: np.ndarray,
    buckets: np.ndarray,
    refined: Mapping[float, np.ndarray] | None = None,
    tau: float | None = None,
) -> dict[str, object]:
    """One set of :func:`sizes_results`: GT-known by size of today's box and of the zoom pass, and the
    paired difference zoom - today at the default threshold, per bucket; with ``refined`` ({tau: hits [N]}) and
    the chosen ``tau``, the same for the refined box (its curve over tau, refined at ``tau`` - today at the
    default threshold)."""
    default = helpers.DEFAULT_BOX_THRESHOLD
    out: dict[str, object] = {
        "photos": len(buckets),
        "bucket_counts": {b: int((buckets == b).sum()) for b in SIZE_BUCKETS},
        "top1_classification": _interval(right),
        "gt_known_by_size": gt_known_by_size(base, buckets, default),
        "zoom": {
            "gt_known_by_size": gt_known_by_size(zoom, buckets, default),
            "difference_at_default": paired_by_size(base[default], zoom[default], buckets),
        },
        "buckets": "".join(b[0] for b in buckets),  # s / m / l per photo, in the set's order
        "hits_at_default": _bits(base[default]),
        "zoom_hits_at_default": _bits(zoom[default]),
    }
    if refined is not None:
        if tau is None or tau not in refined:
            raise ValueError(f"tau must be one of the refined box's thresholds {sorted(refined)}, got {tau!r}")
        out["refined_box"] = {
            "gt_known_by_size": gt_known_by_size(refined, buckets, tau),
            "difference_at_default": paired_by_size(base[default], refined[tau], buckets),
        }
        out["refined_box_hits"] = {t: _bits(h) for t, h in refined.items()}
    return out


def _median_seconds(rows: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Each callable run ``repeats`` times, round-robin after one warm-up round -> {name: median seconds}."""
    for fn in rows.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(check_int(repeats, "repeats")):
        for name, fn in rows.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: float(np.median(v)) for name, v in seconds.items()}


def box_pass_cost(
    loaded: helpers.LoadedModel,
    published: helpers.LoadedModel,
    chihuahua: Image.Image,
    test: Sequence[BoxSample],
    tau: float = helpers.DEFAULT_REFINED_MASK_THRESHOLD,
) -> dict[str, object]:
    """Cost of the zoom pass and of the refined boxes (at ``tau``, one CRF per detection) as multiples of one
    forward pass of the published classifier (``published``: stride-2 last stage, 224 input, inference mode), all
    rows round-robin in one run: ``detect`` top-5 on the Chihuahua (median of 7), and ``detect`` top-1 as a mean
    over ``test`` (one run per photo)."""

    def forward(photo: Image.Image) -> Tensor:
        with torch.inference_mode():
            return published.model(published.preprocess(photo, 224).to(published.device))

    top5 = _median_seconds(
        {
            "forward (published)": lambda: forward(chihuahua),
            "detect top-5": lambda: helpers.detect(loaded, chihuahua, topk=5),
            "detect top-5 + zoom": lambda: detect_zoomed(loaded, chihuahua, topk=5),
            "detect top-5 + refined boxes": lambda: detect_refined(loaded, chihuahua, topk=5, tau=tau),
        },
        repeats=7,
    )
    totals = dict.fromkeys(("forward (published)", "detect top-1", "detect top-1 + zoom", "detect top-1 + refined box"),
                           0.0)
    for sample in test:
        photo = sample.photo
        rows = {
            "forward (published)": lambda photo=photo: forward(photo),
            "detect top-1": lambda photo=photo: helpers.detect(loaded, photo, topk=1),
            "detect top-1 + zoom": lambda photo=photo: detect_zoomed(loaded, photo, topk=1),
            "detect top-1 + refined box": lambda photo=photo: detect_refined(loaded, photo, topk=1, tau=tau),
        }
        for name, seconds in _median_seconds(rows, repeats=1).items():
            totals[name] += seconds / len(test)
    return {
        "chihuahua_top5_x_forward": {k: v / top5["forward (published)"] for k, v in top5.items()},
        "test_top1_x_forward": {k: v / totals["forward (published)"] for k, v in totals.items()},
        "forward_ms": 1000 * top5["forward (published)"],
    }


def _wins_on_development(differences: Sequence[Mapping[str, object]]) -> bool:
    """The keep rule of a box pass: every development set's paired difference over all photos has its interval
    above 0, and its large-object mean is not below 0 (``differences``: :func:`paired_by_size` per set)."""
    return bool(differences) and all(
        d[ALL_PHOTOS]["low"] > 0 and (d["large"] is None or d["large"]["mean"] >= 0) for d in differences
    )


def _pooled_refined_choice(
    sweeps: Sequence[tuple[Mapping[float, np.ndarray], Mapping[float, np.ndarray], np.ndarray]],
) -> dict[str, object]:
    """The refined box's tau, chosen on development sets pooled: ``sweeps`` holds per set (today's hits {t: [N]},
    the refined hits {tau: [N]}, buckets [N]) -> {chosen_tau: the highest pooled GT-known (lowest on ties),
    pooled_dev_gt_known_by_tau, pooled_dev_difference: refined at it - today at the default, by bucket, paired}."""
    if not sweeps:
        raise ValueError("the refined box's tau needs at least one development set")
    taus = sorted(sweeps[0][1])
    pooled = {t: np.concatenate([refined[t] for _, refined, _ in sweeps]) for t in taus}
    tau = choose_threshold(pooled)
    today = np.concatenate([base[helpers.DEFAULT_BOX_THRESHOLD] for base, _, _ in sweeps])
    buckets = np.concatenate([b for _, _, b in sweeps])
    return {
        "chosen_tau": tau,
        "pooled_dev_gt_known_by_tau": {t: float(h.mean()) for t, h in pooled.items()},
        "pooled_dev_photos": int(today.shape[0]),
        "pooled_dev_difference": paired_by_size(today, pooled[tau], buckets),
    }


def sizes_results(loaded: helpers.LoadedModel, data: Path, published: helpers.LoadedModel | None = None) -> dict:
    """Boxes by object size (``python tests/evaluate.py --sizes``, written to ``tests/results/sizes.json``).

    Sets: ``imagenet_val_227`` (development, squashed to 227 x 227), ``coco_seg_oracle`` (development, full
    size: (photo, COCO class) pairs with the oracle ImageNet class, :func:`coco_box_samples`) and
    ``imagenet_val`` (test, full size: report only). Missing sets are skipped. Buckets by the largest
    ground-truth box: small < 0.1 <= medium < 0.4 <= large (fraction of the photo). With ``published``
    (the stride-2 classifier) the cost of the zoom pass and of the refined boxes is measured too
    (:func:`box_pass_cost`). The refined box (:func:`refined_boxes`, ``helpers.CRFSettings()``) is read at each
    tau of :data:`REFINED_BOX_TAUS`; tau is chosen on the development sets pooled, the test set only reports.

    Schema of ``results`` (the JSON's ``results`` key; thresholds are string keys in the JSON)::

        thresholds: [t, ...]                 box thresholds swept (fractions of the map's maximum)
        default_threshold: 0.25              helpers.DEFAULT_BOX_THRESHOLD (draw it as a vertical line)
        size_buckets: ["small", "medium", "large"];  size_edges: [0.1, 0.4];  zoom_margin: 0.5
        sets: {set name: {
            role: text;  photos: N;  bucket_counts: {bucket: n};  seconds_per_photo
            top1_classification: {mean, low, high}
            gt_known_by_size: {"small" | "medium" | "large" | "all": {   (see gt_known_by_size)
                photos: n;  gt_known: {mean, low, high} at the default threshold
                curve: {t: GT-known}            one curve per bucket
                best_threshold: t;  best_gt_known: GT-known at it (chosen on these photos)
                oracle: {mean, low, high}       per-photo oracle ceiling (best threshold per photo)
            }}                                  an empty bucket: photos 0, the rest null
            zoom: {gt_known_by_size: as above, for the zoom pass's box;
                   difference_at_default: {bucket | "all": {mean, low, high} paired, zoom - today, or null}}
            refined_box: {gt_known_by_size: as above over tau (gt_known at the chosen tau);
                   difference_at_default: as zoom's, refined at the chosen tau - today at the default}
            buckets: "slm..." (bucket initial per photo);  hits_at_default, zoom_hits_at_default: "0101..."
            refined_box_hits: {tau: "0101..."}
        }}
        cost (with published): {chihuahua_top5_x_forward: {row: x}, test_top1_x_forward: {row: x}, forward_ms}
        zoom_decision: {wins_on_dev: bool (every development set's "all" interval above 0, "large" not
            below 0), top5_x_forward, within_budget, kept: bool}
        refined_box_decision: {taus; chosen_tau (highest pooled development GT-known, lowest on ties);
            pooled_dev_gt_known_by_tau: {tau: GT-known}; pooled_dev_photos;  pooled_dev_difference: {bucket |
            "all": {mean, low, high} paired, refined - today}; wins_on_dev (zoom's rule); top5_x_forward,
            within_budget (with published); kept: bool; settings: helpers.CRFSettings() as a dict}
    """
    results: dict[str, object] = {
        "thresholds": list(THRESHOLDS),
        "default_threshold": helpers.DEFAULT_BOX_THRESHOLD,
        "size_buckets": list(SIZE_BUCKETS),
        "size_edges": list(SIZE_EDGES),
        "zoom_margin": ZOOM_MARGIN,
    }
    sets: dict[str, tuple[str, list[BoxSample]]] = {}
    for name, role in (
        ("imagenet_val_227", "development (squashed to 227x227)"),
        ("imagenet_val", "test (full size; report only)"),
    ):
        root = data / name if (data / name).is_dir() else TEST_DATA / name
        if (root / "annotations.json").is_file():
            sets[name] = role, load_box_set(root)
    if (data / "coco_seg" / "annotations.json").is_file():
        role = "development (full size; (photo, COCO class) pairs, oracle ImageNet class)"
        sets["coco_seg_oracle"] = role, coco_box_samples(loaded, load_coco(data / "coco_seg"))
    sweeps = {}
    for name, (_, samples) in sets.items():
        base, zoom, refined, right, seconds = size_sweep(loaded, samples)
        sweeps[name] = base, zoom, refined, right, size_buckets(samples), seconds
    development = [name for name, (role, _) in sets.items() if role.startswith("development")]
    choice: dict[str, object] = {"chosen_tau": helpers.DEFAULT_REFINED_MASK_THRESHOLD}  # no development set
    if development:
        choice = _pooled_refined_choice([(sweeps[n][0], sweeps[n][2], sweeps[n][4]) for n in development])
    tau = choice["chosen_tau"]
    results["sets"] = {}
    for name, (base, zoom, refined, right, buckets, seconds) in sweeps.items():
        results["sets"][name] = size_set_results(base, zoom, right, buckets, refined, tau) | {
            "role": sets[name][0],
            "seconds_per_photo": seconds,
        }
    zoom_wins = _wins_on_development([results["sets"][n]["zoom"]["difference_at_default"] for n in development])
    refined_wins = _wins_on_development(
        [results["sets"][n]["refined_box"]["difference_at_default"] for n in development]
    )
    decision: dict[str, object] = {"wins_on_dev": zoom_wins}
    refined_decision: dict[str, object] = {"taus": list(REFINED_BOX_TAUS), **choice, "wins_on_dev": refined_wins}
    if published is not None and "imagenet_val" in sets:
        chihuahua = helpers.load_image(ROOT / "Chihuahua.jpg")
        results["cost"] = box_pass_cost(loaded, published, chihuahua, sets["imagenet_val"][1], tau)
        top5 = results["cost"]["chihuahua_top5_x_forward"]
        for entry, row in ((decision, "detect top-5 + zoom"), (refined_decision, "detect top-5 + refined boxes")):
            entry |= {"top5_x_forward": top5[row], "within_budget": top5[row] <= DETECT_BUDGET_X_FORWARD}
    for entry in (decision, refined_decision):
        entry["kept"] = entry["wins_on_dev"] and bool(entry.get("within_budget", False))
    refined_decision["settings"] = dataclasses.asdict(helpers.CRFSettings())
    results["refined_box_decision"] = refined_decision
    results["zoom_decision"] = decision
    return results


# --------------------------------------------------------------------------------------------
# The mask refinement (helpers' CRF): settings and mask threshold chosen by cross-validation
# --------------------------------------------------------------------------------------------

#: The CRF settings compared, as overrides of ``helpers.CRFSettings()``: bilateral weight 5 / 10 / 20 / 40 / 80 times
#: bilateral width 0.16 / 0.08 of the long side. The first is the issue's (weight 10, width 0.16: 80 px on a
#: 500 px photo); on ties the first in this order wins.
REFINE_GRID: dict[str, dict[str, float]] = {
    f"wb{w:g} sxy{s:g}": {"bilateral_weight": w, "bilateral_sxy": s}
    for s in (0.16, 0.08)
    for w in (10.0, 5.0, 20.0, 40.0, 80.0)
}
#: Fold seeds of the repeated cross-validation that shows how much the verdict depends on one split into folds.
REFINE_SEEDS = tuple(range(10))
#: Mask thresholds tried with the CRF (its unary's tau: the CAM level where a class's score is one half).
REFINE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(4, 11))
#: The key of the plain masks (``helpers.relabel``) in the protocol's {(setting, threshold): values}.
PLAIN = "plain"
#: The most forward passes of the published classifier ``segment`` top-3 may cost (issue 15).
SEGMENT_BUDGET_X_FORWARD = 4.0

#: A protocol key: (``PLAIN`` or a :data:`REFINE_GRID` name, mask threshold).
MaskKey = tuple[str, float]


def refine_settings() -> dict[str, helpers.CRFSettings]:
    """The :data:`REFINE_GRID` as ``helpers.CRFSettings`` (the other fields at helpers' defaults)."""
    return {name: dataclasses.replace(helpers.CRFSettings(), **fields) for name, fields in REFINE_GRID.items()}


def refine_keys() -> list[MaskKey]:
    """Every refined (setting, threshold) pair, settings in :data:`REFINE_GRID` order, thresholds ascending."""
    return [(name, t) for name in REFINE_GRID for t in REFINE_THRESHOLDS]


def plain_keys() -> list[MaskKey]:
    """The plain masks at every threshold of :data:`THRESHOLDS`."""
    return [(PLAIN, t) for t in THRESHOLDS]


def _key_text(key: MaskKey) -> str:
    return f"{key[0]}|{key[1]}"


def refine_sweep(
    loaded: helpers.LoadedModel,
    pets: Sequence[tuple[str, Image.Image, np.ndarray]],
    coco: CocoSet | None,
    oracle: bool,
    keys: Sequence[MaskKey],
) -> tuple[dict[str, dict[MaskKey, list[float]]], dict[str, float]]:
    """Per set and key, the per-item values of the masks of that key: ``(PLAIN, t)``: ``helpers.relabel`` at
    t; ``(setting, t)``: ``helpers.refine_label_maps`` at t with that setting (one sweep over the thresholds
    per setting), both from one plain ``segment`` per photo (no new forward pass) -> ({set: {key: [values]}},
    {"segment": s/photo, "refine": s per refined label map})."""
    settings = refine_settings()
    values: dict[str, dict[MaskKey, list[float]]] = {}
    seconds = {"segment": 0.0, "refine": 0.0}
    photos = refinements = 0
    start = time.perf_counter()
    for name, photo, seg, score in _mask_items(loaded, pets, coco, oracle):
        seconds["segment"] += time.perf_counter() - start
        photos += 1
        per_key = values.setdefault(name, {key: [] for key in keys})
        by_setting: dict[str, list[float]] = {}  # one threshold sweep per CRF setting: one lattice each
        for setting, threshold in keys:
            if setting == PLAIN:
                per_key[(setting, threshold)].extend(score(helpers.relabel(seg, threshold)))
            else:
                by_setting.setdefault(setting, []).append(threshold)
        for setting, thresholds in by_setting.items():
            begin = time.perf_counter()
            maps = helpers.refine_label_maps(photo, seg, thresholds, settings[setting])
            seconds["refine"] += time.perf_counter() - begin
            refinements += len(maps)
            for threshold, labels in zip(thresholds, maps, strict=True):
                per_key[(setting, threshold)].extend(score(labels))
        start = time.perf_counter()
    return values, {"segment": seconds["segment"] / max(1, photos), "refine": seconds["refine"] / max(1, refinements)}


def _family_results(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]], keys: Sequence[MaskKey], dev_sets: Sequence[str]
) -> tuple[dict[str, object], np.ndarray, MaskKey]:
    """One family of keys (plain or refined) chosen by 5-fold cross-validation on the pooled items of
    ``dev_sets`` -> (its entry, the held-out value per pooled item [N], the key chosen on all items)."""
    pooled = {key: [v for name in dev_sets for v in values[name][key]] for key in keys}
    _, per_fold, cv = kfold_choice(pooled)
    chosen = _first_best(list(keys), np.array([np.mean(pooled[key]) for key in keys]))
    entry: dict[str, object] = {"cv": _interval(cv)}
    offset = 0
    for name in dev_sets:  # the held-out values of each set's items
        n = len(values[name][keys[0]])
        entry[f"cv_{name}"] = _interval(cv[offset : offset + n])
        offset += n
    entry |= {
        "cv_choices": [{"setting": k[0], "threshold": k[1]} for k in per_fold],
        "chosen": {"setting": chosen[0], "threshold": chosen[1]},
        "at_chosen": {name: _interval(values[name][chosen]) for name in dev_sets},
        "mean_by_key": {name: {_key_text(k): float(np.mean(values[name][k])) for k in keys} for name in dev_sets},
    }
    return entry, cv, chosen


def _repeated_cv(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    dev_sets: Sequence[str],
    seeds: Sequence[int] = REFINE_SEEDS,
) -> dict[str, object]:
    """Refined - plain, each family chosen by 5-fold CV as in :func:`_family_results`, once per fold seed ->
    {seeds; per set (``pooled`` and each of ``dev_sets``): the paired interval per seed; ``above_zero``: how many
    seeds' pooled intervals lie above 0; ``mean``: the mean pooled difference over the seeds}."""
    def pooled(keys: Sequence[MaskKey]) -> dict[MaskKey, list[float]]:
        return {key: [v for name in dev_sets for v in values[name][key]] for key in keys}

    plain, refined = pooled(plain_keys()), pooled(refine_keys())
    sizes = [len(values[name][plain_keys()[0]]) for name in dev_sets]
    out: dict[str, object] = {"seeds": list(seeds), "pooled": []} | {name: [] for name in dev_sets}
    for seed in seeds:
        diff = kfold_choice(refined, seed=seed)[2] - kfold_choice(plain, seed=seed)[2]
        out["pooled"].append(_interval(diff))
        for name, part in zip(dev_sets, np.split(diff, np.cumsum(sizes)[:-1]), strict=True):
            out[name].append(_interval(part))
    out["above_zero"] = sum(d["low"] > 0 for d in out["pooled"])
    out["mean"] = float(np.mean([d["mean"] for d in out["pooled"]]))
    return out


def refine_results(
    dev: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    top3: Mapping[str, Mapping[MaskKey, Sequence[float]]] | None = None,
) -> dict[str, object]:
    """The protocol's numbers from :func:`refine_sweep`'s values: the plain family (:func:`plain_keys`) and
    the refined one (:func:`refine_keys`) each chosen by 5-fold CV on the pooled development items
    (``pets_seg`` then ``coco_seg_oracle``, the same folds for both), the paired CV difference refined -
    plain, and (``top3``: values at the two chosen keys) COCO top-3 at the keys chosen on all items."""
    dev_sets = [name for name in ("pets_seg", "coco_seg_oracle") if name in dev]
    if not dev_sets:
        raise ValueError("dev must hold the values of pets_seg or coco_seg_oracle")
    plain, plain_cv, plain_key = _family_results(dev, plain_keys(), dev_sets)
    refined, refined_cv, refined_key = _family_results(dev, refine_keys(), dev_sets)
    diff = refined_cv - plain_cv
    out: dict[str, object] = {
        "items": {name: len(values[next(iter(values))]) for name, values in {**dev, **(top3 or {})}.items()},
        "plain": plain,
        "refined": refined,
        "refined_minus_plain_cv": {"pooled": _interval(diff)},
    }
    offset = 0
    for name in dev_sets:
        n = len(dev[name][plain_key])
        out["refined_minus_plain_cv"][name] = _interval(diff[offset : offset + n])
        offset += n
    out["repeated_cv"] = _repeated_cv(dev, dev_sets)
    if top3 and "coco_seg_top3" in top3:
        t3 = top3["coco_seg_top3"]
        out["coco_seg_top3"] = {
            "plain": _interval(t3[plain_key]),
            "refined": _interval(t3[refined_key]),
            "refined_minus_plain": _interval(np.array(t3[refined_key]) - np.array(t3[plain_key])),
        }
    return out


def segment_cost(
    loaded: helpers.LoadedModel, published: helpers.LoadedModel, photo: Image.Image, settings: helpers.CRFSettings
) -> dict[str, float]:
    """``segment`` top-3 on ``photo`` with and without ``settings``' refinement, as multiples of one forward
    pass of the published classifier (median of 5, round-robin)."""

    def forward() -> Tensor:
        with torch.inference_mode():
            return published.model(published.preprocess(photo, 224).to(published.device))

    seconds = _median_seconds(
        {
            "forward (published)": forward,
            "segment top-3, plain": lambda: helpers.segment(loaded, photo, topk=3, refine=False),
            "segment top-3, refined": lambda: helpers.segment(loaded, photo, topk=3, refine=settings),
        },
        repeats=5,
    )
    return {name: s / seconds["forward (published)"] for name, s in seconds.items()}


def refine_run(loaded: helpers.LoadedModel, data: Path, published: helpers.LoadedModel | None = None) -> dict:
    """The refinement protocol (``python tests/evaluate.py --refine``, written to ``tests/results/refine.json``).

    The CRF setting (:data:`REFINE_GRID`) and the mask threshold (:data:`REFINE_THRESHOLDS`) are chosen
    together by 5-fold cross-validation on the pooled development items with classes given (the 26 Pets
    photos, then the 257 COCO (photo, class) pairs with oracle classes); the plain masks get their own
    threshold sweep (:data:`THRESHOLDS`) on the same folds. Reported: the held-out (cross-validated) scores,
    the paired bootstrap difference refined - plain, and COCO with the top-3 classes at the keys chosen on
    all development items. ``published`` (the stride-2 classifier): also the cost of ``segment`` top-3.

    Schema of ``results``::

        items: {set: number of items (photos for pets_seg, (photo, class) pairs for COCO)}
        settings: {setting name: every helpers.CRFSettings field};  thresholds: [tau, ...] (refined)
        plain | refined: {
            cv: {mean, low, high}               held-out score over the pooled items
            cv_pets_seg, cv_coco_seg_oracle: {mean, low, high}   the same held-out values, per set
            cv_choices: [{setting, threshold}] * 5   the key chosen on the other folds, per fold
            chosen: {setting, threshold}        chosen on all development items
            at_chosen: {set: {mean, low, high}} (in-sample at the chosen key)
            mean_by_key: {set: {"setting|threshold": mean}}   (setting "plain" for the plain family)
        }
        refined_minus_plain_cv: {pooled | pets_seg | coco_seg_oracle: {mean, low, high}}   paired
        coco_seg_top3: {plain, refined, refined_minus_plain: {mean, low, high}}
        seconds: {segment: s/photo (plain), refine: s per refine_label_map call}
        cost (with published): {row: multiple of a forward pass}, segment top-3 on the Chihuahua
        repeated_cv: {seeds, pooled | pets_seg | coco_seg_oracle: [{mean, low, high}] per seed, above_zero, mean}
        decision: {wins_beyond_interval (fold seed 0), seeds_beyond_interval, within_budget, refined_default,
                   defaults_are_chosen: helpers' CRF and threshold defaults are the chosen ones}
    """
    pets = load_pets(data / "pets_seg") if (data / "pets_seg").is_dir() else []
    coco = load_coco(data / "coco_seg") if (data / "coco_seg" / "annotations.json").is_file() else None
    dev, seconds = refine_sweep(loaded, pets, coco, True, plain_keys() + refine_keys())
    results = refine_results(dev)
    chosen = [(results[f]["chosen"]["setting"], results[f]["chosen"]["threshold"]) for f in ("plain", "refined")]
    if coco is not None:
        top3, _ = refine_sweep(loaded, [], coco, False, chosen)
        results = refine_results(dev, top3)
    settings = refine_settings()
    results["settings"] = {name: dataclasses.asdict(s) for name, s in settings.items()}
    results["thresholds"] = list(REFINE_THRESHOLDS)
    results["seconds"] = seconds
    repeated = results["repeated_cv"]
    decision: dict[str, object] = {
        "wins_beyond_interval": results["refined_minus_plain_cv"]["pooled"]["low"] > 0,  # fold seed 0, as registered
        "seeds_beyond_interval": f"{repeated['above_zero']} of {len(repeated['seeds'])}",
    }
    if published is not None:
        results["cost"] = segment_cost(
            loaded, published, helpers.load_image(ROOT / "Chihuahua.jpg"), settings[chosen[1][0]]
        )
        decision["within_budget"] = results["cost"]["segment top-3, refined"] <= SEGMENT_BUDGET_X_FORWARD
    signature = inspect.signature(helpers.segment).parameters.get("refine")
    decision["refined_default"] = None if signature is None else signature.default
    # helpers' defaults are what this protocol chose: CRFSettings() with DEFAULT_REFINED_MASK_THRESHOLD, and the
    # plain masks at DEFAULT_MASK_THRESHOLD.
    decision["defaults_are_chosen"] = (
        settings[chosen[1][0]] == helpers.CRFSettings()
        and math.isclose(chosen[1][1], helpers.DEFAULT_REFINED_MASK_THRESHOLD)
        and math.isclose(chosen[0][1], helpers.DEFAULT_MASK_THRESHOLD)
    )
    results["decision"] = decision
    return results


def evaluate(
    loaded: helpers.LoadedModel, options: Mapping[str, object], data: Path, quick: bool = False
) -> dict[str, object]:
    """Every data set found under ``data`` (else ``tests/data``), one configuration.

    Thresholds are chosen on the development sets (``imagenet_val_227`` for boxes, ``pets_seg`` and
    ``coco_seg`` with oracle classes for masks) and applied unchanged to ``imagenet_val``.
    ``quick``: the first 100 photos of each set (for trying things, not for reporting)."""

    def found(name: str) -> Path | None:
        for root in (data / name, TEST_DATA / name):
            if root.is_dir():
                return root
        return None

    limit = 100 if quick else None
    results: dict[str, object] = {}
    chosen_boxes = None
    if (root := found("imagenet_val_227")) is not None:
        dev = load_box_set(root)[:limit]
        boxes, right, seconds = box_sweep(loaded, dev, options)
        results["imagenet_val_227"] = box_results(boxes, right, dev) | {"seconds_per_photo": seconds}
        chosen_boxes = {r: results["imagenet_val_227"][r]["threshold"] for r in boxes}
    if (root := found("imagenet_val")) is not None:
        test = load_box_set(root)[:limit]
        boxes, right, seconds = box_sweep(loaded, test, options)
        results["imagenet_val"] = box_results(boxes, right, test, chosen_boxes) | {"seconds_per_photo": seconds}
    mask_values: dict[str, dict[float, list[float]]] = {}
    if (root := found("pets_seg")) is not None:
        mask_values["pets_seg"], seconds = pets_sweep(loaded, load_pets(root)[:limit], options)
        results["pets_seg"] = {"seconds_per_photo": seconds}
    if (root := found("coco_seg")) is not None and (root / "annotations.json").is_file():
        coco = load_coco(root)
        if limit:
            coco = CocoSet(
                coco.photos[:limit], coco.class_names, coco.imagenet_of_coco, coco.coco_of_imagenet, coco.mappable_coco
            )
        mask_values["coco_seg_oracle"], seconds = coco_sweep(loaded, coco, options, oracle=True)
        results["coco_seg_oracle"] = {"seconds_per_photo": seconds}
        mask_values["coco_seg_top3"], seconds = coco_sweep(loaded, coco, options, oracle=False)
        results["coco_seg_top3"] = {"seconds_per_photo": seconds}
    if mask_values:
        # One mask threshold for all sets: chosen on the pooled items of the development sets
        # with classes given (Pets photos and COCO oracle pairs), by 5-fold cross-validation.
        pooled = {
            t: [v for name in ("pets_seg", "coco_seg_oracle") for v in mask_values.get(name, {t: []})[t]]
            for t in THRESHOLDS
        }
        results["masks_pooled"] = mask_results(pooled)
        mask_threshold = results["masks_pooled"]["threshold"]
        for name, values in mask_values.items():
            results[name] |= mask_results(values, mask_threshold)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA,
        help="folder holding imagenet_val_227, imagenet_val, pets_seg, coco_seg (missing sets are "
        "taken from tests/data where it has them, else skipped)",
    )
    parser.add_argument(
        "--technique", action="append", choices=sorted(TECHNIQUES), help="technique(s) to run (default: all)"
    )
    parser.add_argument("--model", default="efficientnet_lite0", choices=helpers.MODEL_NAMES)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON files, one per run")
    parser.add_argument(
        "--quick", action="store_true", help="the first 100 photos of each set only (technique runs; not with "
        "--detection, --sizes or --refine)"
    )
    parser.add_argument("--summary", action="store_true", help="only print the data sets found")
    parser.add_argument("--markdown", action="store_true", help="only print the README's tables from the JSON runs")
    parser.add_argument(
        "--detection", action="store_true", help="AP@0.5 and CorLoc, one box per class against several (defaults)"
    )
    parser.add_argument(
        "--sizes", action="store_true", help="boxes by object size, the zoom pass and the refined box (-> sizes.json)"
    )
    parser.add_argument(
        "--refine", action="store_true", help="the CRF refinement's protocol against the plain masks (-> refine.json)"
    )
    args = parser.parse_args(argv)
    if args.sizes or args.refine:
        return _protocol_run(args)
    if args.markdown:
        print(markdown_tables(args.out))
        return 0
    if args.summary:
        print(json.dumps(_jsonable(data_summary(args.data), "summary"), indent=1))
        return 0
    if args.detection:
        loaded = helpers.load_model(args.model)
        start = time.perf_counter()
        results = detection_results(loaded, {}, args.data)
        record = run_record(
            {"technique": "defaults", "dilated": helpers.DEFAULT_DILATED},
            results,
            time.perf_counter() - start,
            model=loaded.name,
        )
        print(json.dumps(_jsonable(results, "results"), indent=1))
        print(write_run(args.out / "detection.json", record))
        return 0
    models: dict[bool, helpers.LoadedModel] = {}
    for name in args.technique or list(TECHNIQUES):
        options = dict(TECHNIQUES[name])
        dilated = bool(options.pop("dilated"))
        if dilated not in models:
            models[dilated] = helpers.load_model(args.model, dilated=dilated)
        start = time.perf_counter()
        results = evaluate(models[dilated], options, args.data, args.quick)
        record = run_record(
            {"technique": name, "dilated": dilated, **options, "quick": args.quick},
            results,
            time.perf_counter() - start,
            model=models[dilated].name,
        )
        path = write_run(args.out / f"{name.replace(' ', '_').replace(',', '').replace('+', '_')}.json", record)
        print(f"{name}: {summary_line(results)}  -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def _protocol_run(args: argparse.Namespace) -> int:
    """``--sizes`` / ``--refine``: one run at the defaults, single-threaded (the timings are ratios within the run)."""
    torch.set_num_threads(1)
    loaded = helpers.load_model(args.model)
    published = helpers.load_model(args.model, dilated=False)  # the cost unit: one forward pass of the classifier
    for flag, name, run in (("sizes", "sizes", sizes_results), ("refine", "refine", refine_run)):
        if getattr(args, flag):
            start = time.perf_counter()
            results = run(loaded, args.data, published)
            config = {
                "technique": name,
                "dilated": helpers.DEFAULT_DILATED,
                "input_sizes": helpers.DEFAULT_INPUT_SIZES,
                "flip": helpers.DEFAULT_FLIP,
            }
            record = run_record(config, results, time.perf_counter() - start, loaded.name)
            path = write_run(args.out / f"{name}.json", record)
            print(protocol_markdown(record))
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


def ci_text(d: Mapping[str, float], percent: bool = True, signed: bool = False) -> str:
    """A bootstrap interval ``{"mean", "low", "high"}`` as text: ``67.9% [64.5%, 71.2%]`` (or 3 decimals;
    ``signed``: with a sign, for differences, ``+1.7% [+0.2%, +3.3%]``)."""
    form = ("+" if signed else "") + (".1%" if percent else ".3f")
    return f"{d['mean']:{form}} [{d['low']:{form}}, {d['high']:{form}}]"


def markdown_tables(folder: Path = RESULTS) -> str:
    """The README's result tables, from the JSON runs in ``folder``."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    techniques = [r for r in runs if "imagenet_val_227" in r["results"]]
    rule = "largest"  # detect()'s box
    lines = [
        "| technique | dev GT-known, 5-fold CV (800) | dev MaxBoxAccV2 | test GT-known (60) | top-1 (dev) "
        "| Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | s/photo (dev boxes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in techniques:
        res, c = r["results"], r["config"]
        default = (
            c["dilated"] == helpers.DEFAULT_DILATED
            and list(c["input_sizes"]) == list(helpers.DEFAULT_INPUT_SIZES)
            and c["flip"] == helpers.DEFAULT_FLIP
        )
        name = f"**{c['technique']}** (default)" if default else c["technique"]
        dev, test = res["imagenet_val_227"][rule], res["imagenet_val"][rule]
        lines.append(
            f"| {name} | {ci_text(dev['gt_known_cv'])} | {dev['max_box_acc_v2']:.1%} | {ci_text(test['gt_known'])} "
            f"| {res['imagenet_val_227']['top1_classification']['mean']:.1%} "
            f"| {ci_text(res['pets_seg']['at_threshold'], False)} "
            f"| {ci_text(res['coco_seg_oracle']['at_threshold'], False)} "
            f"| {ci_text(res['coco_seg_top3']['at_threshold'], False)} "
            f"| {res['imagenet_val_227']['seconds_per_photo']:.2f} |"
        )
        if default:
            chosen = r
    lines += [
        "",
        "| box rule (default set-up) | dev GT-known, 5-fold CV | threshold | test GT-known |",
        "|---|---|---|---|",
    ]
    res = chosen["results"]
    for name in (*BOX_RULES, "mass", "otsu"):
        dev, test = res["imagenet_val_227"][name], res["imagenet_val"][name]
        lines.append(f"| {name} | {ci_text(dev['gt_known_cv'])} | {dev['threshold']} | {ci_text(test['gt_known'])} |")
    plain = next(r for r in techniques if r["config"]["technique"] == "plain")["results"]
    lines += [
        "",
        "| paired difference against plain | dev GT-known (800 photos, CV) | Pets IoU (26) | COCO mIoU oracle (257) |",
        "|---|---|---|---|",
    ]
    for r in techniques:
        if r["config"]["technique"] != "plain":
            masks = [
                bootstrap_ci(np.array(r["results"][k]["values"]) - np.array(plain[k]["values"]))
                for k in ("pets_seg", "coco_seg_oracle")
            ]
            d = paired_difference(
                plain["imagenet_val_227"][rule]["cv_hits"], r["results"]["imagenet_val_227"][rule]["cv_hits"]
            )
            lines.append(
                f"| {r['config']['technique']} | {d['mean']:+.1%} [{d['low']:+.1%}, {d['high']:+.1%}] | "
                + " | ".join(f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in masks)
                + " |"
            )
    detection = next((r for r in runs if "instance_setting" in r["results"]), None)
    if detection is not None:
        det = detection["results"]
        t = det["instance_setting"]
        level = t.split()[-1]
        # the other rules at the chosen level, as far as the run recorded them (the deleted ones in older runs)
        others = [f"{r} {level}" for r in ("peaks", "components", "split") if f"{r} {level}" in det["coco_oracle"]]
        others = [o for o in others if o != t]
        names = {"components": "components", "split": "components split at valleys", "peaks": "one box per peak"}
        lines += [
            "",
            f"| AP@0.5 | one box per class | {names[t.split()[0]]} at {level} (chosen) | difference | "
            + " | ".join(f"{names[o.split()[0]]} at {level}" for o in others)
            + " |",
            "|---|---|---|---|" + "---|" * len(others),
        ]
        for label, key in (
            ("COCO, oracle classes", "coco_oracle"),
            ("COCO, top-5", "coco_top5"),
            ("ImageNet dev, photos with several boxes", "imagenet_val_227_several_objects"),
            ("ImageNet test, photos with several boxes", "imagenet_val_several_objects"),
        ):
            if key in det:
                row = det[key]
                difference = row[t].get("ap50_minus_one")
                lines.append(
                    f"| {label} | {ci_text(row['one']['ap50'])} | {ci_text(row[t]['ap50'])} "
                    f"| {'' if difference is None else ci_text(difference, signed=True)} | "
                    + " | ".join(ci_text(row[o]["ap50"]) for o in others)
                    + " |"
                )
        lines += ["", "| CorLoc | one box per class | one box per instance |", "|---|---|---|"]
        for label, key in (
            ("ImageNet dev, photos with several boxes", "imagenet_val_227_several_objects"),
            ("ImageNet test, photos with several boxes", "imagenet_val_several_objects"),
        ):
            if key in det:
                lines.append(
                    f"| {label} ({det[key]['photos']} photos) | {ci_text(det[key]['one']['corloc'])} "
                    f"| {ci_text(det[key][t]['corloc'])} |"
                )
    for r in runs:
        if protocol_markdown(r):
            lines += ["", protocol_markdown(r)]
    return "\n".join(lines)


def _ci_or_dash(d: Mapping[str, float] | None, percent: bool = True, signed: bool = False) -> str:
    return "–" if d is None else ci_text(d, percent, signed)


def sizes_markdown(results: Mapping[str, object]) -> str:
    """The tables of a ``--sizes`` run (its ``results``): per set, GT-known by object size at the default
    threshold, the best threshold of each bucket, the oracle ceiling and the paired differences of the zoom pass
    and of the refined box (at the chosen tau) against today's box."""
    default = results["default_threshold"]
    refined = results.get("refined_box_decision", {})
    tau = refined.get("chosen_tau")
    lines = []
    for name, s in results["sets"].items():
        lines += [
            f"{name} ({s['role']}, {s['photos']} photos)",
            "",
            f"| object size | photos | GT-known at {default} (default) | best threshold: GT-known "
            f"| per-photo oracle | zoom - today (paired) | refined box at {tau} - today (paired) |",
            "|---|---|---|---|---|---|---|",
        ]
        refined_difference = s.get("refined_box", {}).get("difference_at_default", {})
        for bucket in (*SIZE_BUCKETS, ALL_PHOTOS):
            e, d = s["gt_known_by_size"][bucket], s["zoom"]["difference_at_default"][bucket]
            if not e["photos"]:
                lines.append(f"| {bucket} | 0 | | | | | |")
                continue
            lines.append(
                f"| {bucket} | {e['photos']} | {ci_text(e['gt_known'])} "
                f"| {e['best_threshold']}: {e['best_gt_known']:.1%} | {ci_text(e['oracle'])} "
                f"| {_ci_or_dash(d, signed=True)} | {_ci_or_dash(refined_difference.get(bucket), signed=True)} |"
            )
        lines.append("")
    for label, decision in (("Zoom pass", results.get("zoom_decision", {})), ("Refined box", refined)):
        if "top5_x_forward" in decision:
            lines.append(
                f"{label}: detect top-5 costs {decision['top5_x_forward']:.1f} forward passes "
                f"(budget {DETECT_BUDGET_X_FORWARD:g}); wins on development photos: {decision['wins_on_dev']}; "
                f"kept: {decision['kept']}."
            )
    if "pooled_dev_difference" in refined:
        lines.append(
            f"Refined box: tau {tau} chosen among {refined['taus']} on the development sets pooled "
            f"({refined['pooled_dev_photos']} pairs): refined - today "
            f"{ci_text(refined['pooled_dev_difference'][ALL_PHOTOS], signed=True)}, large objects "
            f"{_ci_or_dash(refined['pooled_dev_difference']['large'], signed=True)}."
        )
    return "\n".join(lines)


def refine_markdown(results: Mapping[str, object]) -> str:
    """The table of a ``--refine`` run (its ``results``): cross-validated plain and refined masks, the paired
    difference, and COCO top-3 at the keys chosen on all development items."""
    plain, refined, diff = results["plain"], results["refined"], results["refined_minus_plain_cv"]
    lines = [
        "| masks (5-fold CV, held-out) | pooled | Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | chosen on all |",
        "|---|---|---|---|---|---|",
    ]
    top3 = results.get("coco_seg_top3", {})
    for label, entry, key in (("plain", plain, "plain"), ("refined (CRF)", refined, "refined")):
        chosen = entry["chosen"]
        lines.append(
            f"| {label} | {ci_text(entry['cv'], False)} | {_ci_or_dash(entry.get('cv_pets_seg'), False)} "
            f"| {_ci_or_dash(entry.get('cv_coco_seg_oracle'), False)} | {_ci_or_dash(top3.get(key), False)} "
            f"| {chosen['setting']} at {chosen['threshold']} |"
        )
    lines.append(
        f"| refined - plain (paired) | {ci_text(diff['pooled'], False, True)} "
        f"| {_ci_or_dash(diff.get('pets_seg'), False, True)} | {_ci_or_dash(diff.get('coco_seg_oracle'), False, True)} "
        f"| {_ci_or_dash(top3.get('refined_minus_plain'), False, True)} | |"
    )
    folds = ", ".join(f"{c['setting']} at {c['threshold']}" for c in refined["cv_choices"])
    lines += ["", f"Refined choice per fold: {folds}."]
    return "\n".join(lines)


def protocol_markdown(record: Mapping[str, object]) -> str:
    """The tables of a ``--sizes`` or ``--refine`` record (by its ``config["technique"]``), else ""."""
    technique = record.get("config", {}).get("technique")
    if technique == "sizes":
        return sizes_markdown(record["results"])
    if technique == "refine":
        return refine_markdown(record["results"])
    return ""


def summary_line(results: Mapping[str, object]) -> str:
    """One line per run: the headline numbers."""
    parts = []
    if "imagenet_val_227" in results:
        for rule in (*BOX_RULES, "mass", "otsu"):
            r = results["imagenet_val_227"][rule]
            parts.append(f"{rule}: CV GT-known {r['gt_known_cv']['mean']:.1%} (t={r['threshold']})")
    if "imagenet_val" in results:
        r = results["imagenet_val"]["largest"]
        parts.append(f"test GT-known {r['gt_known']['mean']:.1%}")
    for name in ("pets_seg", "coco_seg_oracle", "coco_seg_top3"):
        if name in results:
            parts.append(f"{name} {results[name]['at_threshold']['mean']:.3f}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
