"""The run records' schema: one dataclass per kind of record (:class:`Record` and its subclasses, one per protocol)
and the dataclasses of their configs and results, read from the JSON by :func:`.records.parse`.

A field reads the JSON key of its name, or the key in its ``metadata["json"]`` (a key that is no Python name, e.g.
``"detect top-5"``); a field with :data:`OTHER_KEYS` takes the keys no other field names (keys that are data, e.g.
the detection settings ``"one"``, ``"peaks 0.35"``). Optional fields (default None) are keys some records lack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import helpers

from .boxes_masks import BOX_RULE
from .metrics import Interval
from .refine import MaskKey

#: The metadata of a dataclass field ``dict[str, V]`` that takes every key no other field names.
OTHER_KEYS = {"other_keys": True}


# --------------------------------------------------------------------------------------------
# Shared: configs, the record, the boxes-and-masks protocol (technique runs, detail runs), cost
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A run's ``config``: its kind (``technique``), the model's last stage (``dilated``), the views (``input_sizes``,
    ``flip``) and ``limit`` (the first photos of each set only; None: all)."""

    technique: str
    dilated: bool
    input_sizes: list[int] | None = None
    flip: bool | None = None
    limit: int | None = None


@dataclass(frozen=True, kw_only=True)
class Record:
    """One run: its ``config`` and ``results`` (typed in each kind's subclass), how long it took, who made it (model,
    torch, torchvision, Python, threads, CPUs) and when; ``file``: the record's file name (set by the loader)."""

    config: RunConfig | dict[str, object]
    results: object
    seconds: float
    model: str
    date: str
    torch: str
    torchvision: str
    python: str
    threads: int
    cpu_count: int
    file: str = ""

    @property
    def made_by(self) -> tuple[str, str, str]:
        """(model, torch, torchvision): who made the numbers."""
        return (self.model, self.torch, self.torchvision)


@dataclass(frozen=True, kw_only=True)
class TechniqueConfig(RunConfig):
    """A technique run's ``config`` (:class:`.boxes_masks.Technique`); ``quick``: the first photos only."""

    quick: bool = False


@dataclass(frozen=True, kw_only=True)
class BoxRule:
    """One box rule on one box set: GT-known at every threshold, MaxBoxAcc (its threshold) and MaxBoxAccV2; at the
    ``threshold`` (chosen on the development set, else applied from it) GT-known, per-photo ``hits`` ("0101...") and
    top-1 localization; on a development set also the 5-fold CV score, each fold's threshold and held-out hits."""

    gt_known_by_threshold: dict[float, float]
    max_box_acc: float
    max_box_acc_threshold: float
    max_box_acc_v2: float
    threshold: float
    gt_known: Interval
    hits: str
    top1_localization: Interval
    gt_known_cv: Interval | None = None
    cv_thresholds: list[float] | None = None
    cv_hits: str | None = None


@dataclass(frozen=True, kw_only=True)
class BoxSet:
    """Boxes on one box set: top-1 classification, the median area of the largest ground-truth box (fraction of the
    photo), the time per photo and each box rule's :class:`BoxRule` (``largest``, detect's box; older records hold
    the deleted rules too)."""

    photos: int
    top1_classification: Interval
    median_largest_box_area: float
    seconds_per_photo: float
    rules: dict[str, BoxRule] = field(metadata=OTHER_KEYS)

    @property
    def largest(self) -> BoxRule:
        """The box rule measured, detect's box (:data:`.boxes_masks.BOX_RULE`)."""
        return self.rules[BOX_RULE]


@dataclass(frozen=True, kw_only=True)
class MaskSet:
    """Plain masks on one set: the mean at every threshold; at ``threshold`` (chosen by 5-fold CV for the pooled
    development items, applied from them elsewhere) the interval and the per-item values (IoU per photo or pair)."""

    items: int
    mean_by_threshold: dict[float, float]
    threshold: float
    at_threshold: Interval
    values: list[float]
    seconds_per_photo: float | None = None
    cv: Interval | None = None
    cv_thresholds: list[float] | None = None


