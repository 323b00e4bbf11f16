"""The detail-size protocol (``python -m evaluation --detail NAME`` -> ``evaluation/results/detail_<NAME>.json``): the
classes and probabilities from the plain 224 view, the maps (boxes and masks) from a finer view, every threshold
re-chosen for it. One candidate per run (one process each, so candidates can run in parallel): a fixed size of
:data:`DETAIL_SIZES` or a rule of :data:`ADAPTIVE_BOUNDS` that follows the photo.

Each run: the boxes-and-masks protocol (:func:`.boxes_masks.evaluate`), box GT-known on the COCO (photo, class)
pairs at the development-chosen box threshold, the refinement protocol restricted to one CRF setting
(:data:`DETAIL_CRF`, its mask threshold chosen by CV), and the cost of ``detect`` top-5 and ``segment`` top-3 on the
Chihuahua in forward passes of the published classifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

import helpers
from helpers import check_int

from .boxes_masks import BOX_RULE, THRESHOLDS, box_sweep, evaluate
from .data import ROOT, SHARED_DATA, CocoSet, find_dataset, load_coco, load_pets
from .metrics import gt_known_hits, hit_bits, interval
from .refine import (
    REFINE_BASE,
    MaskKey,
    plain_keys,
    refine_keys,
    refine_results,
    refine_sweep,
    segment_cost,
    setting_name,
)
from .running import CLASS_SIZE
from .sizes import coco_box_samples, size_buckets

#: The fixed detail sizes compared (the maps' input side; 224 is today's one view and the baseline).
DETAIL_SIZES = (224, 288, 320, 384, 448)
#: The rules that follow the photo: name -> (low, high): the photo's short side clamped to [low, high].
ADAPTIVE_BOUNDS: dict[str, tuple[int, int]] = {"photo320": (224, 320), "photo448": (224, 448)}
#: Every candidate's name, in the order the report lists them; the first is the baseline of the paired differences.
CANDIDATES = (*(str(size) for size in DETAIL_SIZES), *ADAPTIVE_BOUNDS)
BASELINE = CANDIDATES[0]
#: The one CRF setting of the refinement part: helpers' defaults without speck removal (the grid's base).
DETAIL_CRF = REFINE_BASE
DETAIL_CRF_NAME = setting_name(DETAIL_CRF)
#: The photo the cost is measured on.
COST_PHOTO = ROOT / "Chihuahua.jpg"


def adaptive_size(width: int, height: int, low: int, high: int) -> int:
    """The detail size of a ``width x height`` photo: its short side clamped to [``low``, ``high``] (a photo smaller
    than ``low`` is not upsampled beyond it for nothing; a large one stops at ``high``)."""
    width, height = check_int(width, "width"), check_int(height, "height")
    low, high = check_int(low, "low"), check_int(high, "high")
    if low > high:
        raise ValueError(f"low must be <= high, got [{low}, {high}]")
    return min(max(min(width, height), low), high)


@dataclass(frozen=True)
class DetailView:
    """One candidate: ``name``; a fixed ``size`` or ``bounds`` (low, high) of :func:`adaptive_size`."""

    name: str
    size: int | None = None
    bounds: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.size is None) == (self.bounds is None):
            raise ValueError(f"DetailView {self.name!r} needs exactly one of size and bounds")

    def sizes_for(self, photo: Image.Image) -> tuple[int, ...]:
        """``input_sizes`` for ``photo``: ``(size,)``, or ``(adaptive_size(...),)``."""
        if self.size is not None:
            return (self.size,)
        return (adaptive_size(photo.width, photo.height, *self.bounds),)

    def options(self) -> dict[str, object]:
        """Keyword options of detect/segment (:func:`.running.photo_options`): the sizes (a rule when adaptive), no
        flip."""
        return {"input_sizes": (self.size,) if self.size is not None else self.sizes_for, "flip": False}

    def config(self) -> dict[str, object]:
        """The run record's ``config``."""
        sizes = [self.size] if self.size is not None else f"short side clamped to [{self.bounds[0]}, {self.bounds[1]}]"
        return {
            "technique": "detail",
            "detail": self.name,
            "input_sizes": sizes,
            "class_size": CLASS_SIZE,
            "flip": False,
            "dilated": helpers.DEFAULT_DILATED,
        }

    def file_name(self) -> str:
        """``detail_<name>.json``."""
        return f"detail_{self.name}.json"


