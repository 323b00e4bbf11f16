"""The report (``python -m evaluation --markdown``): every result table, generated from the records in
``evaluation/results/*.json``, written to ``evaluation/results/README.md``. A test checks that the file matches what
this module generates, so the tables cannot go stale. Each table names the record files it comes from and the model
(and torch / torchvision versions) that made them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import helpers

from .boxes_masks import BOX_RULE
from .detail import BASELINE, CANDIDATES
from .metrics import Interval, interval, paired_difference
from .records import RESULTS, load_all, write_atomically
from .refine import MaskKey
from .schema import (
    BoxesMasks,
    CRFReferenceRecord,
    CRFReferenceResults,
    DetailRecord,
    DetailResults,
    DetectionRecord,
    DetectionResults,
    Family,
    LayerScreenRecord,
    Record,
    RefineRecord,
    RefineResults,
    RunConfig,
    SizesRecord,
    SizesResults,
    TechniqueRecord,
)
from .sizes import ALL_PHOTOS, SIZE_BUCKETS, SIZES_BEFORE
from .speed import BenchmarkRecord, speed_table_markdown

#: The report's file, beside the records it is generated from.
REPORT = RESULTS / "README.md"
#: The experiment log (how each default was chosen), included verbatim when present.
CHOICES = RESULTS / "choices.md"
#: The commit that last held the code of the deleted techniques.
LOST_CODE_COMMIT = "d5e00e9"
#: The techniques that lost and whose code was deleted: (name, what it was, the record that keeps its numbers).
LOST_TECHNIQUES = (
    ('box rule "peak"', "the component holding the map's maximum", "dilated.json, every technique run"),
    ('box rule "union"', "the box around all components", "dilated.json, every technique run"),
    ('box rule "mass"', "the region holding a fraction of the map's mass", "dilated.json, every technique run"),
    ('box rule "otsu"', "Otsu's threshold of the map's histogram", "dilated.json, every technique run"),
    ("zoom-in second pass", "crop around the first box (50% margin), Grad-CAM again", "sizes_224.json"),
    ("refined box", "the box of the 2-label CRF mask of the detection's class", "sizes_224.json"),
    ('instance rules "components", "split"', "components of the map; split at valleys", "detection.json"),
)
#: Where the code of each deleted technique last lived, when not in :data:`LOST_CODE_COMMIT`'s ``tests/evaluate.py``.
OLDER_CODE = {'instance rules "components", "split"': "c9ff4e5: helpers.py (deleted by 1b68005)"}
#: Box rules in the order the box-rule table lists them (those a record holds; the deleted ones in older records).
BOX_RULE_ORDER = ("largest", "peak", "union", "mass", "otsu")
#: The budget (forward passes of the published classifier, ``detect`` top-5) the stored zoom and refined-box
#: decisions were made against.
DETECT_BUDGET_X_FORWARD = 3.0

#: The rows of the CRF reference table: (label, field of :class:`.records.CRFComparison`, signed).
CRF_REFERENCE_ROWS = (
    ("plain", "plain", False),
    ("this CRF (torch, permutohedral lattice)", "helpers_crf", False),
    ("`pydensecrf2`, full resolution", "pydensecrf2_full", False),
    ("`pydensecrf2` at the working size, upsampled", "pydensecrf2_working", False),
    ("this CRF - `pydensecrf2` full (paired)", "helpers_crf_minus_pydensecrf2_full", True),
    ("`pydensecrf2` working - full (paired)", "pydensecrf2_working_minus_pydensecrf2_full", True),
)
#: The seconds column of the CRF reference table: the rows timed (fields of :class:`.records.CRFTiming`).
CRF_REFERENCE_SECONDS = ("helpers_crf", "pydensecrf2_full", "pydensecrf2_working")


def ci_text(d: Interval, percent: bool = True, signed: bool = False) -> str:
    """An interval as text: ``67.9% [64.5%, 71.2%]`` (or 3 decimals; ``signed``: with a sign, for differences,
    ``+1.7% [+0.2%, +3.3%]``)."""
    form = ("+" if signed else "") + (".1%" if percent else ".3f")
    return f"{d.mean:{form}} [{d.low:{form}}, {d.high:{form}}]"


def ci_or_dash(d: Interval | None, percent: bool = True, signed: bool = False) -> str:
    """:func:`ci_text`, or "–" for a missing interval."""
    return "–" if d is None else ci_text(d, percent, signed)


def source_line(records: Sequence[Record]) -> str:
    """Which record files a table comes from and which model (torch, torchvision) made them: one line."""
    files = ", ".join(f"`{r.file}`" for r in records)
    by = "; ".join(f"model **{m}**, torch {t}, torchvision {v}" for m, t, v in sorted({r.made_by for r in records}))
    return f"From {files} ({by})."


def is_default(config: RunConfig) -> bool:
    """Whether a run's model and views are helpers' defaults (dilated, input sizes, flip)."""
    return (
        config.dilated == helpers.DEFAULT_DILATED
        and config.input_sizes == list(helpers.DEFAULT_INPUT_SIZES)
        and config.flip == helpers.DEFAULT_FLIP
    )


def values_difference(base: Sequence[float], new: Sequence[float]) -> Interval:
    """The paired difference new - base of per-item values (the same items), with its interval."""
    return interval(np.array(new, dtype=float) - np.array(base, dtype=float))


def summary_line(results: BoxesMasks) -> str:
    """A technique run's headline numbers in one line."""
    parts = []
    if results.imagenet_val_227 is not None:
        rule = results.imagenet_val_227.largest
        parts.append(f"{BOX_RULE}: CV GT-known {rule.gt_known_cv.mean:.1%} (t={rule.threshold})")
    if results.imagenet_val is not None:
        parts.append(f"test GT-known {results.imagenet_val.largest.gt_known.mean:.1%}")
    for name in ("pets_seg", "coco_seg_oracle", "coco_seg_top3"):
        if (masks := getattr(results, name)) is not None:
            parts.append(f"{name} {masks.at_threshold.mean:.3f}")
    return "; ".join(parts)


