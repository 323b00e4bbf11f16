"""The notebook's view of the records (its section "How good is it?"): each function prints one table or draws one
figure from the typed records (:func:`.records.load_all`), labelled with the model that made them; the live checks
with the model loaded now print beside them. The full tables are :mod:`.report`'s (``evaluation/results/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

import helpers
from helpers import Box

from .data import BoxSample
from .detail import BASELINE
from .metrics import Interval, paired_difference
from .refine import BUDGET_X_FORWARD
from .report import DETAIL_PAIRED, ci_text, ordered_details, paired_interval, per_item
from .schema import (
    CRFReferenceRecord,
    DetailRecord,
    DetectionRecord,
    Record,
    RefineRecord,
    SizesRecord,
    TechniqueRecord,
)
from .sizes import ALL_PHOTOS
from .speed import BenchmarkRecord, budget_lines

#: The paired differences against the 224 view the notebook shows: (header, percent, the report's column).
DETAIL_DIFFERENCES = (
    ("boxes dev (CV)", True, "boxes dev (CV)"),
    ("COCO pairs", True, "COCO pairs"),
    ("plain Pets", False, "plain Pets (CV)"),
    ("plain COCO", False, "plain COCO (CV)"),
    ("refined Pets", False, "refined Pets (CV)"),
    ("refined COCO", False, "refined COCO (CV)"),
)
#: The colour of each object-size bucket in the figures.
BUCKET_COLORS = {"small": "tab:red", "medium": "tab:orange", "large": "tab:blue", ALL_PHOTOS: "black"}


def _or_dash(d: Interval | None, percent: bool = True, signed: bool = False) -> str:
    return "-" if d is None else ci_text(d, percent, signed)


def provenance(runs: Iterable[Record], model_now: str) -> None:
    """Which models (torch, torchvision) made the stored records, how to measure the model loaded now, and a note
    when the records are another model's."""
    runs = [r for r in runs if isinstance(r, Record)]  # the protocol runs (the benchmark names its models itself)
    made = sorted({f"{r.model} (torch {r.torch}, torchvision {r.torchvision})" for r in runs})
    print(f"stored results (evaluation/results/*.json) made with: {'; '.join(made)}")
    print(f"to measure the model loaded now: python -m evaluation --model {model_now} --out DIR")
    if {r.model for r in runs} != {model_now}:
        print(f"note: the model loaded now is {model_now}; the stored numbers below are not its numbers")


def detail_runs(runs: Iterable[Record]) -> dict[str, DetailRecord]:
    """The detail-size records by candidate name, in :data:`.detail.CANDIDATES` order."""
    return {r.config.detail: r for r in ordered_details([r for r in runs if isinstance(r, DetailRecord)])}


def default_detail(runs: Iterable[Record]) -> DetailRecord:
    """The detail record of helpers' default view (``DEFAULT_INPUT_SIZES``)."""
    for r in detail_runs(runs).values():
        if r.config.input_sizes == list(helpers.DEFAULT_INPUT_SIZES):
            return r
    raise FileNotFoundError(
        f"no evaluation/results/detail_*.json for the default input_sizes {helpers.DEFAULT_INPUT_SIZES}: "
        "run python -m evaluation --detail NAME"
    )


def _mark(name: str, chosen: str) -> str:
    return f"{'*' if name == chosen else ' '} {name}"


def detail_tables(runs: Iterable[Record]) -> None:
    """Boxes and masks of every detail-size candidate (``*``: the default), with their thresholds and costs."""
    runs = list(runs)
    detail, best = detail_runs(runs), default_detail(runs)
    chosen, model = best.config.detail, best.model
    print(
        f"\nboxes ({model}){'':<4}{'dev GT-known (CV)':>24}{'t':>6}{'test GT-known':>24}{'COCO pairs GT-known':>24}"
        f"{'dev top-1':>10}{'detect x':>10}"
    )
    for name, r in detail.items():
        boxes = r.results.boxes_masks
        dev, test = boxes.imagenet_val_227.largest, boxes.imagenet_val.largest
        pairs = r.results.coco_pairs.gt_known if r.results.coco_pairs else None
        print(
            f"{_mark(name, chosen):<22}{ci_text(dev.gt_known_cv):>24}{dev.threshold:>6}{ci_text(test.gt_known):>24}"
            f"{_or_dash(pairs):>24}{boxes.imagenet_val_227.top1_classification.mean:>10.1%}"
            f"{r.results.cost.detect_top5:>10.1f}"
        )
    print(
        f"\nmasks, CV ({model}){'':<1}{'plain Pets':>22}{'plain COCO':>22}{'t':>6}{'refined Pets':>22}"
        f"{'refined COCO':>22}{'refined top-3':>22}{'tau':>6}{'segment x':>10}"
    )
    for name, r in detail.items():
        plain, refined, top3 = r.results.refine.plain, r.results.refine.refined, r.results.refine.coco_seg_top3
        print(
            f"{_mark(name, chosen):<22}{ci_text(plain.cv_pets_seg, False):>22}"
            f"{ci_text(plain.cv_coco_seg_oracle, False):>22}{plain.chosen.threshold:>6}"
            f"{ci_text(refined.cv_pets_seg, False):>22}{ci_text(refined.cv_coco_seg_oracle, False):>22}"
            f"{_or_dash(top3.refined if top3 else None, False):>22}{refined.chosen.threshold:>6}"
            f"{r.results.cost.segment_refined:>10.1f}"
        )
    limited = [name for name, r in detail.items() if r.config.limit]
    if limited:
        print(f"\n(runs on the first photos of each set only: {', '.join(limited)})")


