"""The report (``python -m evaluation --markdown``): every result table, generated from the records in
``evaluation/results/*.json``, written to ``evaluation/results/README.md``. A test checks that the file matches what
this module generates, so the tables cannot go stale. Each table names the record files it comes from and the model
(and torch / torchvision versions) that made them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

import helpers

from .boxes_masks import BOX_RULE
from .detail import BASELINE, CANDIDATES
from .metrics import bootstrap_ci, paired_difference
from .records import RESULTS, load_runs
from .sizes import ALL_PHOTOS, SIZE_BUCKETS, SIZES_BEFORE

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
#: The budget (forward passes of the published classifier) the stored zoom and refined-box decisions were made
#: against (``detect`` top-5, issue 15).
DETECT_BUDGET_X_FORWARD = 3.0

#: The rows of the CRF reference table: (label, key in the record's blocks, signed).
CRF_REFERENCE_ROWS = (
    ("plain", "plain", False),
    ("this CRF (torch, permutohedral lattice)", "helpers_crf", False),
    ("`pydensecrf2`, full resolution", "pydensecrf2_full", False),
    ("`pydensecrf2` at the working size, upsampled", "pydensecrf2_working", False),
    ("this CRF - `pydensecrf2` full (paired)", "helpers_crf_minus_pydensecrf2_full", True),
    ("`pydensecrf2` working - full (paired)", "pydensecrf2_working_minus_pydensecrf2_full", True),
)
#: The seconds column of the CRF reference table, per row key.
CRF_REFERENCE_SECONDS = ("helpers_crf", "pydensecrf2_full", "pydensecrf2_working")


def ci_text(d: Mapping[str, float], percent: bool = True, signed: bool = False) -> str:
    """A bootstrap interval ``{"mean", "low", "high"}`` as text: ``67.9% [64.5%, 71.2%]`` (or 3 decimals;
    ``signed``: with a sign, for differences, ``+1.7% [+0.2%, +3.3%]``)."""
    form = ("+" if signed else "") + (".1%" if percent else ".3f")
    return f"{d['mean']:{form}} [{d['low']:{form}}, {d['high']:{form}}]"


def _ci_or_dash(d: Mapping[str, float] | None, percent: bool = True, signed: bool = False) -> str:
    return "–" if d is None else ci_text(d, percent, signed)


def source_line(records: Sequence[Mapping[str, object]]) -> str:
    """Which record files a table comes from and which model (torch, torchvision) made them: one line."""
    files = ", ".join(f"`{r['file']}`" for r in records)
    made = sorted({(r["model"], r["torch"], r["torchvision"]) for r in records})
    by = "; ".join(f"model **{m}**, torch {t}, torchvision {v}" for m, t, v in made)
    return f"From {files} ({by})."


def _is_default(config: Mapping[str, object]) -> bool:
    return (
        config["dilated"] == helpers.DEFAULT_DILATED
        and list(config["input_sizes"]) == list(helpers.DEFAULT_INPUT_SIZES)
        and config["flip"] == helpers.DEFAULT_FLIP
    )


def technique_tables(techniques: Sequence[Mapping[str, object]]) -> list[str]:
    """The technique table, the box-rule table (the default set-up's record) and the paired differences against
    plain, from the technique runs' records."""
    lines = [
        "| technique | dev GT-known, 5-fold CV (800) | dev MaxBoxAccV2 | test GT-known (60) | top-1 (dev) "
        "| Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | s/photo (dev boxes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    chosen = None
    for r in techniques:
        res, c = r["results"], r["config"]
        default = _is_default(c)
        name = f"**{c['technique']}** (default)" if default else c["technique"]
        dev, test = res["imagenet_val_227"][BOX_RULE], res["imagenet_val"][BOX_RULE]
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
    if chosen is not None:
        res = chosen["results"]
        lines += [
            "",
            f"Box rules, default set-up (`{chosen['file']}`):",
            "",
            "| box rule (default set-up) | dev GT-known, 5-fold CV | threshold | test GT-known |",
            "|---|---|---|---|",
        ]
        for name in (rule for rule in BOX_RULE_ORDER if rule in res["imagenet_val_227"]):
            dev, test = res["imagenet_val_227"][name], res["imagenet_val"][name]
            lines.append(
                f"| {name} | {ci_text(dev['gt_known_cv'])} | {dev['threshold']} | {ci_text(test['gt_known'])} |"
            )
    plain = next((r for r in techniques if r["config"]["technique"] == "plain"), None)
    if plain is None:
        return lines
    plain = plain["results"]
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
                plain["imagenet_val_227"][BOX_RULE]["cv_hits"], r["results"]["imagenet_val_227"][BOX_RULE]["cv_hits"]
            )
            lines.append(
                f"| {r['config']['technique']} | {d['mean']:+.1%} [{d['low']:+.1%}, {d['high']:+.1%}] | "
                + " | ".join(f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in masks)
                + " |"
            )
    return lines


def detection_tables(det: Mapping[str, object]) -> list[str]:
    """AP@0.5 and CorLoc tables of a ``--detection`` record's ``results``."""
    t = det["instance_setting"]
    level = t.split()[-1]
    # the other rules at the chosen level, as far as the run recorded them (the deleted ones in older runs)
    others = [f"{r} {level}" for r in ("peaks", "components", "split") if f"{r} {level}" in det["coco_oracle"]]
    others = [o for o in others if o != t]
    names = {"components": "components", "split": "components split at valleys", "peaks": "one box per peak"}
    lines = [
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
    return lines


def sizes_markdown(results: Mapping[str, object]) -> str:
    """The tables of a ``--sizes`` record's ``results``: per set, GT-known by object size at the default threshold,
    the best threshold of each bucket and the oracle ceiling; for records that hold them (the deleted zoom pass
    and refined box), their paired differences against today's box and their decisions."""
    default = results["default_threshold"]
    refined = results.get("refined_box_decision", {})
    tau = refined.get("chosen_tau")
    lines = []
    for name, s in results["sets"].items():
        extra = []  # (header, {bucket: paired difference})
        if "zoom" in s:
            extra.append(("zoom - today (paired)", s["zoom"]["difference_at_default"]))
        if "refined_box" in s:
            extra.append((f"refined box at {tau} - today (paired)", s["refined_box"]["difference_at_default"]))
        if "before" in s:
            at = results["before"]["default_threshold"]
            extra.append((f"before (`{results['before']['file']}`, at {at})", s["before"]["gt_known_by_size"]))
            extra.append(("after - before (paired)", s["before"]["difference_at_default"]))
        lines += [
            f"{name} ({s['role']}, {s['photos']} photos)",
            "",
            f"| object size | photos | GT-known at {default} (default) | best threshold: GT-known "
            f"| per-photo oracle |" + "".join(f" {header} |" for header, _ in extra),
            "|---|---|---|---|---|" + "---|" * len(extra),
        ]
        for bucket in (*SIZE_BUCKETS, ALL_PHOTOS):
            e = s["gt_known_by_size"][bucket]
            if not e["photos"]:
                lines.append(f"| {bucket} | 0 | | | |" + " |" * len(extra))
                continue
            lines.append(
                f"| {bucket} | {e['photos']} | {ci_text(e['gt_known'])} "
                f"| {e['best_threshold']}: {e['best_gt_known']:.1%} | {ci_text(e['oracle'])} |"
                + "".join(f" {_ci_or_dash(d.get(bucket), signed='-' in h)} |" for h, d in extra)
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
    return "\n".join(lines).rstrip("\n")


def _chosen_text(chosen: Mapping[str, object]) -> str:
    removal = chosen.get("min_region", 0)
    return f"{chosen['setting']} at {chosen['threshold']}" + (f", specks < {removal}" if removal else "")


def refine_markdown(results: Mapping[str, object]) -> str:
    """The table of a ``--refine`` record's ``results``: cross-validated plain, refined and (when measured) cleaned
    masks, the paired differences, COCO top-3 at the keys chosen on all development items, the speckle and cost."""
    families = [
        (label, key)
        for label, key in (("plain", "plain"), ("refined (CRF)", "refined"), ("refined, specks removed", "cleaned"))
        if key in results
    ]
    lines = [
        "| masks (5-fold CV, held-out) | pooled | Pets IoU | COCO mIoU oracle | COCO mIoU top-3 | chosen on all |",
        "|---|---|---|---|---|---|",
    ]
    top3 = results.get("coco_seg_top3", {})
    for label, key in families:
        entry = results[key]
        lines.append(
            f"| {label} | {ci_text(entry['cv'], False)} | {_ci_or_dash(entry.get('cv_pets_seg'), False)} "
            f"| {_ci_or_dash(entry.get('cv_coco_seg_oracle'), False)} | {_ci_or_dash(top3.get(key), False)} "
            f"| {_chosen_text(entry['chosen'])} |"
        )
    for new, base in (("refined", "plain"), ("cleaned", "refined")):
        diff = results.get(f"{new}_minus_{base}_cv")
        if diff is None:
            continue
        lines.append(
            f"| {new} - {base} (paired) | {ci_text(diff['pooled'], False, True)} "
            f"| {_ci_or_dash(diff.get('pets_seg'), False, True)} "
            f"| {_ci_or_dash(diff.get('coco_seg_oracle'), False, True)} "
            f"| {_ci_or_dash(top3.get(f'{new}_minus_{base}'), False, True)} | |"
        )
    folds = ", ".join(_chosen_text(c) for c in results["refined"]["cv_choices"])
    lines += ["", f"Refined choice per fold: {folds}."]
    for label, key in (("refined - plain", "repeated_cv"), ("cleaned - refined", "repeated_cv_cleaned_minus_refined")):
        repeated = results.get(key)
        if repeated is not None:
            below = f", below it for {repeated['below_zero']}" if "below_zero" in repeated else ""
            lines.append(
                f"Repeated over {len(repeated['seeds'])} fold seeds, {label}: the pooled gain is beyond its interval "
                f"for {repeated['above_zero']} of them{below} (mean gain {repeated['mean']:+.3f})."
            )
    if "speckle" in results:
        sp = results["speckle"]
        lines += [
            "",
            "| speckle of the refined masks | components per photo (all class masks) | worst share in islands < 1% |",
            "|---|---|---|",
        ]
        for label, key in (
            ("refined (chosen)", "refined"),
            ("cleaned key, before removal", "cleaned_before"),
            ("cleaned (chosen)", "cleaned"),
        ):
            lines.append(
                f"| development photos, {label} ({sp[key]['photos']}) | {sp[key]['components']:.1f} "
                f"| {sp[key]['worst_small_share']:.2%} |"
            )
        photo = sp["dog_and_cat"]
        for label, key in (("before", "before"), (f"after removal < {photo['min_region']}", "after")):
            e = photo[key]
            lines.append(
                f"| dog_and_cat.png, top-3, {label} | {e['total_components']} ({e['components']}) "
                f"| {e['worst_small_share']:.2%} |"
            )
    if "cost" in results:
        cost = results["cost"]
        if "speckle" in results:
            lines.append("")  # end the speckle table
        detect = f"detect top-5 {cost['detect top-5']:.2f}, " if "detect top-5" in cost else ""
        lines.append(
            f"Cost (this run, forward passes of the published classifier): {detect}segment top-3 plain "
            f"{cost['segment top-3, plain']:.2f}, refined {cost['segment top-3, refined']:.2f}."
        )
    return "\n".join(lines)


def _paired_or_dash(base: object, new: object) -> str:
    """The paired difference new - base of two per-item records (hit strings or value lists), '–' when they do not
    hold the same items."""
    if base is None or new is None or len(base) != len(new):
        return "–"
    if isinstance(base, str):
        return ci_text(paired_difference(base, new), signed=True)
    d = bootstrap_ci(np.array(new, dtype=float) - np.array(base, dtype=float))
    return f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"


#: The detail table's paired-difference columns: (header, path to the per-item record in a detail run's results).
DETAIL_PAIRED = (
    ("boxes dev (CV)", ("boxes_masks", "imagenet_val_227", BOX_RULE, "cv_hits")),
    ("boxes test", ("boxes_masks", "imagenet_val", BOX_RULE, "hits")),
    ("COCO pairs", ("coco_pairs", "hits")),
    ("plain Pets (CV)", ("refine", "plain", "held_out_pets_seg")),
    ("plain COCO (CV)", ("refine", "plain", "held_out_coco_seg_oracle")),
    ("refined Pets (CV)", ("refine", "refined", "held_out_pets_seg")),
    ("refined COCO (CV)", ("refine", "refined", "held_out_coco_seg_oracle")),
    ("refined top-3", ("refine", "coco_seg_top3", "values_refined")),
)


def _get(results: Mapping[str, object], path: Sequence[str]) -> object:
    for key in path:
        if not isinstance(results, Mapping) or key not in results:
            return None
        results = results[key]
    return results


def detail_tables(records: Sequence[Mapping[str, object]]) -> list[str]:
    """The detail-size protocol's table (one row per candidate found, in :data:`.detail.CANDIDATES` order) and the
    paired differences against the baseline (:data:`.detail.BASELINE`, the 224 view) where the items match."""
    order = {name: i for i, name in enumerate(CANDIDATES)}
    records = sorted(records, key=lambda r: order.get(r["config"]["detail"], len(order)))
    lines = [
        "| maps from | boxes dev GT-known (CV) | box t | test GT-known | COCO pairs GT-known | plain Pets (CV) "
        "| plain COCO (CV) | mask t | refined Pets (CV) | refined COCO (CV) | refined COCO top-3 | tau "
        "| detect top-5 x | segment top-3 x |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        res, name = r["results"], r["config"]["detail"]
        boxes = res["boxes_masks"]
        dev, test = boxes["imagenet_val_227"][BOX_RULE], boxes["imagenet_val"][BOX_RULE]
        plain, refined = res["refine"]["plain"], res["refine"]["refined"]
        top3 = res["refine"].get("coco_seg_top3", {})
        label = f"**{name}** (baseline)" if name == BASELINE else name
        if r["config"].get("limit"):
            label += f" (first {r['config']['limit']} photos)"
        lines.append(
            f"| {label} | {ci_text(dev['gt_known_cv'])} | {dev['threshold']} | {ci_text(test['gt_known'])} "
            f"| {_ci_or_dash(_get(res, ('coco_pairs', 'gt_known')))} "
            f"| {_ci_or_dash(plain.get('cv_pets_seg'), False)} | {_ci_or_dash(plain.get('cv_coco_seg_oracle'), False)} "
            f"| {plain['chosen']['threshold']} | {_ci_or_dash(refined.get('cv_pets_seg'), False)} "
            f"| {_ci_or_dash(refined.get('cv_coco_seg_oracle'), False)} | {_ci_or_dash(top3.get('refined'), False)} "
            f"| {refined['chosen']['threshold']} | {res['cost']['detect top-5']:.2f} "
            f"| {res['cost']['segment top-3, refined']:.2f} |"
        )
    base = next((r for r in records if r["config"]["detail"] == BASELINE), None)
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
        if r is base:
            continue
        cells = []
        for _, path in DETAIL_PAIRED:
            a, b = _get(base["results"], path), _get(r["results"], path)
            cells.append(_paired_or_dash(a, b))
        lines.append(f"| {r['config']['detail']} | " + " | ".join(cells) + " |")
    return lines


def crf_reference_markdown(results: Mapping[str, object]) -> str:
    """The table of a ``evaluation/crf_reference.py`` record's ``results``: each CRF at the defaults against the
    reference implementation, per set and pooled, with its seconds per photo (pooled)."""
    sets = [name for name in ("pets_seg", "coco_seg_oracle", "pooled") if name in results]
    labels = {"pets_seg": "Pets IoU", "coco_seg_oracle": "COCO mIoU oracle", "pooled": "pooled"}
    seconds = results["seconds_per_photo"]["pooled"]
    lines = [
        "| at the defaults | " + " | ".join(labels[s] for s in sets) + " | CRF s/photo |",
        "|---|" + "---|" * len(sets) + "---|",
    ]
    for label, key, signed in CRF_REFERENCE_ROWS:
        if key not in results[sets[0]]:
            continue
        cells = [_ci_or_dash(results[s].get(key), False, signed) for s in sets]
        time_cell = f"{seconds[key]:.3f}" if key in CRF_REFERENCE_SECONDS and key in seconds else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {time_cell} |")
    lines += [
        "",
        f"This CRF against the full-resolution reference: {results['pooled']['helpers_crf_vs_pydensecrf2_full']} "
        f"(pooled), at 1/{seconds['full_over_helpers']:.1f} of its time.",
    ]
    return "\n".join(lines)


def protocol_markdown(record: Mapping[str, object]) -> str:
    """The tables of a ``--sizes``, ``--refine`` or ``--detail`` record (by its ``config["technique"]``), else ""."""
    technique = record.get("config", {}).get("technique")
    if technique == "sizes":
        return sizes_markdown(record["results"])
    if technique == "refine":
        return refine_markdown(record["results"])
    if technique == "detail":
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


def markdown_report(folder: str | os.PathLike = RESULTS, choices: Path = CHOICES) -> str:
    """The whole report from the records in ``folder``: the technique, detection, refinement, CRF reference and
    object-size tables, each with its source line, then ``choices`` verbatim (when present) and the deleted
    techniques."""
    runs = load_runs(folder)
    by_technique = {r["config"].get("technique"): r for r in runs}
    techniques = [r for r in runs if "imagenet_val_227" in r["results"]]
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
    if (detection := next((r for r in runs if "instance_setting" in r["results"]), None)) is not None:
        lines += ["", "## Several objects: AP@0.5 and CorLoc", "", source_line([detection]), ""]
        lines += detection_tables(detection["results"])
    refines = {r["file"]: r for r in runs if r["config"].get("technique") == "refine"}
    for file, title in (
        ("refine.json", "Masks that follow edges (dense CRF)"),
        ("refine_224.json", "Masks that follow edges, before (the 224 view)"),
    ):
        if file in refines:
            lines += ["", f"## {title}", "", source_line([refines[file]]), "", protocol_markdown(refines[file])]
    if (reference := by_technique.get("crf reference")) is not None:
        lines += ["", "## The CRF against the reference implementation", "", source_line([reference]), ""]
        lines += [crf_reference_markdown(reference["results"])]
    if details := [r for r in runs if r["config"].get("technique") == "detail"]:
        lines += ["", "## Maps at the photo's own detail (classes at 224)", "", source_line(details), ""]
        lines += [
            "Boxes and plain masks as in the technique runs; refined masks with one CRF setting (issue 15's), its",
            "threshold chosen by CV; costs in forward passes of the published classifier (Chihuahua, one thread).",
            "",
            *detail_tables(details),
        ]
    sizes = {r["file"]: r for r in runs if r["config"].get("technique") == "sizes"}
    for file, title in (("sizes.json", "Boxes by object size"), (SIZES_BEFORE.name, "Boxes by object size, before")):
        if file in sizes:
            lines += ["", f"## {title}", "", source_line([sizes[file]]), "", protocol_markdown(sizes[file])]
    if Path(choices).is_file():
        lines += ["", Path(choices).read_text(encoding="utf-8").strip()]
    lines += ["", *lost_section()]
    return "\n".join(lines) + "\n"


def write_report(folder: str | os.PathLike = RESULTS, path: str | os.PathLike = REPORT) -> str:
    """:func:`markdown_report` of ``folder`` written to ``path`` -> the text."""
    text = markdown_report(folder)
    Path(path).write_text(text, encoding="utf-8")
    return text
