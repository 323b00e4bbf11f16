"""The refinement protocol (``python -m evaluation --refine`` -> ``evaluation/results/refine.json``): helpers' dense
CRF against the plain masks, its settings (weight, width, working size), its mask threshold and the removal of its
specks (``helpers.remove_specks``) chosen by cross-validation; the speckle of the masks before and after."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

import helpers

from .boxes_masks import THRESHOLDS, mask_items
from .data import ROOT, SHARED_DATA, TEST_DATA, CocoSet, PetsPhoto, find_dataset, load_coco, load_pets
from .metrics import Speckle, best_key, interval, kfold_choice, speckle
from .running import forward, photo_options, relabel
from .speed import median_seconds

#: The CRF the grid varies: helpers' defaults without speck removal (speck removal is chosen on its own, over
#: :data:`SPECK_FRACTIONS`).
REFINE_BASE = dataclasses.replace(helpers.CRFSettings(), min_region=0.0)


def setting_name(settings: helpers.CRFSettings) -> str:
    """The name of a grid setting in the records: ``"wb80 sxy0.08 ls128"`` (bilateral weight, width, working size)."""
    return f"wb{settings.bilateral_weight:g} sxy{settings.bilateral_sxy:g} ls{settings.long_side}"


#: The CRF settings compared, over :data:`REFINE_BASE`: bilateral weight 80 / 20 / 40 at width 0.08 of the long side
#: times the working size (long side 128 / 192 / 256 px). On ties the first in this order wins (the cheaper working
#: size first). Weights 5 / 10 and width 0.16 lost in every fold of the grid at the 224 view
#: (evaluation/results/refine_224.json), so they are not re-run: the grid's cost grows with the working size's square.
REFINE_GRID: dict[str, helpers.CRFSettings] = {
    setting_name(settings): settings
    for settings in (
        dataclasses.replace(REFINE_BASE, bilateral_weight=w, bilateral_sxy=0.08, long_side=ls)
        for ls in (128, 192, 256)
        for w in (80.0, 20.0, 40.0)
    )
}
#: Fold seeds of the repeated cross-validation that shows how much the verdict depends on one split into folds.
REFINE_SEEDS = tuple(range(10))
#: Mask thresholds tried with the CRF (its unary's tau: the CAM level where a class's score is one half).
REFINE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(3, 10))
#: Speck removal tried on every refined map (``helpers.remove_specks``'s ``min_fraction``; 0: none, the refined
#: family); the fractions above 0 are the cleaned family.
SPECK_FRACTIONS = (0.0, 0.005, 0.01, 0.02)
#: The key of the plain masks (:func:`.running.relabel`) in the protocol's {key: values}.
PLAIN = "plain"
#: The most forward passes of the published classifier ``detect`` top-5 and ``segment`` top-3 may each cost.
BUDGET_X_FORWARD = 6.0
#: The sets whose items choose the settings, pooled in this order.
DEV_SETS = ("pets_seg", "coco_seg_oracle")
#: The families of keys, each chosen by cross-validation, and the paired differences reported (new, base).
FAMILIES = ("plain", "refined", "cleaned")
DIFFERENCES = (("refined", "plain"), ("cleaned", "refined"))
#: The photo whose refined masks' speckle is reported (notebook 2.6), top-3 classes.
SPECKLE_PHOTO = TEST_DATA / "dog_and_cat.png"


class MaskKey(NamedTuple):
    """A protocol key: ``setting`` (:data:`PLAIN` or a :data:`REFINE_GRID` name), the mask ``threshold`` and the
    speck removal's ``min_region`` (0: none)."""

    setting: str
    threshold: float
    min_region: float = 0.0