def detail_differences(runs: Iterable[Record]) -> None:
    """Each candidate against the 224 view on the same development items (paired), whether the default wins or
    loses beyond the interval, its cost against the budget and its thresholds against helpers' defaults."""
    runs = list(runs)
    detail, best = detail_runs(runs), default_detail(runs)
    chosen = best.config.detail
    columns = [(header, percent, dict(DETAIL_PAIRED)[column]) for header, percent, column in DETAIL_DIFFERENCES]
    if BASELINE in detail:
        base = detail[BASELINE].results
        print(
            f"paired differences against the 224 view, development photos ({best.model}; '-' where the items differ):"
        )
        print(f"{'':<12}" + "".join(f"{header:>26}" for header, _, _ in columns))
        rows = {
            name: {
                header: paired_interval(per_item(base, read), per_item(r.results, read)) for header, _, read in columns
            }
            for name, r in detail.items()
            if name != BASELINE
        }
        for name, row in rows.items():
            cells = [_or_dash(row[header], percent, True) for header, percent, _ in columns]
            print(f"{_mark(name, chosen):<12}" + "".join(f"{cell:>26}" for cell in cells))
        if chosen in rows:
            wins = [header for header, d in rows[chosen].items() if d is not None and d.low > 0]
            losses = [header for header, d in rows[chosen].items() if d is not None and d.high < 0]
            print(
                f"\nthe default ({chosen}) against 224: wins beyond the interval on {wins}; loses beyond the interval "
                f"on {losses or 'none'}"
            )
    cost = best.results.cost
    print(
        f"cost of the default in this run (detect top-5, segment top-3 with this protocol's CRF): "
        f"{cost.detect_top5:.1f} and {cost.segment_refined:.1f} forward passes; within {BUDGET_X_FORWARD:g} and "
        f"{BUDGET_X_FORWARD:g}: {cost.detect_top5 <= BUDGET_X_FORWARD and cost.segment_refined <= BUDGET_X_FORWARD} "
        "(one timing on a shared machine; the budget is checked by evaluation/benchmark.py)"
    )
    box_t = best.results.boxes_masks.imagenet_val_227.largest.threshold
    mask_t = best.results.refine.plain.chosen.threshold
    same = box_t == helpers.DEFAULT_BOX_THRESHOLD and mask_t == helpers.DEFAULT_MASK_THRESHOLD
    print(
        f"thresholds chosen for the default view: boxes {box_t}, plain masks {mask_t}; helpers' DEFAULT_BOX_THRESHOLD "
        f"= {helpers.DEFAULT_BOX_THRESHOLD}, DEFAULT_MASK_THRESHOLD = {helpers.DEFAULT_MASK_THRESHOLD} (the same: "
        f"{same})"
    )


def plain_curve(mean_by_key: Mapping[str, float]) -> dict[float, float]:
    """The plain family's mean by key (``"plain|0.25"``) as {threshold: mean}."""
    return {float(key.split("|")[1]): mean for key, mean in mean_by_key.items()}


