"""The detection protocol (``python -m evaluation --detection`` -> ``evaluation/results/detection.json``): AP@0.5
over all instances and CorLoc, one box per class against one box per instance (``helpers.cam_to_instances``),
at helpers' defaults."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import helpers
from helpers import Box

from .data import SHARED_DATA, BoxSample, CocoSet, find_dataset, load_box_set, load_coco
from .metrics import (
    GroundTruth,
    Predictions,
    average_precision,
    average_precision_ci,
    average_precision_difference,
    corloc,
    interval,
    oracle_classes,
    ranked_by_truth,
)
from .running import photo_options, predict, progress

#: Instance boxes tried for AP: (instance rule, threshold), see helpers.cam_to_instances (one box per peak).
#: evaluation/results/detection.json also holds two rules that lost, "components" and "split".
INSTANCE_SETTINGS = tuple(("peaks", t) for t in (0.25, 0.35, 0.45))
#: The key of one box per class (``det.box``) beside the instance settings.
ONE_BOX = "one"
#: Classes per photo detected without oracle classes.
TOPK = 5

#: A detection key: :data:`ONE_BOX` or an instance setting (rule, threshold).
Key = str | tuple[str, float]


@dataclass(frozen=True)
class DetectionSweep:
    """Ground truth and scored boxes on every photo of a set: ``truth`` one :data:`GroundTruth` per photo,
    ``found`` {key: one :data:`Predictions` per photo} for :data:`ONE_BOX` and each of :data:`INSTANCE_SETTINGS`."""

    truth: list[GroundTruth]
    found: dict[Key, list[Predictions]]
    seconds_per_photo: float


def keys() -> list[Key]:
    """One box per class, then every instance setting."""
    return [ONE_BOX, *INSTANCE_SETTINGS]


def key_name(key: Key) -> str:
    """A key as the records name it: ``"one"`` or ``"peaks 0.35"``."""
    return key if isinstance(key, str) else f"{key[0]} {key[1]}"


def _predictions(
    detections: Sequence[helpers.Detection], category_of: Callable[[int], int], key: Key
) -> list[tuple[int, Box, float]]:
    """One photo's scored boxes: ``key`` :data:`ONE_BOX` (``det.box`` scored by the class probability) or an
    instance setting (rule, threshold): every instance box, scored by its peak times the probability;
    ``category_of(class_index)`` gives the category, 0 to drop the class."""
    out = []
    for det in detections:
        category = int(category_of(det.class_index))
        if category == 0:
            continue
        if key == ONE_BOX:
            out += [] if det.box is None else [(category, det.box, det.score)]
        else:
            found = helpers.cam_to_instances(det.cam, det.image_size, key[1])
            out += [(category, b, peak * det.score) for b, peak in found]
    return out


def coco_detection_sweep(
    loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], oracle: bool, topk: int = TOPK
) -> DetectionSweep:
    """Ground truth (mappable COCO classes; crowds flagged) and detections on every COCO photo, for every key.
    ``oracle``: the best ImageNet class of each mappable COCO class present; else the top-``topk`` ImageNet
    classes, those without a COCO class dropped."""
    truth, found = [], {key: [] for key in keys()}
    start = time.perf_counter()
    for item in progress(coco.photos, f"detection coco {'oracle' if oracle else 'top-5'}"):
        present = [c for c in item.classes_present if c in coco.mappable_coco]
        truth.append([(i.class_index, i.box, i.iscrowd) for i in item.instances if i.class_index in coco.mappable_coco])
        view = photo_options(options, item.photo)
        if oracle:  # the classes come from the plain 224 view, as detect's own ranking
            classes = oracle_classes(predict(loaded, item.photo), present, coco.imagenet_of_coco)
            detections = helpers.detect(loaded, item.photo, class_indices=classes, **view) if classes else []
        else:
            detections = helpers.detect(loaded, item.photo, topk=topk, **view)
        for key in found:
            found[key].append(_predictions(detections, lambda c: coco.coco_of_imagenet[c], key))
    return DetectionSweep(truth, found, (time.perf_counter() - start) / max(1, len(coco.photos)))


def imagenet_detection_sweep(
    loaded: helpers.LoadedModel, samples: Sequence[BoxSample], options: Mapping[str, object]
) -> DetectionSweep:
    """The true class's boxes on every photo (one category: the class is given), for every key."""
    truth, found = [], {key: [] for key in keys()}
    start = time.perf_counter()
    for sample in progress(samples, "detection imagenet"):
        view = photo_options(options, sample.photo)
        detections = helpers.detect(loaded, sample.photo, class_indices=[sample.class_index], **view)
        truth.append([(1, box, False) for box in sample.boxes])
        for key in found:
            found[key].append(_predictions(detections, lambda c: 1, key))
    return DetectionSweep(truth, found, (time.perf_counter() - start) / max(1, len(samples)))