@dataclass(frozen=True)
class RefineSweep:
    """:func:`refine_sweep`'s values: ``values`` {set: {key: per-item values}}; ``specks`` {key: one
    :class:`.metrics.Speckle` per photo} (refined keys, when measured); ``seconds_segment``: the plain ``segment``
    per photo; ``seconds_refine``: one refined label map."""

    values: dict[str, dict[MaskKey, list[float]]]
    specks: dict[MaskKey, list[Speckle]]
    seconds_segment: float
    seconds_refine: float


class FamilyChoice(NamedTuple):
    """One family of keys chosen by :func:`_family_results`: its record entry, the held-out value per pooled item
    ``[N]`` and the key chosen on all items."""

    entry: dict[str, object]
    held_out: np.ndarray
    chosen: MaskKey


def refine_keys(
    settings: Sequence[str] | None = None,
    thresholds: Sequence[float] = REFINE_THRESHOLDS,
    fractions: Sequence[float] = (0.0,),
) -> list[MaskKey]:
    """Every refined (setting, threshold, speck fraction) key: ``settings`` (default :data:`REFINE_GRID`'s names)
    in order, then thresholds ascending, then the fractions."""
    names = list(REFINE_GRID) if settings is None else list(settings)
    return [MaskKey(name, t, f) for name in names for t in thresholds for f in fractions]


def cleaned_keys(settings: Sequence[str] | None = None) -> list[MaskKey]:
    """The refined keys with speck removal: :func:`refine_keys` at the fractions of :data:`SPECK_FRACTIONS` above 0."""
    return refine_keys(settings, fractions=[f for f in SPECK_FRACTIONS if f > 0])


def plain_keys() -> list[MaskKey]:
    """The plain masks at every threshold of :data:`THRESHOLDS`."""
    return [MaskKey(PLAIN, t) for t in THRESHOLDS]


def default_families(settings: Sequence[str] | None = None) -> dict[str, list[MaskKey]]:
    """The protocol's families: plain, refined (no speck removal) and cleaned (refined, then speck removal)."""
    return {"plain": plain_keys(), "refined": refine_keys(settings), "cleaned": cleaned_keys(settings)}


def key_text(key: MaskKey) -> str:
    """A key as the records name it: ``"setting|threshold"``, with ``"|min_region"`` when specks are removed."""
    return f"{key.setting}|{key.threshold}" + (f"|{key.min_region}" if key.min_region else "")


def _key_entry(key: MaskKey) -> dict[str, object]:
    return {"setting": key.setting, "threshold": key.threshold, "min_region": key.min_region}


def refine_sweep(
    loaded: helpers.LoadedModel,
    pets: Sequence[PetsPhoto],
    coco: CocoSet | None,
    oracle: bool,
    keys: Sequence[MaskKey],
    settings: Mapping[str, helpers.CRFSettings] | None = None,
    options: Mapping[str, object] | None = None,
    measure_speckle: bool = False,
) -> RefineSweep:
    """Per set and key, the per-item values of the masks of that key: ``(PLAIN, t)``: :func:`relabel` at t;
    ``(setting, t, f)``: ``helpers.refine_label_maps`` at t with ``settings[setting]`` (default
    :data:`REFINE_GRID`; one call over the thresholds per setting and photo), then ``helpers.remove_specks`` at f
    when f > 0 (no new CRF per fraction); all from one plain ``segment`` per photo (:func:`mask_items` with the
    test-time ``options``). ``measure_speckle``: also :func:`.metrics.speckle` of every refined map, per photo."""
    settings = REFINE_GRID if settings is None else settings
    keys = [MaskKey(*key) for key in keys]
    values: dict[str, dict[MaskKey, list[float]]] = {}
    specks: dict[MaskKey, list[Speckle]] = {key: [] for key in keys if key.setting != PLAIN} if measure_speckle else {}
    seconds = {"segment": 0.0, "refine": 0.0}
    photos = refinements = 0
    start = time.perf_counter()
    for name, photo, seg, score in mask_items(loaded, pets, coco, oracle, options):
        seconds["segment"] += time.perf_counter() - start
        photos += 1
        per_key = values.setdefault(name, {key: [] for key in keys})
        fractions: dict[str, dict[float, list[float]]] = {}  # setting -> threshold -> speck fractions
        for key in keys:
            if key.setting == PLAIN:
                per_key[key].extend(score(relabel(seg, key.threshold)))
            else:
                fractions.setdefault(key.setting, {}).setdefault(key.threshold, []).append(key.min_region)
        for setting, by_threshold in fractions.items():
            thresholds = sorted(by_threshold)
            begin = time.perf_counter()
            maps = helpers.refine_label_maps(photo, seg, thresholds, settings[setting])
            seconds["refine"] += time.perf_counter() - begin
            refinements += len(maps)
            for threshold, labels in zip(thresholds, maps, strict=True):
                for fraction in by_threshold[threshold]:
                    key = MaskKey(setting, threshold, fraction)
                    cleaned = helpers.remove_specks(labels, fraction) if fraction > 0 else labels
                    per_key[key].extend(score(cleaned))
                    if measure_speckle:
                        specks[key].append(speckle(cleaned))
        start = time.perf_counter()
    return RefineSweep(values, specks, seconds["segment"] / max(1, photos), seconds["refine"] / max(1, refinements))