def plot_detail_curves(runs: Iterable[Record]) -> Figure:
    """GT-known against the box threshold (development and test photos) and the plain masks' mean IoU against the
    mask threshold (Pets, COCO oracle), of the 224 view (dashed) and the default detail view."""
    runs = list(runs)
    detail, best = detail_runs(runs), default_detail(runs)
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for name, style in ((BASELINE, "o--"), (best.config.detail, "o-")):
        if name not in detail:
            continue
        results = detail[name].results
        for box_set, color, label in (
            (results.boxes_masks.imagenet_val_227, "tab:blue", "dev (800)"),
            (results.boxes_masks.imagenet_val, "tab:orange", "test (60)"),
        ):
            curve = box_set.largest.gt_known_by_threshold
            axes[0].plot(
                list(curve), [100 * v for v in curve.values()], style, color=color, ms=3, label=f"{name}, {label}"
            )
        plain = results.refine.plain.mean_by_key
        for set_name, color, label in (
            ("pets_seg", "tab:green", "Pets"),
            ("coco_seg_oracle", "tab:red", "COCO oracle"),
        ):
            curve = plain_curve(plain[set_name])
            axes[1].plot(list(curve), list(curve.values()), style, color=color, ms=3, label=f"{name}, {label}")
    axes[0].axvline(helpers.DEFAULT_BOX_THRESHOLD, color="gray", ls=":")
    axes[1].axvline(helpers.DEFAULT_MASK_THRESHOLD, color="gray", ls=":")
    axes[0].set(
        xlabel="box threshold (fraction of the map's maximum)",
        ylabel="GT-known localization (%)",
        title=f"Boxes: 224 view (dashed) and detail view {best.config.detail} ({best.model})",
    )
    axes[1].set(xlabel="mask threshold (fraction of each CAM's maximum)", ylabel="mean IoU", title="Plain masks")
    for ax in axes:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    plt.tight_layout()
    return figure


def box_areas(runs: Iterable[Record]) -> None:
    """The median area of the largest ground-truth box, development and test photos."""
    boxes = default_detail(runs).results.boxes_masks
    print(
        f"median area of the largest ground-truth box: {boxes.imagenet_val_227.median_largest_box_area:.0%} of the "
        f"photo (development), {boxes.imagenet_val.median_largest_box_area:.0%} (test)"
    )


def technique_table(runs: Iterable[Record]) -> None:
    """The technique runs (classes and maps from the same views) and dilated against plain (paired)."""
    techniques = {r.config.technique: r for r in runs if isinstance(r, TechniqueRecord)}
    print(
        f"{'technique (classes and maps from the same views)':<50}{'dev GT-known (CV)':>24}{'top-1':>8}"
        f"{'Pets IoU':>10}{'COCO oracle':>13}  model"
    )
    for name, r in techniques.items():
        res = r.results
        print(
            f"  {name:<48}{ci_text(res.imagenet_val_227.largest.gt_known_cv):>24}"
            f"{res.imagenet_val_227.top1_classification.mean:>8.1%}{res.pets_seg.at_threshold.mean:>10.3f}"
            f"{res.coco_seg_oracle.at_threshold.mean:>13.3f}  {r.model}"
        )
    plain, dilated = techniques["plain"], techniques["dilated"]
    gain = paired_difference(
        plain.results.imagenet_val_227.largest.cv_hits, dilated.results.imagenet_val_227.largest.cv_hits
    )
    print(
        f"\n'dilated' against 'plain' on the same 800 development photos: GT-known {ci_text(gain, signed=True)} "
        f"(paired; {dilated.model}); dilated is the default of load_model: {helpers.DEFAULT_DILATED}"
    )


def live_check(runs: Iterable[Record], model_now: str, live_hits: Sequence[bool]) -> None:
    """GT-known on the test photos now (``live_hits``, per photo, the defaults), against the stored default detail
    run."""
    best = default_detail(runs)
    stored = best.results.boxes_masks.imagenet_val.largest
    print(
        f"live ({model_now}, maps from {helpers.DEFAULT_INPUT_SIZES}): {int(sum(live_hits))} of {len(live_hits)} test "
        f"photos localised (GT-known); stored run ({best.model}, detail {best.config.detail}, threshold "
        f"{stored.threshold}): {stored.hits.count('1')} of {len(stored.hits)}"
    )


def plot_cases(samples: Sequence[BoxSample], boxes: Sequence[Box | None], categories: Sequence[str]) -> Figure:
    """The three best and three worst boxes (IoU with the ground truth) of ``samples``: ground truth in lime, the
    box in white."""
    ious = [helpers.best_iou(box, s.boxes) for box, s in zip(boxes, samples, strict=True)]
    order = np.argsort(ious, kind="stable")
    figure, axes = plt.subplots(2, 3, figsize=(11, 6))
    for ax, i in zip(axes.ravel(), list(order[::-1][:3]) + list(order[:3]), strict=True):
        s, box = samples[i], boxes[i]
        ax.imshow(helpers.draw_boxes(s.photo, s.boxes, colors="lime", width=3))
        if box is not None:
            helpers.draw_box_outline(ax, box)
        ax.set_title(f"{categories[s.class_index].split(',')[0]}: IoU {ious[i]:.2f}", fontsize=9)
        ax.axis("off")
    plt.tight_layout()
    return figure