def detail_view(name: str) -> DetailView:
    """The candidate named ``name`` (one of :data:`CANDIDATES`)."""
    if name in ADAPTIVE_BOUNDS:
        return DetailView(name, bounds=ADAPTIVE_BOUNDS[name])
    if name in CANDIDATES:
        return DetailView(name, size=int(name))
    raise ValueError(f"name must be one of {list(CANDIDATES)}, got {name!r}")


def coco_pairs_results(
    loaded: helpers.LoadedModel, coco: CocoSet, options: Mapping[str, object], threshold: float
) -> dict[str, object]:
    """Box GT-known on the COCO (photo, class) pairs (:func:`.sizes.coco_box_samples`, oracle classes from the 224
    view) at the box ``threshold`` (chosen on the development photos), with the per-pair hits and size buckets."""
    samples = coco_box_samples(loaded, coco)
    if not samples:
        return {"pairs": 0}
    sweep = box_sweep(loaded, samples, options)
    gt = [s.boxes for s in samples]
    hits = {t: gt_known_hits(b, gt).numpy() for t, b in sweep.boxes.items()}
    return {
        "pairs": len(samples),
        "threshold": threshold,
        "gt_known": interval(hits[threshold]),
        "gt_known_by_threshold": {t: float(h.mean()) for t, h in hits.items()},
        "hits": hit_bits(hits[threshold]),
        "buckets": "".join(b[0] for b in size_buckets(samples)),
        "seconds_per_photo": sweep.seconds_per_photo,
    }


def detail_results(
    loaded: helpers.LoadedModel,
    published: helpers.LoadedModel,
    view: DetailView,
    data: Path = SHARED_DATA,
    limit: int | None = None,
) -> dict[str, object]:
    """One candidate's run (``limit``: the first photos of each set only, for trying things).

    The results, as the record's ``results`` holds them: :class:`.records.DetailResults` (the plain masks are the
    refine entry's plain family; ``boxes_masks`` holds the boxes only).
    """
    options = view.options()
    # Boxes only: the refine sweep below segments each mask photo once and scores the plain masks itself.
    results: dict[str, object] = {"boxes_masks": evaluate(loaded, options, data, limit=limit, masks=False)}
    dev_boxes = results["boxes_masks"].get("imagenet_val_227")
    box_threshold = dev_boxes[BOX_RULE]["threshold"] if dev_boxes else helpers.DEFAULT_BOX_THRESHOLD
    coco = None if (root := find_dataset("coco_seg", data)) is None else load_coco(root).head(limit)
    pets = [] if (root := find_dataset("pets_seg", data)) is None else load_pets(root)[:limit]
    if coco is not None:
        results["coco_pairs"] = coco_pairs_results(loaded, coco, options, box_threshold)
    families = {"plain": plain_keys(), "refined": refine_keys([DETAIL_CRF_NAME])}
    settings = {DETAIL_CRF_NAME: DETAIL_CRF}
    keys = [key for family in families.values() for key in family]
    dev = refine_sweep(loaded, pets, coco, True, keys, settings, options)
    refine = refine_results(dev.values, families=families)
    if coco is not None:
        chosen = list(dict.fromkeys(MaskKey(**refine[name]["chosen"]) for name in families))
        top3 = refine_sweep(loaded, [], coco, False, chosen, settings, options)
        refine = refine_results(dev.values, top3.values, families)
    refine["setting"] = dataclasses.asdict(DETAIL_CRF)
    refine["seconds"] = {"segment": dev.seconds_segment, "refine": dev.seconds_refine}
    results["refine"] = refine
    photo = helpers.load_image(COST_PHOTO)
    results["cost"] = segment_cost(loaded, published, photo, DETAIL_CRF, options)
    results["cost_photo_size"] = view.sizes_for(photo)[0]
    results["thresholds"] = list(THRESHOLDS)
    return results