def _pooled(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]], keys: Sequence[MaskKey], dev_sets: Sequence[str]
) -> dict[MaskKey, list[float]]:
    return {key: [v for name in dev_sets for v in values[name][key]] for key in keys}


def _split(values: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    return np.split(values, np.cumsum(sizes)[:-1])


def _family_results(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]], keys: Sequence[MaskKey], dev_sets: Sequence[str]
) -> FamilyChoice:
    """One family of keys chosen by 5-fold cross-validation on the pooled items of ``dev_sets``."""
    pooled = _pooled(values, keys, dev_sets)
    _, per_fold, cv = kfold_choice(pooled)
    chosen = best_key({key: float(np.mean(pooled[key])) for key in keys})
    entry: dict[str, object] = {"cv": interval(cv)}
    sizes = [len(values[name][keys[0]]) for name in dev_sets]
    for name, part in zip(dev_sets, _split(cv, sizes), strict=True):  # the held-out values of each set's items
        entry[f"cv_{name}"] = interval(part)
        entry[f"held_out_{name}"] = part.tolist()  # per item, for paired comparisons between runs
    entry |= {
        "cv_choices": [_key_entry(MaskKey(*k)) for k in per_fold],
        "chosen": _key_entry(chosen),
        "at_chosen": {name: interval(values[name][chosen]) for name in dev_sets},
        "mean_by_key": {name: {key_text(k): float(np.mean(values[name][k])) for k in keys} for name in dev_sets},
    }
    return FamilyChoice(entry, cv, chosen)


def _repeated_cv(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    dev_sets: Sequence[str],
    seeds: Sequence[int] = REFINE_SEEDS,
    base_keys: Sequence[MaskKey] | None = None,
    new_keys: Sequence[MaskKey] | None = None,
) -> dict[str, object]:
    """New - base (default refined - plain), each family chosen by 5-fold CV as in :func:`_family_results`, once per
    fold seed -> {seeds; per set (``pooled`` and each of ``dev_sets``): the paired interval per seed; ``above_zero``:
    how many seeds' pooled intervals lie above 0; ``below_zero``: below 0; ``mean``: the mean pooled difference over
    the seeds}."""
    base = _pooled(values, plain_keys() if base_keys is None else base_keys, dev_sets)
    new = _pooled(values, refine_keys() if new_keys is None else new_keys, dev_sets)
    sizes = [len(values[name][next(iter(base))]) for name in dev_sets]
    out: dict[str, object] = {"seeds": list(seeds), "pooled": []} | {name: [] for name in dev_sets}
    for seed in seeds:
        diff = kfold_choice(new, seed=seed).held_out - kfold_choice(base, seed=seed).held_out
        out["pooled"].append(interval(diff))
        for name, part in zip(dev_sets, _split(diff, sizes), strict=True):
            out[name].append(interval(part))
    out["above_zero"] = sum(d.low > 0 for d in out["pooled"])
    out["below_zero"] = sum(d.high < 0 for d in out["pooled"])
    out["mean"] = float(np.mean([d.mean for d in out["pooled"]]))
    return out