def detection_results(
    loaded: helpers.LoadedModel, options: Mapping[str, object], data: Path = SHARED_DATA
) -> dict[str, object]:
    """AP@0.5 (all instances) and CorLoc, one box per class against one box per instance, on COCO (oracle
    classes and the top-5) and on the ImageNet photos with several ground-truth boxes. The instance
    rule and threshold are chosen by AP on COCO with oracle classes (development photos); the 60 test
    photos report at them. Every rule at the chosen threshold gets a paired AP difference against one
    box per class; the COCO oracle entry also gets the ceiling of the boxes ranked by their IoU with the truth."""
    results: dict[str, object] = {}
    chosen: Key = ("peaks", helpers.DEFAULT_INSTANCE_THRESHOLD)
    if (root := find_dataset("coco_seg", data)) is not None:
        coco = load_coco(root)
        sweeps: dict[bool, DetectionSweep] = {}
        for oracle in (True, False):
            sweep = coco_detection_sweep(loaded, coco, options, oracle)
            entry = {key_name(k): {"ap50": average_precision_ci(sweep.truth, b)} for k, b in sweep.found.items()}
            results["coco_oracle" if oracle else "coco_top5"] = entry | {"seconds_per_photo": sweep.seconds_per_photo}
            sweeps[oracle] = sweep
        oracle_entry = results["coco_oracle"]
        chosen = max(INSTANCE_SETTINGS, key=lambda k: oracle_entry[key_name(k)]["ap50"]["mean"])
        for oracle, sweep in sweeps.items():  # paired differences at the chosen threshold
            for key in INSTANCE_SETTINGS:
                if key[1] == chosen[1]:
                    results["coco_oracle" if oracle else "coco_top5"][key_name(key)]["ap50_minus_one"] = (
                        average_precision_difference(sweep.truth, sweep.found[key], sweep.found[ONE_BOX])
                    )
        truth, found = sweeps[True].truth, sweeps[True].found
        oracle_entry["ceiling"] = {
            key_name(key): average_precision(truth, ranked_by_truth(truth, found[key])) for key in (ONE_BOX, chosen)
        }
    results["instance_setting"] = key_name(chosen)
    for name in ("imagenet_val_227", "imagenet_val"):
        if (root := find_dataset(name, data)) is None:
            continue
        samples = [s for s in load_box_set(root) if len(s.boxes) > 1]
        sweep = imagenet_detection_sweep(loaded, samples, options)
        entry: dict[str, object] = {"photos": len(samples)}
        for key, boxes in sweep.found.items():
            if key == ONE_BOX or key[1] == chosen[1]:
                entry[key_name(key)] = {
                    "ap50": average_precision_ci(sweep.truth, boxes),
                    "corloc": interval(corloc(sweep.truth, boxes)),
                }
                if key != ONE_BOX:
                    entry[key_name(key)]["ap50_minus_one"] = average_precision_difference(
                        sweep.truth, boxes, sweep.found[ONE_BOX]
                    )
        results[f"{name}_several_objects"] = entry
    return results