@dataclass(frozen=True, kw_only=True)
class BoxesMasks:
    """The boxes-and-masks protocol's results (:func:`.boxes_masks.evaluate`), per set found."""

    imagenet_val_227: BoxSet | None = None
    imagenet_val: BoxSet | None = None
    pets_seg: MaskSet | None = None
    coco_seg_oracle: MaskSet | None = None
    coco_seg_top3: MaskSet | None = None
    masks_pooled: MaskSet | None = None


@dataclass(frozen=True, kw_only=True)
class Cost:
    """Seconds as multiples of one forward pass of the published classifier (:func:`.refine.segment_cost`)."""

    forward: float = field(metadata={"json": "forward (published)"})
    segment_plain: float = field(metadata={"json": "segment top-3, plain"})
    segment_refined: float = field(metadata={"json": "segment top-3, refined"})
    detect_top5: float | None = field(default=None, metadata={"json": "detect top-5"})


# --------------------------------------------------------------------------------------------
# The refinement protocol (refine.json; the detail runs' refine entry)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Family:
    """One family of mask keys chosen by 5-fold CV on the pooled development items: the held-out score (pooled and
    per set, with the per-item held-out values), each fold's key, the key chosen on all items, its in-sample score
    per set and the mean of every key per set (``"setting|threshold[|min_region]"``)."""

    cv: Interval
    cv_choices: list[MaskKey]
    chosen: MaskKey
    at_chosen: dict[str, Interval]
    mean_by_key: dict[str, dict[str, float]]
    cv_pets_seg: Interval | None = None
    cv_coco_seg_oracle: Interval | None = None
    held_out_pets_seg: list[float] | None = None
    held_out_coco_seg_oracle: list[float] | None = None


@dataclass(frozen=True, kw_only=True)
class SetDifference:
    """A paired CV difference between two families: pooled and per development set."""

    pooled: Interval
    pets_seg: Interval | None = None
    coco_seg_oracle: Interval | None = None


@dataclass(frozen=True, kw_only=True)
class RepeatedCV:
    """A paired CV difference once per fold seed: the intervals, how many lie above / below 0, the mean."""

    seeds: list[int]
    pooled: list[Interval]
    above_zero: int
    mean: float
    below_zero: int | None = None
    pets_seg: list[Interval] | None = None
    coco_seg_oracle: list[Interval] | None = None


@dataclass(frozen=True, kw_only=True)
class Top3:
    """COCO with the top-3 classes at each family's key chosen on all development items: the interval, the per-pair
    values and the paired differences."""

    plain: Interval | None = None
    refined: Interval | None = None
    cleaned: Interval | None = None
    values_plain: list[float] | None = None
    values_refined: list[float] | None = None
    values_cleaned: list[float] | None = None
    refined_minus_plain: Interval | None = None
    cleaned_minus_refined: Interval | None = None


@dataclass(frozen=True, kw_only=True)
class SpeckleSummary:
    """Mean over photos of the components of all class masks and of the worst mask's share in small islands."""

    photos: int
    components: float
    worst_small_share: float


@dataclass(frozen=True, kw_only=True)
class SpeckleEntry:
    """One label map's speckle, per class (ascending) and in total (:func:`.refine.speckle_entry`)."""

    classes: list[int]
    components: list[int]
    small_share: list[float]
    total_components: int
    worst_small_share: float


@dataclass(frozen=True, kw_only=True)
class PhotoSpeckle:
    """One photo's refined map before and after speck removal below ``min_region``."""

    before: SpeckleEntry
    after: SpeckleEntry
    min_region: float


@dataclass(frozen=True, kw_only=True)
class SpeckleResults:
    """The speckle of the development photos' refined maps at the chosen keys, and of the dog-and-cat photo."""

    refined: SpeckleSummary
    cleaned: SpeckleSummary
    cleaned_before: SpeckleSummary
    dog_and_cat: PhotoSpeckle