def refine_results(
    dev: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    top3: Mapping[str, Mapping[MaskKey, Sequence[float]]] | None = None,
    families: Mapping[str, Sequence[MaskKey]] | None = None,
    seeds: Sequence[int] = REFINE_SEEDS,
) -> dict[str, object]:
    """The protocol's numbers from :func:`refine_sweep`'s values: each family of ``families`` (default
    :func:`default_families`: plain, refined, cleaned; those whose keys ``dev`` holds) chosen by 5-fold CV on the
    pooled development items (``pets_seg`` then ``coco_seg_oracle``, the same folds for all), the paired CV
    differences of :data:`DIFFERENCES` (also over the fold ``seeds``), and (``top3``: values at the chosen keys) COCO
    top-3 at the keys chosen on all items."""
    dev_sets = [name for name in DEV_SETS if name in dev]
    if not dev_sets:
        raise ValueError("dev must hold the values of pets_seg or coco_seg_oracle")
    families = default_families() if families is None else families
    held = dev[dev_sets[0]]
    families = {name: [MaskKey(*k) for k in keys] for name, keys in families.items() if keys and keys[0] in held}
    out: dict[str, object] = {
        "items": {name: len(values[next(iter(values))]) for name, values in {**dev, **(top3 or {})}.items()}
    }
    choices = {name: _family_results(dev, keys, dev_sets) for name, keys in families.items()}
    out |= {name: choice.entry for name, choice in choices.items()}
    sizes = [len(dev[name][families[next(iter(families))][0]]) for name in dev_sets]
    t3 = (top3 or {}).get("coco_seg_top3")
    if t3 is not None:
        out["coco_seg_top3"] = {
            name: interval(t3[choice.chosen]) for name, choice in choices.items() if choice.chosen in t3
        } | {
            f"values_{name}": list(t3[choice.chosen]) for name, choice in choices.items() if choice.chosen in t3
        }
    for new, base in DIFFERENCES:
        if new not in choices or base not in choices:
            continue
        diff = choices[new].held_out - choices[base].held_out
        entry = {"pooled": interval(diff)}
        entry |= {name: interval(part) for name, part in zip(dev_sets, _split(diff, sizes), strict=True)}
        out[f"{new}_minus_{base}_cv"] = entry
        suffix = "" if (new, base) == DIFFERENCES[0] else f"_{new}_minus_{base}"
        out[f"repeated_cv{suffix}"] = _repeated_cv(dev, dev_sets, seeds, families[base], families[new])
        if t3 is not None and choices[new].chosen in t3 and choices[base].chosen in t3:
            out["coco_seg_top3"][f"{new}_minus_{base}"] = interval(
                np.array(t3[choices[new].chosen]) - np.array(t3[choices[base].chosen])
            )
    return out


def speckle_summary(specks: Sequence[Speckle]) -> dict[str, float]:
    """Mean over photos of the total number of components of the class masks and of the worst class mask's share in
    small components (:func:`.metrics.speckle`; a photo with no class counts 0 and 0)."""
    if not specks:
        raise ValueError("specks must hold one Speckle per photo, got none")
    return {
        "photos": len(specks),
        "components": float(np.mean([sum(s.components) for s in specks])),
        "worst_small_share": float(np.mean([max(s.small_share, default=0.0) for s in specks])),
    }


def speckle_entry(labels: np.ndarray) -> dict[str, object]:
    """One label map's speckle (:func:`.metrics.speckle`): per class and the total / worst."""
    s = speckle(labels)
    return {
        "classes": s.classes,
        "components": s.components,
        "small_share": s.small_share,
        "total_components": sum(s.components),
        "worst_small_share": max(s.small_share, default=0.0),
    }


