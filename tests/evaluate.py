"""Evaluation harness: data loaders, box and mask metrics, bootstrap intervals, k-fold threshold
choice and run records. Run from the repository root (not a pytest test; it defines no tests)::

    python tests/evaluate.py                       # every technique on every data set found
    python tests/evaluate.py --technique plain     # one technique
    python tests/evaluate.py --summary             # the data sets found, with their counts

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
import datetime
import json
import math
import numbers
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from helpers import check_fraction, check_int  # noqa: E402  (one set of argument checks for the method and the harness)

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


def kfold_threshold(
    per_photo_hits: Mapping[float, Sequence[float] | np.ndarray | Tensor], k: int = 5, seed: int = 0
) -> tuple[float, list[float], np.ndarray]:
    """k-fold cross-validated score of choosing a threshold: photos are shuffled (``seed``) and split
    into ``k`` folds of sizes differing by at most one; for each fold the threshold with the highest
    mean on the other folds (the lowest one on ties) scores the held-out photos.

    ``per_photo_hits``: {threshold: per-photo hits or scores [N]}, 2 <= k <= N ->
    (mean of the held-out values, the threshold chosen for each fold [k], held-out value per photo float64 [N])."""
    thresholds, matrix = _per_threshold_matrix(per_photo_hits, "per_photo_hits")
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
        best = _best_key(dict(zip(thresholds, matrix[:, train].mean(axis=1).tolist(), strict=True)))
        chosen.append(best)
        cv_values[held_out] = matrix[thresholds.index(best), held_out]
    return float(cv_values.mean()), chosen, cv_values


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
    areas = [max((b[2] - b[0]) * (b[3] - b[1]) for b in s.boxes) / (s.photo.width * s.photo.height) for s in samples]
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


def pets_sweep(
    loaded: helpers.LoadedModel, pets: Sequence[tuple[str, Image.Image, np.ndarray]], options: Mapping[str, object]
) -> tuple[dict[float, list[float]], float]:
    """Foreground IoU of the top-3 map (union of the masks) per photo and threshold -> (values, s/photo)."""
    ious: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    start = time.perf_counter()
    for _, photo, mask in pets:
        seg = helpers.segment(loaded, photo, topk=3, **options)
        for t in THRESHOLDS:
            ious[t].append(foreground_iou(helpers.relabel(seg, t) >= 0, mask))
    return ious, (time.perf_counter() - start) / max(1, len(pets))


def coco_sweep(
    loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], oracle: bool
) -> tuple[dict[float, list[float]], float]:
    """IoU per (photo, mappable COCO class present) pair and threshold, of the multi-class map mapped
    to COCO classes; with ``oracle`` the classes are the best ImageNet class of each COCO class
    present, else the top-3 -> (values, s/photo)."""
    ious: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    start = time.perf_counter()
    for item in coco.photos:
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        if not present:
            continue
        if oracle:
            classes = oracle_classes(predict(loaded, item.photo, _first_size(options)), present, coco.imagenet_of_coco)
            seg = helpers.segment(loaded, item.photo, class_indices=classes, **options)
        else:
            seg = helpers.segment(loaded, item.photo, topk=3, **options)
        for t in THRESHOLDS:
            mapped = imagenet_to_coco_label_map(helpers.relabel(seg, t), coco.coco_of_imagenet)
            pair = coco_pair_ious(mapped, item.labels, item.classes_present, coco.mappable_coco)
            ious[t].extend(pair.values())
    return ious, (time.perf_counter() - start) / max(1, len(coco.photos))


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
    parser.add_argument("--quick", action="store_true", help="the first 100 photos of each set only")
    parser.add_argument("--summary", action="store_true", help="only print the data sets found")
    parser.add_argument("--markdown", action="store_true", help="only print the README's tables from the JSON runs")
    parser.add_argument(
        "--detection", action="store_true", help="AP@0.5 and CorLoc, one box per class against several (defaults)"
    )
    args = parser.parse_args(argv)
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
    return "\n".join(lines)


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