@dataclass(frozen=True, kw_only=True)
class RefineDecision:
    """What the refinement protocol decided: whether the CRF wins beyond the interval (fold seed 0, and over the fold
    seeds), whether speck removal is kept, the chosen CRF and thresholds, whether it fits the cost budget, and
    whether helpers' defaults were the choice when the run was made."""

    wins_beyond_interval: bool
    seeds_beyond_interval: str
    defaults_are_chosen: bool
    refined_default: bool | None = None
    within_budget: bool | None = None
    speck_removal_kept: bool | None = None
    chosen_crf: helpers.CRFSettings | None = None
    chosen_refined_threshold: float | None = None
    chosen_plain_threshold: float | None = None


@dataclass(frozen=True, kw_only=True)
class Seconds:
    """Seconds per photo of the plain ``segment`` and per refined label map."""

    segment: float
    refine: float


@dataclass(frozen=True, kw_only=True)
class RefineResults:
    """The refinement protocol's results (:func:`.refine.refine_results`, :func:`.refine.refine_run`): the families
    plain, refined (CRF) and cleaned (CRF, then speck removal), their paired differences (fold seed 0 and repeated),
    COCO top-3, the settings compared (``settings``; one ``setting`` in a detail run), the speckle, cost and decision.
    """

    items: dict[str, int]
    refined: Family
    refined_minus_plain_cv: SetDifference
    repeated_cv: RepeatedCV
    plain: Family | None = None
    cleaned: Family | None = None
    cleaned_minus_refined_cv: SetDifference | None = None
    repeated_cv_cleaned_minus_refined: RepeatedCV | None = None
    coco_seg_top3: Top3 | None = None
    settings: dict[str, dict[str, float]] | None = None
    setting: helpers.CRFSettings | None = None
    thresholds: list[float] | None = None
    speck_fractions: list[float] | None = None
    speckle: SpeckleResults | None = None
    cost: Cost | None = None
    decision: RefineDecision | None = None
    seconds: Seconds | None = None


# --------------------------------------------------------------------------------------------
# The detection, object-size, detail-size and CRF-reference protocols
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DetectionScores:
    """One key's AP@0.5 (its paired difference against one box per class) and CorLoc."""

    ap50: Interval
    ap50_minus_one: Interval | None = None
    corloc: Interval | None = None


@dataclass(frozen=True, kw_only=True)
class DetectionSet:
    """One set of the detection protocol: ``by_key`` {``"one"`` (one box per class) or an instance setting
    (``"peaks 0.35"``): scores}; the photos, time per photo and, on COCO with oracle classes, the AP ceiling of each
    key's boxes ranked by their IoU with the truth."""

    by_key: dict[str, DetectionScores] = field(metadata=OTHER_KEYS)
    photos: int | None = None
    seconds_per_photo: float | None = None
    ceiling: dict[str, float] | None = None


@dataclass(frozen=True, kw_only=True)
class DetectionResults:
    """The detection protocol's results (:func:`.detection.detection_results`): the instance setting chosen and each
    set's scores."""

    instance_setting: str
    coco_oracle: DetectionSet | None = None
    coco_top5: DetectionSet | None = None
    imagenet_val_227_several_objects: DetectionSet | None = None
    imagenet_val_several_objects: DetectionSet | None = None


@dataclass(frozen=True, kw_only=True)
class SizeBucket:
    """GT-known of one object-size bucket (:func:`.sizes.gt_known_by_size`); an empty bucket holds photos 0 only."""

    photos: int
    gt_known: Interval | None = None
    curve: dict[float, float] | None = None
    best_threshold: float | None = None
    best_gt_known: float | None = None
    oracle: Interval | None = None