def photo_speckle(
    loaded: helpers.LoadedModel, photo: Image.Image, settings: helpers.CRFSettings, threshold: float
) -> dict[str, object]:
    """The speckle of ``photo``'s top-3 refined label map (helpers' default view) at ``settings`` (its
    ``min_region`` applied after the CRF) and mask ``threshold``: ``before`` (no speck removal) and ``after``."""
    seg = helpers.segment(loaded, photo, topk=3, refine=False)
    (labels,) = helpers.refine_label_maps(photo, seg, [threshold], dataclasses.replace(settings, min_region=0.0))
    cleaned = helpers.remove_specks(labels, settings.min_region) if settings.min_region else labels
    return {"before": speckle_entry(labels), "after": speckle_entry(cleaned), "min_region": settings.min_region}


def segment_cost(
    loaded: helpers.LoadedModel,
    published: helpers.LoadedModel,
    photo: Image.Image,
    settings: helpers.CRFSettings,
    options: Mapping[str, object] | None = None,
) -> dict[str, float]:
    """``detect`` top-5 and ``segment`` top-3 on ``photo`` (with the test-time ``options``, default helpers' own;
    segment with and without ``settings``' refinement), as multiples of one forward pass of the published classifier
    (:func:`forward` at 224; median of 5, round-robin)."""
    view = photo_options(options or {}, photo)
    seconds = median_seconds(
        {
            "forward (published)": lambda: forward(published, photo),
            "detect top-5": lambda: helpers.detect(loaded, photo, topk=5, **view),
            "segment top-3, plain": lambda: helpers.segment(loaded, photo, topk=3, refine=False, **view),
            "segment top-3, refined": lambda: helpers.segment(loaded, photo, topk=3, refine=settings, **view),
        },
        repeats=5,
    )
    return {name: s / seconds["forward (published)"] for name, s in seconds.items()}


def chosen_crf(results: Mapping[str, object], settings: Mapping[str, helpers.CRFSettings]) -> tuple[MaskKey, bool]:
    """The refined key the protocol chooses -> (key, whether speck removal is kept): the cleaned family's key when
    its paired CV difference against the refined family loses nothing beyond its interval (upper end >= 0), else the
    refined family's key (``min_region`` 0)."""
    refined = MaskKey(**results["refined"]["chosen"])
    if "cleaned" not in results:
        return refined, False
    keep = results["cleaned_minus_refined_cv"]["pooled"].high >= 0
    return (MaskKey(**results["cleaned"]["chosen"]) if keep else refined), keep


def key_settings(key: MaskKey, settings: Mapping[str, helpers.CRFSettings]) -> helpers.CRFSettings:
    """The CRFSettings of a refined key: its setting with its speck removal as ``min_region``."""
    return dataclasses.replace(settings[key.setting], min_region=key.min_region)