def misses(samples: Sequence[BoxSample], boxes: Sequence[Box | None]) -> None:
    """How many boxes miss IoU 0.5, and how many of those photos hold several ground-truth objects."""
    fails = [s for box, s in zip(boxes, samples, strict=True) if helpers.best_iou(box, s.boxes) < 0.5]
    print(
        f"{len(fails)} of {len(samples)} test photos miss IoU 0.5; {sum(len(s.boxes) > 1 for s in fails)} of them "
        "hold several ground-truth objects (see 'Several objects' below)"
    )


def refine_tables(record: RefineRecord) -> None:
    """The refinement protocol: the families' CV scores and paired differences, the decision, the speckle."""
    results, model = record.results, record.model
    top3 = results.coco_seg_top3
    rows = [
        (label, family, getattr(top3, name) if top3 else None)
        for label, name in (
            ("plain masks", "plain"),
            ("refined (CRF)", "refined"),
            ("cleaned (CRF, specks removed)", "cleaned"),
        )
        if (family := getattr(results, name)) is not None
    ]
    print(f"mean IoU, 5-fold CV ({model}, maps from {record.config.input_sizes})")
    print(f"{'':<32}{'Pets':>24}{'COCO oracle':>24}{'both':>24}{'COCO top-3':>24}   chosen on all")
    for label, family, t3 in rows:
        key = family.chosen
        specks = f", specks < {key.min_region}" if key.min_region else ""
        print(
            f"{label:<32}{ci_text(family.cv_pets_seg, False):>24}{ci_text(family.cv_coco_seg_oracle, False):>24}"
            f"{ci_text(family.cv, False):>24}{_or_dash(t3, False):>24}   {key.setting} at {key.threshold}{specks}"
        )
    for label, d in (
        ("refined - plain (paired)", results.refined_minus_plain_cv),
        ("cleaned - refined (paired)", results.cleaned_minus_refined_cv),
    ):
        if d is not None:
            print(
                f"{label:<32}{ci_text(d.pets_seg, False, True):>24}{ci_text(d.coco_seg_oracle, False, True):>24}"
                f"{ci_text(d.pooled, False, True):>24}"
            )
    decision, crf = results.decision, results.decision.chosen_crf
    print(
        f"\nchosen CRF: bilateral weight {crf.bilateral_weight:g}, width {crf.bilateral_sxy:g}, working size "
        f"{crf.long_side} px, min_region {crf.min_region:g}, mask threshold {decision.chosen_refined_threshold}"
    )
    now = helpers.CRFSettings() == crf and decision.chosen_refined_threshold == helpers.DEFAULT_REFINED_MASK_THRESHOLD
    print(
        f"helpers' defaults are this choice: {now} (the record's defaults_are_chosen, at the time of the run: "
        f"{decision.defaults_are_chosen})"
    )
    print(
        f"refinement wins beyond the interval: {decision.wins_beyond_interval} (in {decision.seeds_beyond_interval} "
        f"splits into folds); speck removal kept: {decision.speck_removal_kept}"
    )
    print(
        f"segment top-3 costs {results.cost.segment_refined:.1f} forward passes refined, "
        f"{results.cost.segment_plain:.1f} plain (budget {BUDGET_X_FORWARD:g}): within the budget: "
        f"{decision.within_budget}"
    )
    speck = results.speckle
    print(
        f"\nspeckle of the refined masks ({model}): components per development photo (all class masks), worst share "
        "of a mask in islands < 1% of it"
    )
    for label, entry in (
        ("refined", speck.refined),
        ("cleaned, before removal", speck.cleaned_before),
        ("cleaned", speck.cleaned),
    ):
        print(f"  {label:<26}{entry.components:>7.1f}{entry.worst_small_share:>9.2%}   ({entry.photos} photos)")
    photo = speck.dog_and_cat
    print(
        f"  dog_and_cat.png, top-3: {photo.before.total_components} components before, "
        f"{photo.after.total_components} after removal < {photo.min_region}; worst share "
        f"{photo.before.worst_small_share:.1%} -> {photo.after.worst_small_share:.1%}"
    )


