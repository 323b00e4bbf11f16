"""The boxes-and-masks protocol: one configuration of ``helpers.detect`` and ``helpers.segment`` (a technique) on
every data set found (``python -m evaluation [--technique NAME]``, one ``evaluation/results/<name>.json`` each).

Boxes: the largest component of the true class's Grad-CAM at each threshold (``detect``'s box), scored by GT-known
(IoU >= 0.5), the threshold chosen by 5-fold cross-validation on ``imagenet_val_227`` and applied unchanged to
``imagenet_val``. Masks: the plain label map of ``segment`` at each threshold, scored by foreground IoU (Pets) and
per-pair IoU (COCO), one threshold chosen on the pooled development items (Pets, COCO with oracle classes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

import helpers
from helpers import Box

from .data import (
    SHARED_DATA,
    BoxSample,
    CocoPhoto,
    CocoSet,
    PetsPhoto,
    find_dataset,
    load_box_set,
    load_coco,
    load_pets,
)
from .metrics import (
    choose_threshold,
    coco_pair_ious,
    foreground_iou,
    gt_known_hits,
    hit_bits,
    imagenet_to_coco_label_map,
    interval,
    kfold_threshold,
    largest_box_fraction,
    max_box_acc,
    max_box_acc_v2,
    oracle_classes,
)
from .running import photo_options, predict, progress, relabel

#: Box and mask thresholds swept (fractions of each map's maximum).
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 17))
#: The box rule measured: the largest component (``detect``'s box). Its key in the records.
BOX_RULE = "largest"
#: ``--quick``: the first photos of each set only (for trying things, not for reporting).
QUICK_PHOTOS = 100


@dataclass(frozen=True)
class Technique:
    """One configuration measured by the protocol: ``dilated`` selects the model (its last stage at stride 1, see
    ``helpers.load_model``); every other field except ``name`` is a keyword argument of ``detect`` and ``segment``
    (:meth:`options`). A new option is a new field here (with the default that means "as today") and a new entry
    in :data:`TECHNIQUES`."""

    name: str
    dilated: bool
    input_sizes: tuple[int, ...] = (224,)
    flip: bool = False

    def options(self) -> dict[str, object]:
        """The keyword arguments of ``detect`` and ``segment``: every field but ``name`` and ``dilated``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "dilated")}

    def config(self) -> dict[str, object]:
        """The run record's ``config``: the technique's name, ``dilated`` and its options."""
        return {"technique": self.name, "dilated": self.dilated, **self.options()}

    def file_name(self) -> str:
        """The record's file name in ``evaluation/results``, e.g. ``dilated_sizes_224_320.json``."""
        return f"{self.name.replace(' ', '_').replace(',', '').replace('+', '_')}.json"


def _techniques(*techniques: Technique) -> dict[str, Technique]:
    return {t.name: t for t in techniques}


#: The techniques measured against the plain recipe, by name.
TECHNIQUES: dict[str, Technique] = _techniques(
    Technique("plain", dilated=False),
    Technique("flip", dilated=False, flip=True),
    Technique("size 320", dilated=False, input_sizes=(320,)),
    Technique("sizes 224+320, flip", dilated=False, input_sizes=(224, 320), flip=True),
    Technique("dilated", dilated=True),
    Technique("dilated, flip", dilated=True, flip=True),
    Technique("dilated, size 320", dilated=True, input_sizes=(320,)),
    Technique("dilated, sizes 224+320", dilated=True, input_sizes=(224, 320)),
)


@dataclass(frozen=True)
class BoxSweep:
    """The true class's boxes on every photo of a box set (:func:`box_sweep`).

    ``boxes``: {threshold: the largest-component box (or None) per photo, ``[N]``}; ``top1``: per photo, whether the
    true class is ranked first; ``seconds_per_photo``: the sweep's time per photo."""

    boxes: dict[float, list[Box | None]]
    top1: list[bool]
    seconds_per_photo: float


def box_sweep(loaded: helpers.LoadedModel, samples: Sequence[BoxSample], options: Mapping[str, object]) -> BoxSweep:
    """The true class's boxes at every threshold of :data:`THRESHOLDS` on every photo, from one ``helpers.detect``
    per photo (with the keyword ``options``; one forward and one backward pass per view), read off its map by
    ``helpers.cam_to_boxes`` (the largest component)."""
    boxes: dict[float, list[Box | None]] = {t: [] for t in THRESHOLDS}
    top1 = []
    start = time.perf_counter()
    for sample in progress(samples, "boxes"):
        size = (sample.photo.height, sample.photo.width)
        view = photo_options(options, sample.photo)
        (det,) = helpers.detect(loaded, sample.photo, class_indices=[sample.class_index], **view)
        for t, box in zip(THRESHOLDS, helpers.cam_to_boxes(det.cam, size, THRESHOLDS), strict=True):
            boxes[t].append(box)
        top1.append(det.rank == 0)  # the detection's own forward pass ranked the true class first
    return BoxSweep(boxes, top1, (time.perf_counter() - start) / max(1, len(samples)))