def refine_run(
    loaded: helpers.LoadedModel,
    data: Path = SHARED_DATA,
    published: helpers.LoadedModel | None = None,
    limit: int | None = None,
) -> dict[str, object]:
    """The refinement protocol (``python -m evaluation --refine``, written to ``evaluation/results/refine.json``), at
    helpers' default view (``segment``'s own input sizes).

    The CRF setting (:data:`REFINE_GRID`: weight x width x working size), the mask threshold
    (:data:`REFINE_THRESHOLDS`) and the speck removal (:data:`SPECK_FRACTIONS`, ``helpers.remove_specks`` on each
    refined map) are chosen by 5-fold cross-validation on the pooled development items with classes given (the Pets
    photos, then the COCO (photo, class) pairs with oracle classes), three families on the same folds: plain
    (:data:`THRESHOLDS`), refined (no removal) and cleaned (removal > 0). Reported: the held-out scores, the paired
    differences refined - plain and cleaned - refined (also over :data:`REFINE_SEEDS`), COCO top-3 at the keys chosen
    on all development items, the speckle of the refined masks (mean over the development photos; the dog-and-cat
    photo's three masks) before and after removal. ``published`` (the stride-2 classifier): the cost of ``detect``
    top-5 and ``segment`` top-3. ``limit``: the first photos of each set only (for trying things).

    The results, as the record's ``results`` holds them: :class:`.records.RefineResults`.
    """
    pets = [] if (root := find_dataset("pets_seg", data)) is None else load_pets(root)[:limit]
    coco = None if (root := find_dataset("coco_seg", data)) is None else load_coco(root).head(limit)
    families = default_families()
    keys = [key for family in families.values() for key in family]
    dev = refine_sweep(loaded, pets, coco, True, keys, measure_speckle=True)
    results = refine_results(dev.values, families=families)
    chosen = {name: MaskKey(**results[name]["chosen"]) for name in families}
    if coco is not None:
        top3 = refine_sweep(loaded, [], coco, False, list(dict.fromkeys(chosen.values())))
        results = refine_results(dev.values, top3.values, families)
    settings = REFINE_GRID
    final, keep = chosen_crf(results, settings)
    final_settings = key_settings(final, settings)
    results["settings"] = {name: dataclasses.asdict(s) for name, s in settings.items()}
    results["thresholds"] = list(REFINE_THRESHOLDS)
    results["speck_fractions"] = list(SPECK_FRACTIONS)
    results["seconds"] = {"segment": dev.seconds_segment, "refine": dev.seconds_refine}
    cleaned_before = chosen["cleaned"]._replace(min_region=0.0)
    results["speckle"] = {
        "refined": speckle_summary(dev.specks[chosen["refined"]]),
        "cleaned": speckle_summary(dev.specks[chosen["cleaned"]]),
        "cleaned_before": speckle_summary(dev.specks[cleaned_before]),
        "dog_and_cat": photo_speckle(
            loaded, helpers.load_image(SPECKLE_PHOTO), key_settings(chosen["cleaned"], settings), final.threshold
        ),
    }
    repeated = results["repeated_cv"]
    decision: dict[str, object] = {
        "wins_beyond_interval": results["refined_minus_plain_cv"]["pooled"].low > 0,  # fold seed 0
        "seeds_beyond_interval": f"{repeated['above_zero']} of {len(repeated['seeds'])}",
        "speck_removal_kept": keep,
        "chosen_crf": dataclasses.asdict(final_settings),
        "chosen_refined_threshold": final.threshold,
        "chosen_plain_threshold": chosen["plain"].threshold,
    }
    if published is not None:
        results["cost"] = segment_cost(loaded, published, helpers.load_image(ROOT / "Chihuahua.jpg"), final_settings)
        decision["within_budget"] = results["cost"]["segment top-3, refined"] <= BUDGET_X_FORWARD
    signature = inspect.signature(helpers.segment).parameters.get("refine")
    decision["refined_default"] = None if signature is None else signature.default
    decision["defaults_are_chosen"] = defaults_are_chosen(final_settings, final.threshold, chosen["plain"].threshold)
    results["decision"] = decision
    return results


def defaults_are_chosen(settings: helpers.CRFSettings, refined_threshold: float, plain_threshold: float) -> bool:
    """Whether helpers' defaults are the protocol's choice: ``helpers.CRFSettings()`` equals ``settings`` in every
    field (working size and speck removal included), ``DEFAULT_REFINED_MASK_THRESHOLD`` is ``refined_threshold`` and
    ``DEFAULT_MASK_THRESHOLD`` is ``plain_threshold``."""
    return (
        helpers.CRFSettings() == settings
        and math.isclose(refined_threshold, helpers.DEFAULT_REFINED_MASK_THRESHOLD)
        and math.isclose(plain_threshold, helpers.DEFAULT_MASK_THRESHOLD)
    )