def crf_reference(record: CRFReferenceRecord) -> None:
    """The CRF at the earlier default against ``pydensecrf2`` at full resolution, per set, and their time."""
    results = record.results
    print(
        "\nthe earlier default CRF against pydensecrf2 (full resolution, same unaries, kernels and iterations; "
        f"{record.model}):"
    )
    for label, r in (("Pets", results.pets_seg), ("COCO oracle", results.coco_seg_oracle)):
        difference = ci_text(r.helpers_crf_minus_pydensecrf2_full, False, True)
        print(
            f"  {label:<12} this CRF {ci_text(r.helpers_crf, False)}, pydensecrf2 {ci_text(r.pydensecrf2_full, False)},"
            f" difference {difference} (paired): {r.helpers_crf_vs_pydensecrf2_full}"
        )
    print(f"  pydensecrf2 takes {results.seconds_per_photo['pooled'].full_over_helpers:.0f}x as long per photo")


def plot_sizes(record: SizesRecord) -> Figure:
    """GT-known against the box threshold per object-size bucket, development and test photos, with each bucket's
    oracle ceiling (dotted) and the default threshold (grey)."""
    results = record.results
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, (set_name, role) in zip(axes, (("imagenet_val_227", "development"), ("imagenet_val", "test")), strict=True):
        entry = results.sets[set_name]
        for bucket in (*results.size_buckets, ALL_PHOTOS):
            e = entry.gt_known_by_size[bucket]
            if not e.photos:
                continue
            style = "o--" if bucket == ALL_PHOTOS else "o-"
            color = BUCKET_COLORS[bucket]
            label = f"{bucket} ({e.photos} photos)"
            ax.plot(list(e.curve), [100 * v for v in e.curve.values()], style, color=color, ms=3, label=label)
            ax.axhline(100 * e.oracle.mean, color=color, ls=":", lw=1)
        ax.axvline(results.default_threshold, color="gray", lw=1)
        ax.set(
            title=f"{role} photos ({entry.photos}), {record.model}",
            xlabel="box threshold (fraction of the map's maximum)",
        )
    axes[0].set_ylabel("GT-known localization (%)")
    title = "largest object\n(dotted: oracle ceiling,\ngrey: the default)"
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title=title, title_fontsize=8)
    plt.tight_layout()
    return figure


def sizes_table(record: SizesRecord) -> None:
    """GT-known by object size, before (the 224 view) and after (the default view) on the same photos, paired."""
    results = record.results
    print(
        f"GT-known by object size ({record.model}; after: maps from {record.config.input_sizes} at "
        f"{results.default_threshold}; before: {results.before.file}, the 224 view at "
        f"{results.before.default_threshold})"
    )
    any_loss = False
    for set_name in ("imagenet_val_227", "imagenet_val", "coco_seg_oracle"):
        entry = results.sets.get(set_name)
        if entry is None:
            continue
        print(f"{set_name} ({entry.role}):")
        for bucket in (*results.size_buckets, ALL_PHOTOS):
            e = entry.gt_known_by_size[bucket]
            if not e.photos:
                continue
            d = entry.before.difference_at_default[bucket]
            any_loss |= d.high < 0
            print(
                f"  {bucket:<7}{e.photos:>4} photos: before {ci_text(entry.before.gt_known_by_size[bucket]):<24} "
                f"after {ci_text(e.gt_known):<24} after - before {ci_text(d, signed=True):<26} "
                f"oracle {e.oracle.mean:.1%}"
            )
    print(f"\na size bucket loses beyond its interval: {any_loss}")
    dev = results.sets["imagenet_val_227"].gt_known_by_size
    print(
        f"One threshold cannot fit every object: on the development photos large objects peak at "
        f"{dev['large'].best_threshold} and small ones at {dev['small'].best_threshold}; a threshold chosen per photo "
        f"would reach {dev[ALL_PHOTOS].oracle.mean:.0%}, against {dev[ALL_PHOTOS].gt_known.mean:.0%} at the one "
        "default."
    )