def box_results(sweep: BoxSweep, samples: Sequence[BoxSample], chosen: float | None = None) -> dict[str, object]:
    """GT-known at every threshold, MaxBoxAcc and MaxBoxAccV2, and at one threshold (``chosen``, e.g. chosen on
    other photos; else chosen here by 5-fold cross-validation and on all photos) GT-known and top-1 localization
    with bootstrap intervals, under the key :data:`BOX_RULE`; top-1 classification; the sweep's time per photo."""
    gt = [s.boxes for s in samples]
    right = np.array(sweep.top1, dtype=bool)
    if len(right) != len(samples):
        raise ValueError(f"sweep and samples must hold the same photos, got {len(right)} and {len(samples)}")
    areas = [largest_box_fraction(s.boxes, s.photo.width, s.photo.height) for s in samples]
    hits = {t: gt_known_hits(b, gt).numpy() for t, b in sweep.boxes.items()}
    best = max_box_acc(sweep.boxes, gt)
    entry: dict[str, object] = {
        "gt_known_by_threshold": {t: float(h.mean()) for t, h in hits.items()},
        "max_box_acc": best.accuracy,
        "max_box_acc_threshold": best.threshold,
        "max_box_acc_v2": max_box_acc_v2(sweep.boxes, gt),
    }
    if chosen is None:
        cv = kfold_threshold(hits)
        threshold = choose_threshold(hits)
        entry.update(gt_known_cv=interval(cv.held_out), cv_thresholds=cv.chosen, threshold=threshold)
        entry["cv_hits"] = hit_bits(cv.held_out)
    else:
        threshold = chosen
        entry["threshold"] = threshold
    entry["gt_known"] = interval(hits[threshold])
    entry["hits"] = hit_bits(hits[threshold])  # per photo, for paired comparisons between techniques
    entry["top1_localization"] = interval(hits[threshold] & right)
    return {
        "photos": len(samples),
        "top1_classification": interval(right),
        "median_largest_box_area": float(np.median(areas)),  # fraction of the photo
        BOX_RULE: entry,
        "seconds_per_photo": sweep.seconds_per_photo,
    }


class MaskItem(NamedTuple):
    """One photo of the mask sets: its set's name, the photo, its plain segmentation and
    ``score(label map [H, W]) -> the photo's values`` (one foreground IoU for Pets, one IoU per pair for COCO)."""

    set_name: str
    photo: Image.Image
    segmentation: helpers.Segmentation
    score: Callable[[np.ndarray], list[float]]


def mask_items(
    loaded: helpers.LoadedModel,
    pets: Sequence[PetsPhoto],
    coco: CocoSet | None,
    oracle: bool,
    options: Mapping[str, object] | None = None,
) -> Iterator[MaskItem]:
    """A :class:`MaskItem` per photo, one ``segment`` (``refine=False``, with the test-time ``options``) each:
    ``pets_seg`` (top-3, foreground IoU) and COCO (mappable pairs' IoUs of the map mapped to COCO classes;
    ``coco_seg_oracle`` with the best ImageNet class of each COCO class present, else ``coco_seg_top3``)."""
    options = dict(options or {})
    for _, photo, mask in progress(pets, "masks pets_seg"):
        seg = helpers.segment(loaded, photo, topk=3, refine=False, **photo_options(options, photo))
        yield MaskItem("pets_seg", photo, seg, lambda labels, mask=mask: [foreground_iou(labels >= 0, mask)])
    name = "coco_seg_oracle" if oracle else "coco_seg_top3"
    for item in progress(coco.photos if coco is not None else (), f"masks {name}"):
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        if not present:
            continue
        view = photo_options(options, item.photo)
        if oracle:  # the classes come from the plain 224 view, as detect/segment's own
            classes = oracle_classes(predict(loaded, item.photo), present, coco.imagenet_of_coco)
            seg = helpers.segment(loaded, item.photo, class_indices=classes, refine=False, **view)
        else:
            seg = helpers.segment(loaded, item.photo, topk=3, refine=False, **view)

        def score(labels: np.ndarray, item: CocoPhoto = item) -> list[float]:
            mapped = imagenet_to_coco_label_map(labels, coco.coco_of_imagenet)
            return list(coco_pair_ious(mapped, item.labels, item.classes_present, coco.mappable_coco).values())

        yield MaskItem(name, item.photo, seg, score)


@dataclass(frozen=True)
class MaskSweep:
    """Per-item values of the plain masks at every threshold: ``values`` {threshold: [values]}, and the sweep's
    time per photo."""

    values: dict[float, list[float]]
    seconds_per_photo: float