@dataclass(frozen=True, kw_only=True)
class BeforeAfter:
    """The same photos in an earlier run (:func:`.sizes.before_after`): its hits and GT-known by bucket, and the
    paired difference after - before by bucket (None for an empty bucket)."""

    hits_at_default: str
    gt_known_by_size: dict[str, Interval | None]
    difference_at_default: dict[str, Interval | None]


@dataclass(frozen=True, kw_only=True)
class LostPass:
    """A deleted box pass of the object-size protocol (zoom, refined box): GT-known by bucket, the paired
    difference against the plain box."""

    gt_known_by_size: dict[str, SizeBucket]
    difference_at_default: dict[str, Interval | None]


@dataclass(frozen=True, kw_only=True)
class SizeSet:
    """One set of the object-size protocol (:func:`.sizes.size_set_results`); per photo its bucket initial and its
    hit at the default threshold; the comparison with the earlier run; the deleted passes in older records."""

    role: str
    photos: int
    bucket_counts: dict[str, int]
    top1_classification: Interval
    gt_known_by_size: dict[str, SizeBucket]
    buckets: str
    hits_at_default: str
    seconds_per_photo: float
    before: BeforeAfter | None = None
    zoom: LostPass | None = None
    refined_box: LostPass | None = None
    zoom_hits_at_default: str | None = None
    refined_box_hits: dict[float, str] | None = None


@dataclass(frozen=True, kw_only=True)
class LostDecision:
    """The decision on a deleted box pass: its cost (detect top-5, forward passes), whether it won on the development
    photos, fit the budget and was kept; for the refined box the tau chosen and the pooled development difference."""

    top5_x_forward: float
    wins_on_dev: bool
    within_budget: bool
    kept: bool
    chosen_tau: float | None = None
    taus: list[float] | None = None
    pooled_dev_photos: int | None = None
    pooled_dev_difference: dict[str, Interval | None] | None = None
    pooled_dev_gt_known_by_tau: dict[float, float] | None = None
    settings: dict[str, float] | None = None


@dataclass(frozen=True, kw_only=True)
class EarlierRecord:
    """The earlier record a sizes run is compared with: its file and default threshold."""

    file: str
    default_threshold: float


@dataclass(frozen=True, kw_only=True)
class SizesResults:
    """The object-size protocol's results (:func:`.sizes.sizes_results`): thresholds, buckets and each set."""

    thresholds: list[float]
    default_threshold: float
    size_buckets: list[str]
    size_edges: list[float]
    sets: dict[str, SizeSet]
    before: EarlierRecord | None = None
    zoom_decision: LostDecision | None = None
    refined_box_decision: LostDecision | None = None
    zoom_margin: float | None = None
    cost: dict[str, dict[str, float] | float] | None = None


@dataclass(frozen=True, kw_only=True)
class DetailConfig(RunConfig):
    """A detail run's ``config``: the candidate's name, its sizes (a rule in words when it follows the photo) and the
    size the classes come from."""

    detail: str
    class_size: int
    input_sizes: list[int] | str | None = None


@dataclass(frozen=True, kw_only=True)
class CocoPairs:
    """Box GT-known on the COCO (photo, class) pairs at the development-chosen threshold (:func:`.detail.
    coco_pairs_results`)."""

    pairs: int
    threshold: float | None = None
    gt_known: Interval | None = None
    gt_known_by_threshold: dict[float, float] | None = None
    hits: str | None = None
    buckets: str | None = None
    seconds_per_photo: float | None = None


@dataclass(frozen=True, kw_only=True)
class DetailResults:
    """One detail-size candidate's results (:func:`.detail.detail_results`)."""

    boxes_masks: BoxesMasks
    refine: RefineResults
    cost: Cost
    cost_photo_size: int
    thresholds: list[float]
    coco_pairs: CocoPairs | None = None


@dataclass(frozen=True, kw_only=True)
class CRFReferenceConfig(RunConfig):
    """The CRF reference run's ``config``: helpers' CRF settings and thresholds, the reference's version."""

    crf_settings: dict[str, float]
    plain_threshold: float
    refined_threshold: float
    pydensecrf2: str
    reference: str