def lost_box_passes(record: SizesRecord) -> None:
    """The zoom-in second pass and the box of the refined mask, measured with the 224 view (``sizes_224.json``)."""
    results, model = record.results, record.model
    zoom = results.zoom_decision
    zoom_dev = results.sets["imagenet_val_227"].zoom.difference_at_default[ALL_PHOTOS]
    print(
        f"zoom-in second pass (crop around the first box, Grad-CAM again; {model}): GT-known "
        f"{ci_text(zoom_dev, signed=True)} on the 800 development photos; wins on the development photos: "
        f"{zoom.wins_on_dev}; detect top-5 costs {zoom.top5_x_forward:.0f} forward passes: kept {zoom.kept}"
    )
    refined = results.refined_box_decision
    print(
        f"box of the refined mask (tau {refined.chosen_tau}; {model}): GT-known "
        f"{ci_text(refined.pooled_dev_difference[ALL_PHOTOS], signed=True)} on the development photos and COCO pairs "
        f"together; wins: {refined.wins_on_dev}; detect top-5 costs {refined.top5_x_forward:.0f} forward passes: "
        f"kept {refined.kept}"
    )


def headline(runs: Iterable[Record], model_now: str) -> None:
    """The default view's GT-known, development (cross-validated) and test photos, to set beside published ones."""
    best = default_detail(runs)
    boxes = best.results.boxes_masks
    print(
        f"this notebook (detail {best.config.detail}, {best.model}): development photos "
        f"{boxes.imagenet_val_227.largest.gt_known_cv.mean:.1%} (cross-validated), test photos "
        f"{boxes.imagenet_val.largest.gt_known.mean:.1%}"
    )
    if best.model != model_now:
        print(
            f"(stored numbers of {best.model}; the model loaded now, {model_now}, is measured by "
            f"python -m evaluation --model {model_now} --out DIR)"
        )


def detection_tables(record: DetectionRecord) -> None:
    """AP@0.5 and CorLoc: one box per class against one box per peak at each level, the chosen level's paired gain on
    COCO (oracle classes) and the ceiling of the same boxes ranked by their IoU with the truth."""
    results = record.results
    chosen = results.instance_setting
    levels = sorted(key for key in results.coco_oracle.by_key if key.startswith("peaks "))
    columns = [("one box per class", "one")] + [
        (f"one box per peak, {key.split()[-1]}" + (" *" if key == chosen else ""), key) for key in levels
    ]
    rows = [
        ("COCO, oracle classes", results.coco_oracle),
        ("COCO, top-5 classes", results.coco_top5),
        ("ImageNet dev, photos with several boxes", results.imagenet_val_227_several_objects),
        ("ImageNet test, photos with several boxes", results.imagenet_val_several_objects),
    ]
    print(
        f"instance boxes: '{chosen}' (chosen by AP on COCO, oracle classes); stored run of {record.model}, "
        f"made {record.date[:10]}\n"
    )
    for title, measure, shown in (("AP@0.5", "ap50", rows), ("CorLoc", "corloc", rows[2:])):
        if measure == "corloc":
            print()
        print(f"{title:<42}" + "".join(f"{name:>31}" for name, _ in columns))
        for label, entry in shown:
            if entry is not None:
                cells = [getattr(entry.by_key[k], measure) if k in entry.by_key else None for _, k in columns]
                print(f"{label:<42}" + "".join(f"{_or_dash(cell):>31}" for cell in cells))
    print("* the default level (DEFAULT_INSTANCE_THRESHOLD, a fraction of the peak's own height)")
    coco = results.coco_oracle
    gain = coco.by_key[chosen].ap50_minus_one
    verdict = "beyond the noise" if gain.low > 0 else "inside the noise"
    print(
        f"\nOn COCO (oracle classes) one box per peak changes AP from {coco.by_key['one'].ap50.mean:.1%} to "
        f"{coco.by_key[chosen].ap50.mean:.1%}: {ci_text(gain, signed=True)} (paired), {verdict}."
    )
    print(
        f"Ceiling of the same boxes ranked by their IoU with the truth: {coco.ceiling[chosen]:.1%} "
        f"(one box per class: {coco.ceiling['one']:.1%}): no score ranks these boxes better, so going further takes "
        "better boxes, and half of the COCO objects here cover less than 1.4 x 1.4 cells of the 224 view's 14 x 14 map."
    )


def budget(record: BenchmarkRecord) -> None:
    """The cost of ``detect`` and ``segment`` against the budget of forward passes, from the stored benchmark run
    (:mod:`.speed`), with the machine that ran it."""
    m = record.machine
    print(f"budget: {record.budget:g} forward passes of the classifier as published; measured {record.date[:10]} on "
          f"{m.cpu_count} logical cores, {m.threads} torch thread(s){', GPU ' + m.gpu if m.gpu else ''} "
          "(python -m evaluation.benchmark)")
    print("\n".join(budget_lines(record)))
