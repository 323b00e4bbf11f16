"""The object-size protocol (``python -m evaluation --sizes`` -> ``evaluation/results/sizes.json``): GT-known of
``detect``'s box (the defaults) by the size of the largest ground-truth box, with each bucket's best threshold and
the per-photo oracle ceiling.

``evaluation/results/sizes_224.json`` also holds two box passes that lost against ``detect``'s box, a zoom-in second
pass and the box of the CRF's mask; the report lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

import helpers
from helpers import check_fraction

from .boxes_masks import THRESHOLDS, box_sweep
from .data import SHARED_DATA, BoxSample, CocoSet, find_dataset, load_box_set, load_coco
from .metrics import (
    _check_same_length,
    _per_photo_array,
    _per_threshold_matrix,
    best_key,
    gt_known_hits,
    hit_bits,
    interval,
    largest_box_fraction,
    oracle_classes,
)
from .records import RESULTS, read
from .running import predict
from .schema import SizesRecord

#: Names of the object-size buckets, smallest first.
SIZE_BUCKETS = ("small", "medium", "large")
#: Bucket edges (fractions of the photo's area): a photo whose largest ground-truth box covers ``f`` of it
#: is ``small`` for f < 0.1, ``medium`` for 0.1 <= f < 0.4 and ``large`` for f >= 0.4.
SIZE_EDGES = (0.1, 0.4)
#: The key of the whole set beside the buckets in :func:`gt_known_by_size` and :func:`paired_by_size`.
ALL_PHOTOS = "all"
#: The record of the boxes by size with the 224 view: the "before" of :func:`sizes_results`' paired differences.
SIZES_BEFORE = RESULTS / "sizes_224.json"
#: The sets measured, with their role: thresholds are never chosen on the test set.
SIZE_SETS = {
    "imagenet_val_227": "development (squashed to 227x227)",
    "imagenet_val": "test (full size; report only)",
    "coco_seg_oracle": "development (full size; (photo, COCO class) pairs, oracle ImageNet class)",
}


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
    best = best_key(curve)
    return {
        "photos": n,
        "gt_known": interval(matrix[thresholds.index(default_threshold)]),
        "curve": curve,
        "best_threshold": best,
        "best_gt_known": curve[best],
        "oracle": interval(matrix.max(axis=0)),  # a photo counts if any threshold hits
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
        name: interval(diff[names == name]) if (names == name).any() else None for name in SIZE_BUCKETS
    }
    out[ALL_PHOTOS] = interval(diff)
    return out


@dataclass(frozen=True)
class SizeSweep:
    """GT-known hits of ``detect``'s box (the defaults) on a box set: ``hits`` {threshold: bool ``[N]``} over
    :data:`THRESHOLDS`; ``top1``: whether the true class is ranked first, bool ``[N]``; the time per photo."""

    hits: dict[float, np.ndarray]
    top1: np.ndarray
    seconds_per_photo: float


def size_sweep(loaded: helpers.LoadedModel, samples: Sequence[BoxSample]) -> SizeSweep:
    """:func:`.boxes_masks.box_sweep` at helpers' defaults, scored by GT-known per photo and threshold."""
    sweep = box_sweep(loaded, samples, {})
    gt = [s.boxes for s in samples]
    hits = {t: gt_known_hits(boxes, gt).numpy() for t, boxes in sweep.boxes.items()}
    return SizeSweep(hits, np.array(sweep.top1, dtype=bool), sweep.seconds_per_photo)


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


def size_set_results(sweep: SizeSweep, buckets: np.ndarray) -> dict[str, object]:
    """One set of :func:`sizes_results`: GT-known by size at the default threshold (``helpers.DEFAULT_BOX_THRESHOLD``)
    with each bucket's curve, best threshold and oracle ceiling; per photo its bucket and its hit at the default."""
    default = helpers.DEFAULT_BOX_THRESHOLD
    return {
        "photos": len(buckets),
        "bucket_counts": {b: int((buckets == b).sum()) for b in SIZE_BUCKETS},
        "top1_classification": interval(sweep.top1),
        "gt_known_by_size": gt_known_by_size(sweep.hits, buckets, default),
        "buckets": "".join(b[0] for b in buckets),  # s / m / l per photo, in the set's order
        "hits_at_default": hit_bits(sweep.hits[default]),
        "seconds_per_photo": sweep.seconds_per_photo,
    }