def plain_threshold_sweep(items: Iterable[MaskItem], photos: int) -> MaskSweep:
    """The plain maps (:func:`relabel`) of ``items`` at every threshold of :data:`THRESHOLDS`, scored; the time is
    per photo over ``photos``."""
    values: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    start = time.perf_counter()
    for item in items:
        for t in THRESHOLDS:
            values[t].extend(item.score(relabel(item.segmentation, t)))
    return MaskSweep(values, (time.perf_counter() - start) / max(1, photos))


def pets_sweep(loaded: helpers.LoadedModel, pets: Sequence[PetsPhoto], options: Mapping[str, object]) -> MaskSweep:
    """Foreground IoU of the top-3 map (union of the masks) per photo and threshold."""
    return plain_threshold_sweep(mask_items(loaded, pets, None, False, options), len(pets))


def coco_sweep(loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], oracle: bool) -> MaskSweep:
    """IoU per (photo, mappable COCO class present) pair and threshold, of the multi-class map mapped to COCO
    classes; with ``oracle`` the classes are the best ImageNet class of each COCO class present, else the top-3."""
    return plain_threshold_sweep(mask_items(loaded, [], coco, oracle, options), len(coco.photos))


def mask_results(values: Mapping[float, Sequence[float]], chosen: float | None = None) -> dict[str, object]:
    """Mean IoU at every threshold, and (at ``chosen``, else by 5-fold cross-validation) with an interval."""
    out: dict[str, object] = {
        "items": len(next(iter(values.values()))),
        "mean_by_threshold": {t: float(np.mean(v)) for t, v in values.items()},
    }
    if chosen is None:
        cv = kfold_threshold(values)
        out.update(cv=interval(cv.held_out), cv_thresholds=cv.chosen, threshold=choose_threshold(values))
    else:
        out["threshold"] = chosen
    out["at_threshold"] = interval(values[out["threshold"]])
    out["values"] = list(values[out["threshold"]])  # per item, for paired comparisons
    return out


def evaluate(
    loaded: helpers.LoadedModel,
    options: Mapping[str, object],
    data: Path = SHARED_DATA,
    quick: bool = False,
    limit: int | None = None,
    masks: bool = True,
) -> dict[str, object]:
    """Every data set found (:func:`find_dataset` under ``data``), one configuration (``options``: keyword
    arguments of detect/segment, :meth:`Technique.options`).

    Thresholds are chosen on the development sets (``imagenet_val_227`` for boxes, ``pets_seg`` and
    ``coco_seg`` with oracle classes for masks) and applied unchanged to ``imagenet_val``.
    ``quick``: the first :data:`QUICK_PHOTOS` photos of each set; ``limit``: the first ``limit`` photos (both for
    trying things, not for reporting). ``options["input_sizes"]`` may be a rule (:func:`.running.photo_options`).
    ``masks=False``: boxes only (a protocol that measures the plain masks itself, as ``--detail`` does)."""
    limit = QUICK_PHOTOS if quick and limit is None else limit
    results: dict[str, object] = {}
    chosen_box = None
    if (root := find_dataset("imagenet_val_227", data)) is not None:
        dev = load_box_set(root)[:limit]
        results["imagenet_val_227"] = box_results(box_sweep(loaded, dev, options), dev)
        chosen_box = results["imagenet_val_227"][BOX_RULE]["threshold"]
    if (root := find_dataset("imagenet_val", data)) is not None:
        test = load_box_set(root)[:limit]
        results["imagenet_val"] = box_results(box_sweep(loaded, test, options), test, chosen_box)
    sweeps: dict[str, MaskSweep] = {}
    if masks and (root := find_dataset("pets_seg", data)) is not None:
        sweeps["pets_seg"] = pets_sweep(loaded, load_pets(root)[:limit], options)
    if masks and (root := find_dataset("coco_seg", data)) is not None:
        coco = load_coco(root).head(limit)
        sweeps["coco_seg_oracle"] = coco_sweep(loaded, coco, options, oracle=True)
        sweeps["coco_seg_top3"] = coco_sweep(loaded, coco, options, oracle=False)
    if sweeps:
        # One mask threshold for all sets: chosen on the pooled items of the development sets
        # with classes given (Pets photos and COCO oracle pairs), by 5-fold cross-validation.
        pooled = {
            t: [v for name in ("pets_seg", "coco_seg_oracle") if name in sweeps for v in sweeps[name].values[t]]
            for t in THRESHOLDS
        }
        results["masks_pooled"] = mask_results(pooled)
        mask_threshold = results["masks_pooled"]["threshold"]
        for name, sweep in sweeps.items():
            results[name] = {"seconds_per_photo": sweep.seconds_per_photo} | mask_results(sweep.values, mask_threshold)
    return results