@dataclass(frozen=True, kw_only=True)
class CRFComparison:
    """One set (or the pooled items) of the CRF reference run: each method's mean IoU, the paired differences and
    the verdict of this CRF against the full-resolution reference."""

    items: int
    plain: Interval
    helpers_crf: Interval
    pydensecrf2_full: Interval
    helpers_crf_minus_pydensecrf2_full: Interval
    helpers_crf_vs_pydensecrf2_full: str
    pydensecrf2_working: Interval | None = None
    helpers_crf_minus_plain: Interval | None = None
    pydensecrf2_full_minus_plain: Interval | None = None
    helpers_crf_minus_pydensecrf2_working: Interval | None = None
    pydensecrf2_working_minus_pydensecrf2_full: Interval | None = None


@dataclass(frozen=True, kw_only=True)
class CRFTiming:
    """Mean seconds per photo of each CRF, and the reference's over this CRF's."""

    photos: int
    helpers_crf: float
    pydensecrf2_full: float
    full_over_helpers: float
    pydensecrf2_working: float | None = None


@dataclass(frozen=True, kw_only=True)
class CRFReferenceResults:
    """The CRF reference run's results (``evaluation/crf_reference.py``)."""

    seconds_per_photo: dict[str, CRFTiming]
    pets_seg: CRFComparison | None = None
    coco_seg_oracle: CRFComparison | None = None
    pooled: CRFComparison | None = None


# --------------------------------------------------------------------------------------------
# The records, one type per kind (the kinds: :data:`.records.RECORD_TYPES`)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TechniqueRecord(Record):
    """A technique run (``python -m evaluation [--technique NAME]``)."""

    config: TechniqueConfig
    results: BoxesMasks


@dataclass(frozen=True, kw_only=True)
class DetectionRecord(Record):
    """The detection run at helpers' defaults (``--detection``)."""

    config: RunConfig
    results: DetectionResults


@dataclass(frozen=True, kw_only=True)
class SizesRecord(Record):
    """An object-size run (``--sizes``)."""

    config: RunConfig
    results: SizesResults


@dataclass(frozen=True, kw_only=True)
class RefineRecord(Record):
    """A refinement run (``--refine``)."""

    config: RunConfig
    results: RefineResults


@dataclass(frozen=True, kw_only=True)
class DetailRecord(Record):
    """A detail-size candidate's run (``--detail NAME``)."""

    config: DetailConfig
    results: DetailResults


@dataclass(frozen=True, kw_only=True)
class CRFReferenceRecord(Record):
    """The CRF reference run (``python -m evaluation.crf_reference``)."""

    config: CRFReferenceConfig
    results: CRFReferenceResults


@dataclass(frozen=True, kw_only=True)
class LayerScreenConfig(RunConfig):
    """The layer screen's set-up: its photos, the map sources (``variants``: name -> what) and box rules."""

    data: str
    photos: int
    classes: str
    threshold_choice: str
    variants: dict[str, str]
    rules: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class ScreenBest:
    """A source's best box threshold on the screened photos and its GT-known localization there."""

    gt_known: float
    threshold: float


@dataclass(frozen=True, kw_only=True)
class LayerScreenResults:
    """Per source and rule: GT-known at each threshold and at the best one; the top-1 of each view."""

    top1: dict[str, float]
    gt_known_by_threshold: dict[str, dict[str, dict[str, float]]]
    best: dict[str, dict[str, ScreenBest]]


@dataclass(frozen=True, kw_only=True)
class LayerScreenRecord(Record):
    """The screen of map sources for boxes (which layers and fusions give the best boxes; its code was deleted once
    the winner, the dilated last stage, was measured with cross-validated thresholds)."""

    config: LayerScreenConfig
    results: LayerScreenResults