def before_after(
    before_buckets: str, before_hits: str, after_hits: Sequence[bool] | np.ndarray, buckets: np.ndarray
) -> dict[str, object] | None:
    """A set's paired comparison with an earlier run of the same photos in the same order (that run's bucket
    initials per photo ``before_buckets``, "sml...", and its hits at its default threshold ``before_hits``,
    "0101..."; a run on the first photos only compares with the first of the earlier ones): the earlier GT-known by
    bucket and the difference after - before per bucket (:func:`paired_by_size`). None when the photos' buckets do
    not match (another set)."""
    n = len(buckets)
    letters = "".join(b[0] for b in buckets)
    if len(before_buckets) < n or before_buckets[:n] != letters:
        return None
    base = np.array([c == "1" for c in before_hits[:n]])
    return {
        "hits_at_default": before_hits[:n],
        "gt_known_by_size": {
            name: interval(base[buckets == name]) if (buckets == name).any() else None for name in SIZE_BUCKETS
        }
        | {ALL_PHOTOS: interval(base)},
        "difference_at_default": paired_by_size(base, after_hits, buckets),
    }


def load_before(path: str | os.PathLike = SIZES_BEFORE) -> SizesRecord | None:
    """The earlier sizes record at ``path``, or None when there is none."""
    path = Path(path)
    return read(path) if path.is_file() else None


def sizes_results(
    loaded: helpers.LoadedModel,
    data: Path = SHARED_DATA,
    before: SizesRecord | None = None,
    limit: int | None = None,
) -> dict[str, object]:
    """Boxes by object size on the sets of :data:`SIZE_SETS` found (:func:`find_dataset`; ``coco_seg_oracle`` is
    ``coco_seg`` as (photo, COCO class) pairs with the oracle ImageNet class, :func:`coco_box_samples`). Buckets by
    the largest ground-truth box: small < 0.1 <= medium < 0.4 <= large (fraction of the photo). Each set is compared
    with the same photos of ``before`` (default: the record :data:`SIZES_BEFORE`, when present).

    The results, as the record's ``results`` holds them: :class:`.records.SizesResults`. ``limit``: the first photos
    of each set (COCO: of its photos) only, for trying things.
    """
    before = load_before() if before is None else before
    results: dict[str, object] = {
        "thresholds": list(THRESHOLDS),
        "default_threshold": helpers.DEFAULT_BOX_THRESHOLD,
        "size_buckets": list(SIZE_BUCKETS),
        "size_edges": list(SIZE_EDGES),
        "sets": {},
    }
    if before is not None:
        results["before"] = {"file": before.file, "default_threshold": before.results.default_threshold}
    for name, role in SIZE_SETS.items():
        if name == "coco_seg_oracle":
            root = find_dataset("coco_seg", data)
            samples = None if root is None else coco_box_samples(loaded, load_coco(root).head(limit))
        else:
            root = find_dataset(name, data)
            samples = None if root is None else load_box_set(root)[:limit]
        if samples:
            sweep, buckets = size_sweep(loaded, samples), size_buckets(samples)
            entry = size_set_results(sweep, buckets) | {"role": role}
            earlier = None if before is None else before.results.sets.get(name)
            if earlier is not None:
                hits = sweep.hits[helpers.DEFAULT_BOX_THRESHOLD]
                compared = before_after(earlier.buckets, earlier.hits_at_default, hits, buckets)
                if compared is not None:
                    entry["before"] = compared
            results["sets"][name] = entry
    return results