def technique_tables(techniques: Sequence[TechniqueRecord]) -> list[str]:
    """The technique table, the box-rule table (the default set-up's record) and the paired differences against
    plain, from the technique runs' records."""
    lines = [
        "| technique | dev GT-known, 5-fold CV (800) | dev MaxBoxAccV2 | test GT-known (60) | top-1 (dev) "
        "| Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | s/photo (dev boxes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    chosen = None
    for r in techniques:
        res = r.results
        name = f"**{r.config.technique}** (default)" if is_default(r.config) else r.config.technique
        dev, test = res.imagenet_val_227.largest, res.imagenet_val.largest
        lines.append(
            f"| {name} | {ci_text(dev.gt_known_cv)} | {dev.max_box_acc_v2:.1%} | {ci_text(test.gt_known)} "
            f"| {res.imagenet_val_227.top1_classification.mean:.1%} "
            f"| {ci_text(res.pets_seg.at_threshold, False)} "
            f"| {ci_text(res.coco_seg_oracle.at_threshold, False)} "
            f"| {ci_text(res.coco_seg_top3.at_threshold, False)} "
            f"| {res.imagenet_val_227.seconds_per_photo:.2f} |"
        )
        if is_default(r.config):
            chosen = r
    if chosen is not None:
        dev_rules, test_rules = chosen.results.imagenet_val_227.rules, chosen.results.imagenet_val.rules
        lines += [
            "",
            f"Box rules, default set-up (`{chosen.file}`):",
            "",
            "| box rule (default set-up) | dev GT-known, 5-fold CV | threshold | test GT-known |",
            "|---|---|---|---|",
        ]
        for name in (rule for rule in BOX_RULE_ORDER if rule in dev_rules):
            dev, test = dev_rules[name], test_rules[name]
            lines.append(f"| {name} | {ci_text(dev.gt_known_cv)} | {dev.threshold} | {ci_text(test.gt_known)} |")
    plain = next((r.results for r in techniques if r.config.technique == "plain"), None)
    if plain is None:
        return lines
    lines += [
        "",
        "| paired difference against plain | dev GT-known (800 photos, CV) | Pets IoU (26) | COCO mIoU oracle (257) |",
        "|---|---|---|---|",
    ]
    for r in techniques:
        if r.config.technique != "plain":
            res = r.results
            d = paired_difference(plain.imagenet_val_227.largest.cv_hits, res.imagenet_val_227.largest.cv_hits)
            pets = values_difference(plain.pets_seg.values, res.pets_seg.values)
            coco = values_difference(plain.coco_seg_oracle.values, res.coco_seg_oracle.values)
            lines.append(
                f"| {r.config.technique} | {ci_text(d, signed=True)} | {ci_text(pets, False, True)} "
                f"| {ci_text(coco, False, True)} |"
            )
    return lines


def detection_tables(det: DetectionResults) -> list[str]:
    """AP@0.5 and CorLoc tables of a ``--detection`` record's results."""
    t = det.instance_setting
    level = t.split()[-1]
    # the other rules at the chosen level, as far as the run recorded them (the deleted ones in older runs)
    others = [f"{r} {level}" for r in ("peaks", "components", "split") if f"{r} {level}" in det.coco_oracle.by_key]
    others = [o for o in others if o != t]
    names = {"components": "components", "split": "components split at valleys", "peaks": "one box per peak"}
    lines = [
        f"| AP@0.5 | one box per class | {names[t.split()[0]]} at {level} (chosen) | difference | "
        + " | ".join(f"{names[o.split()[0]]} at {level}" for o in others)
        + " |",
        "|---|---|---|---|" + "---|" * len(others),
    ]
    for label, entry in (
        ("COCO, oracle classes", det.coco_oracle),
        ("COCO, top-5", det.coco_top5),
        ("ImageNet dev, photos with several boxes", det.imagenet_val_227_several_objects),
        ("ImageNet test, photos with several boxes", det.imagenet_val_several_objects),
    ):
        if entry is not None:
            scores = entry.by_key
            difference = scores[t].ap50_minus_one
            lines.append(
                f"| {label} | {ci_text(scores['one'].ap50)} | {ci_text(scores[t].ap50)} "
                f"| {'' if difference is None else ci_text(difference, signed=True)} | "
                + " | ".join(ci_text(scores[o].ap50) for o in others)
                + " |"
            )
    lines += ["", "| CorLoc | one box per class | one box per instance |", "|---|---|---|"]
    for label, entry in (
        ("ImageNet dev, photos with several boxes", det.imagenet_val_227_several_objects),
        ("ImageNet test, photos with several boxes", det.imagenet_val_several_objects),
    ):
        if entry is not None:
            lines.append(
                f"| {label} ({entry.photos} photos) | {ci_text(entry.by_key['one'].corloc)} "
                f"| {ci_text(entry.by_key[t].corloc)} |"
            )
    return lines


def sizes_markdown(results: SizesResults) -> str:
    """The tables of a ``--sizes`` record's results: per set, GT-known by object size at the default threshold, the
    best threshold of each bucket and the oracle ceiling; for records that hold them (the deleted zoom pass and
    refined box), their paired differences against today's box and their decisions."""
    refined = results.refined_box_decision
    tau = refined.chosen_tau if refined is not None else None
    lines = []
    for name, s in results.sets.items():
        extra: list[tuple[str, dict[str, Interval | None]]] = []  # (header, {bucket: interval})
        if s.zoom is not None:
            extra.append(("zoom - today (paired)", s.zoom.difference_at_default))
        if s.refined_box is not None:
            extra.append((f"refined box at {tau} - today (paired)", s.refined_box.difference_at_default))
        if s.before is not None:
            before = results.before
            extra.append((f"before (`{before.file}`, at {before.default_threshold})", s.before.gt_known_by_size))
            extra.append(("after - before (paired)", s.before.difference_at_default))
        lines += [
            f"{name} ({s.role}, {s.photos} photos)",
            "",
            f"| object size | photos | GT-known at {results.default_threshold} (default) | best threshold: GT-known "
            f"| per-photo oracle |" + "".join(f" {header} |" for header, _ in extra),
            "|---|---|---|---|---|" + "---|" * len(extra),
        ]
        for bucket in (*SIZE_BUCKETS, ALL_PHOTOS):
            e = s.gt_known_by_size[bucket]
            if not e.photos:
                lines.append(f"| {bucket} | 0 | | | |" + " |" * len(extra))
                continue
            lines.append(
                f"| {bucket} | {e.photos} | {ci_text(e.gt_known)} "
                f"| {e.best_threshold}: {e.best_gt_known:.1%} | {ci_text(e.oracle)} |"
                + "".join(f" {ci_or_dash(d.get(bucket), signed='-' in h)} |" for h, d in extra)
            )
        lines.append("")
    for label, decision in (("Zoom pass", results.zoom_decision), ("Refined box", refined)):
        if decision is not None:
            lines.append(
                f"{label}: detect top-5 costs {decision.top5_x_forward:.1f} forward passes "
                f"(budget {DETECT_BUDGET_X_FORWARD:g}); wins on development photos: {decision.wins_on_dev}; "
                f"kept: {decision.kept}."
            )
    if refined is not None:
        lines.append(
            f"Refined box: tau {tau} chosen among {refined.taus} on the development sets pooled "
            f"({refined.pooled_dev_photos} pairs): refined - today "
            f"{ci_text(refined.pooled_dev_difference[ALL_PHOTOS], signed=True)}, large objects "
            f"{ci_or_dash(refined.pooled_dev_difference['large'], signed=True)}."
        )
    return "\n".join(lines).rstrip("\n")


def chosen_text(chosen: MaskKey) -> str:
    """A chosen mask key in words: ``"wb80 sxy0.08 ls128 at 0.25, specks < 0.02"``."""
    return f"{chosen.setting} at {chosen.threshold}" + (f", specks < {chosen.min_region}" if chosen.min_region else "")


def mask_families(results: RefineResults) -> list[tuple[str, str, Family]]:
    """The families a refinement record holds, in order: (label, name, family)."""
    labels = (("plain", "plain"), ("refined (CRF)", "refined"), ("refined, specks removed", "cleaned"))
    return [(label, name, getattr(results, name)) for label, name in labels if getattr(results, name) is not None]


def refine_markdown(results: RefineResults) -> str:
    """The table of a ``--refine`` record's results: cross-validated plain, refined and (when measured) cleaned
    masks, the paired differences, COCO top-3 at the keys chosen on all development items, the speckle and cost."""
    lines = [
        "| masks (5-fold CV, held-out) | pooled | Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | chosen on all |",
        "|---|---|---|---|---|---|",
    ]
    top3 = results.coco_seg_top3
    for label, name, entry in mask_families(results):
        lines.append(
            f"| {label} | {ci_text(entry.cv, False)} | {ci_or_dash(entry.cv_pets_seg, False)} "
            f"| {ci_or_dash(entry.cv_coco_seg_oracle, False)} "
            f"| {ci_or_dash(getattr(top3, name) if top3 else None, False)} | {chosen_text(entry.chosen)} |"
        )
    for new, base, diff in (
        ("refined", "plain", results.refined_minus_plain_cv),
        ("cleaned", "refined", results.cleaned_minus_refined_cv),
    ):
        if diff is None:
            continue
        lines.append(
            f"| {new} - {base} (paired) | {ci_text(diff.pooled, False, True)} "
            f"| {ci_or_dash(diff.pets_seg, False, True)} | {ci_or_dash(diff.coco_seg_oracle, False, True)} "
            f"| {ci_or_dash(getattr(top3, f'{new}_minus_{base}') if top3 else None, False, True)} | |"
        )
    folds = ", ".join(chosen_text(c) for c in results.refined.cv_choices)
    lines += ["", f"Refined choice per fold: {folds}."]
    for label, repeated in (
        ("refined - plain", results.repeated_cv),
        ("cleaned - refined", results.repeated_cv_cleaned_minus_refined),
    ):
        if repeated is not None:
            below = f", below it for {repeated.below_zero}" if repeated.below_zero is not None else ""
            lines.append(
                f"Repeated over {len(repeated.seeds)} fold seeds, {label}: the pooled gain is beyond its interval "
                f"for {repeated.above_zero} of them{below} (mean gain {repeated.mean:+.3f})."
            )
    if (sp := results.speckle) is not None:
        lines += [
            "",
            "| speckle of the refined masks | components per photo (all class masks) | worst share in islands < 1% |",
            "|---|---|---|",
        ]
        for label, entry in (
            ("refined (chosen)", sp.refined),
            ("cleaned key, before removal", sp.cleaned_before),
            ("cleaned (chosen)", sp.cleaned),
        ):
            lines.append(
                f"| development photos, {label} ({entry.photos}) | {entry.components:.1f} "
                f"| {entry.worst_small_share:.2%} |"
            )
        photo = sp.dog_and_cat
        for label, e in (("before", photo.before), (f"after removal < {photo.min_region}", photo.after)):
            lines.append(
                f"| dog_and_cat.png, top-3, {label} | {e.total_components} ({e.components}) "
                f"| {e.worst_small_share:.2%} |"
            )
    if (cost := results.cost) is not None:
        if sp is not None:
            lines.append("")  # end the speckle table
        detect = f"detect top-5 {cost.detect_top5:.2f}, " if cost.detect_top5 is not None else ""
        lines.append(
            f"Cost (this run, forward passes of the published classifier): {detect}segment top-3 plain "
            f"{cost.segment_plain:.2f}, refined {cost.segment_refined:.2f}."
        )
    return "\n".join(lines)


def paired_interval(base: str | Sequence[float] | None, new: str | Sequence[float] | None) -> Interval | None:
    """The paired difference new - base of two per-item records (hit strings or value lists) with its interval;
    None when they do not hold the same items."""
    if base is None or new is None or len(base) != len(new):
        return None
    return paired_difference(base, new) if isinstance(base, str) else values_difference(base, new)


def paired_or_dash(base: str | Sequence[float] | None, new: str | Sequence[float] | None) -> str:
    """:func:`paired_interval` as signed text (percent for hit strings), '–' when it is None."""
    return ci_or_dash(paired_interval(base, new), isinstance(base, str), signed=True)


#: The detail table's paired-difference columns: (header, the per-item record it reads in a detail run's results).
DETAIL_PAIRED: tuple[tuple[str, Callable[[DetailResults], str | list[float] | None]], ...] = (
    ("boxes dev (CV)", lambda r: r.boxes_masks.imagenet_val_227.largest.cv_hits),
    ("boxes test", lambda r: r.boxes_masks.imagenet_val.largest.hits),
    ("COCO pairs", lambda r: r.coco_pairs.hits),
    ("plain Pets (CV)", lambda r: r.refine.plain.held_out_pets_seg),
    ("plain COCO (CV)", lambda r: r.refine.plain.held_out_coco_seg_oracle),
    ("refined Pets (CV)", lambda r: r.refine.refined.held_out_pets_seg),
    ("refined COCO (CV)", lambda r: r.refine.refined.held_out_coco_seg_oracle),
    ("refined top-3", lambda r: r.refine.coco_seg_top3.values_refined),
)


def per_item(results: DetailResults, read: Callable[[DetailResults], object]) -> object:
    """What ``read`` reads in ``results``; None where the run has no such set (a missing set is None)."""
    try:
        return read(results)
    except AttributeError:  # a set the run did not measure: None has no fields
        return None


def ordered_details(records: Sequence[DetailRecord]) -> list[DetailRecord]:
    """Detail records in :data:`.detail.CANDIDATES` order (others last)."""
    order = {name: i for i, name in enumerate(CANDIDATES)}
    return sorted(records, key=lambda r: order.get(r.config.detail, len(order)))


def detail_tables(records: Sequence[DetailRecord]) -> list[str]:
    """The detail-size protocol's table (one row per candidate found, in :data:`.detail.CANDIDATES` order) and the
    paired differences against the baseline (:data:`.detail.BASELINE`, the 224 view) where the items match."""
    records = ordered_details(records)
    lines = [
        "| maps from | boxes dev GT-known (CV) | box t | test GT-known | COCO pairs GT-known | plain Pets (CV) "
        "| plain COCO (CV) | mask t | refined Pets (CV) | refined COCO (CV) | refined COCO top-3 | tau "
        "| detect top-5 x | segment top-3 x |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        res, name = r.results, r.config.detail
        dev, test = res.boxes_masks.imagenet_val_227.largest, res.boxes_masks.imagenet_val.largest
        plain, refined, top3 = res.refine.plain, res.refine.refined, res.refine.coco_seg_top3
        label = f"**{name}** (baseline)" if name == BASELINE else name
        if r.config.limit:
            label += f" (first {r.config.limit} photos)"
        lines.append(
            f"| {label} | {ci_text(dev.gt_known_cv)} | {dev.threshold} | {ci_text(test.gt_known)} "
            f"| {ci_or_dash(res.coco_pairs.gt_known if res.coco_pairs else None)} "
            f"| {ci_or_dash(plain.cv_pets_seg, False)} | {ci_or_dash(plain.cv_coco_seg_oracle, False)} "
            f"| {plain.chosen.threshold} | {ci_or_dash(refined.cv_pets_seg, False)} "
            f"| {ci_or_dash(refined.cv_coco_seg_oracle, False)} | {ci_or_dash(top3.refined if top3 else None, False)} "
            f"| {refined.chosen.threshold} | {res.cost.detect_top5:.2f} | {res.cost.segment_refined:.2f} |"
        )
    base = next((r for r in records if r.config.detail == BASELINE), None)
    if base is None:
        return lines
    lines += [
        "",
        f"Paired differences against the {BASELINE} view (same photos; '–' where the items differ):",
        "",
        "| maps from | " + " | ".join(h for h, _ in DETAIL_PAIRED) + " |",
        "|---|" + "---|" * len(DETAIL_PAIRED),
    ]
    for r in records:
        if r is not base:
            pairs = [(per_item(base.results, read), per_item(r.results, read)) for _, read in DETAIL_PAIRED]
            cells = [paired_or_dash(a, b) for a, b in pairs]
            lines.append(f"| {r.config.detail} | " + " | ".join(cells) + " |")
    return lines


def crf_text(settings: helpers.CRFSettings) -> str:
    """A CRF setting in words: bilateral weight and width, working size, speck removal."""
    specks = f"specks < {settings.min_region:g} removed" if settings.min_region else "no speck removal"
    return (
        f"bilateral weight {settings.bilateral_weight:g}, width {settings.bilateral_sxy:g}, working size "
        f"{settings.long_side} px, {specks}"
    )


def crf_reference_markdown(results: CRFReferenceResults) -> str:
    """The table of a ``evaluation/crf_reference.py`` record's results: each CRF at the defaults against the
    reference implementation, per set and pooled, with its seconds per photo (pooled)."""
    sets = [(label, block) for label, block in (
        ("Pets IoU", results.pets_seg), ("COCO mIoU oracle", results.coco_seg_oracle), ("pooled", results.pooled)
    ) if block is not None]  # fmt: skip
    seconds = results.seconds_per_photo["pooled"]
    lines = [
        "| at the defaults | " + " | ".join(label for label, _ in sets) + " | CRF s/photo |",
        "|---|" + "---|" * len(sets) + "---|",
    ]
    for label, name, signed in CRF_REFERENCE_ROWS:
        if getattr(sets[0][1], name) is None:
            continue
        cells = [ci_or_dash(getattr(block, name), False, signed) for _, block in sets]
        timed = getattr(seconds, name) if name in CRF_REFERENCE_SECONDS else None
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'' if timed is None else f'{timed:.3f}'} |")
    lines += [
        "",
        f"This CRF against the full-resolution reference: {results.pooled.helpers_crf_vs_pydensecrf2_full} "
        f"(pooled), at 1/{seconds.full_over_helpers:.1f} of its time.",
    ]
    return "\n".join(lines)


def protocol_markdown(record: Record) -> str:
    """The tables of a ``--sizes``, ``--refine`` or ``--detail`` record, else ""."""
    if isinstance(record, SizesRecord):
        return sizes_markdown(record.results)
    if isinstance(record, RefineRecord):
        return refine_markdown(record.results)
    if isinstance(record, DetailRecord):
        return "\n".join(detail_tables([record]))
    return ""


def lost_section() -> list[str]:
    """The deleted techniques, the record that keeps each one's numbers and the commit that last held their code."""
    lines = [
        "## Techniques that lost (code deleted)",
        "",
        "These lost (no win beyond the interval on the development photos, or over the cost budget) and the",
        "notebook does not re-run them, so their code was deleted. Their numbers stay in the records named below;",
        f"commit `{LOST_CODE_COMMIT}` is the last that holds their code",
        f"(`git show {LOST_CODE_COMMIT}:tests/evaluate.py`), unless the last column names another.",
        "",
        "| technique | what it was | numbers kept in `evaluation/results/` | code last in |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {what} | {where} | {OLDER_CODE.get(name, f'{LOST_CODE_COMMIT}: tests/evaluate.py')} |"
        for name, what, where in LOST_TECHNIQUES
    ]
    return lines


def layer_screen_table(screen: LayerScreenRecord) -> list[str]:
    """The layer screen: GT-known localization of the true class's box per map source and box rule, at the best
    threshold on the same photos (a screen, not cross-validated), and the top-1 of each view."""
    results, config = screen.results, screen.config
    lines = [
        f"A screen on {config.photos} development photos ({config.data}), thresholds chosen on the same photos "
        "(optimistic: the sources that pass it were then measured with cross-validated thresholds, above).",
        "",
        "| map source | what | " + " | ".join(f"{rule} (best threshold)" for rule in config.rules) + " |",
        "|---|---|" + "---|" * len(config.rules),
    ]
    for source, best in results.best.items():
        cells = " | ".join(f"{100 * best[rule].gt_known:.1f}% ({best[rule].threshold})" for rule in config.rules)
        lines.append(f"| {source} | {config.variants[source]} | {cells} |")
    top1 = ", ".join(f"{view} {100 * value:.1f}%" for view, value in results.top1.items())
    return [*lines, "", f"Top-1 classification of the views: {top1}."]


def markdown_report(folder: str | os.PathLike = RESULTS, choices: Path = CHOICES) -> str:
    """The whole report from the records in ``folder``: the technique, detection, refinement, CRF reference and
    object-size tables, each with its source line, then ``choices`` verbatim (when present) and the deleted
    techniques."""
    runs = list(load_all(folder).values())
    techniques = [r for r in runs if isinstance(r, TechniqueRecord)]
    lines = [
        "# Results",
        "",
        "Generated by `python -m evaluation --markdown` from the records `evaluation/results/*.json`; do not edit",
        "(a test checks that this file matches them). Intervals are 95% bootstrap intervals over photos (pairs for",
        "COCO); differences are paired. Development sets: `imagenet_val_227` (boxes), `pets_seg` and `coco_seg`",
        "(masks); `imagenet_val` (60 full-size photos) only reports.",
    ]
    if techniques:
        lines += ["", "## Boxes and masks by technique", "", source_line(techniques), "", *technique_tables(techniques)]
    if (detection := next((r for r in runs if isinstance(r, DetectionRecord)), None)) is not None:
        lines += ["", "## Several objects: AP@0.5 and CorLoc", "", source_line([detection]), ""]
        lines += detection_tables(detection.results)
    refines = {r.file: r for r in runs if isinstance(r, RefineRecord)}
    for file, title in (
        ("refine.json", "Masks that follow edges (dense CRF)"),
        ("refine_224.json", "Masks that follow edges, before (the 224 view)"),
    ):
        if file in refines:
            lines += ["", f"## {title}", "", source_line([refines[file]]), "", protocol_markdown(refines[file])]
    if (reference := next((r for r in runs if isinstance(r, CRFReferenceRecord)), None)) is not None:
        lines += ["", "## The CRF against the reference implementation", "", source_line([reference]), ""]
        lines += [crf_reference_markdown(reference.results)]
    if details := [r for r in runs if isinstance(r, DetailRecord)]:
        settings = sorted({crf_text(r.results.refine.setting) for r in details if r.results.refine.setting})
        lines += ["", "## Maps at the photo's own detail (classes at 224)", "", source_line(details), ""]
        lines += [
            "Boxes and plain masks as in the technique runs; refined masks with one CRF setting "
            f"({'; '.join(settings)}), its threshold chosen by CV; costs in forward passes of the published "
            "classifier (Chihuahua, one thread).",
            "",
            *detail_tables(details),
        ]
    sizes = {r.file: r for r in runs if isinstance(r, SizesRecord)}
    for file, title in (("sizes.json", "Boxes by object size"), (SIZES_BEFORE.name, "Boxes by object size, before")):
        if file in sizes:
            lines += ["", f"## {title}", "", source_line([sizes[file]]), "", protocol_markdown(sizes[file])]
    if (screen := next((r for r in runs if isinstance(r, LayerScreenRecord)), None)) is not None:
        lines += ["", "## Which maps give boxes: a screen of layers", "", source_line([screen]), ""]
        lines += layer_screen_table(screen)
    if (bench := next((r for r in runs if isinstance(r, BenchmarkRecord)), None)) is not None:
        lines += ["", "## Speed", "", speed_table_markdown(bench)]
    if Path(choices).is_file():
        lines += ["", Path(choices).read_text(encoding="utf-8").strip()]
    lines += ["", *lost_section()]
    return "\n".join(lines) + "\n"


def write_report(folder: str | os.PathLike = RESULTS, path: str | os.PathLike = REPORT) -> str:
    """:func:`markdown_report` of ``folder`` written to ``path`` (atomically) -> the text."""
    text = markdown_report(folder)
    write_atomically(path, text)
    return text
