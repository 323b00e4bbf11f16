"""The refinement protocol (``python tests/evaluate.py --refine`` -> ``tests/results/refine.json``): helpers' dense
CRF against the plain masks, its settings and mask threshold chosen by cross-validation."""

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
from .data import ROOT, SHARED_DATA, CocoSet, PetsPhoto, find_dataset, load_coco, load_pets
from .metrics import first_best, interval, kfold_choice
from .running import forward, median_seconds, relabel

#: The CRF settings compared, as overrides of ``helpers.CRFSettings()``: bilateral weight 5 / 10 / 20 / 40 / 80 times
#: bilateral width 0.16 / 0.08 of the long side. The first is the issue's (weight 10, width 0.16: 80 px on a
#: 500 px photo); on ties the first in this order wins.
REFINE_GRID: dict[str, dict[str, float]] = {
    f"wb{w:g} sxy{s:g}": {"bilateral_weight": w, "bilateral_sxy": s}
    for s in (0.16, 0.08)
    for w in (10.0, 5.0, 20.0, 40.0, 80.0)
}
#: Fold seeds of the repeated cross-validation that shows how much the verdict depends on one split into folds.
REFINE_SEEDS = tuple(range(10))
#: Mask thresholds tried with the CRF (its unary's tau: the CAM level where a class's score is one half).
REFINE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(4, 11))
#: The key of the plain masks (:func:`.running.relabel`) in the protocol's {(setting, threshold): values}.
PLAIN = "plain"
#: The most forward passes of the published classifier ``segment`` top-3 may cost (issue 15).
SEGMENT_BUDGET_X_FORWARD = 4.0

#: A protocol key: (``PLAIN`` or a :data:`REFINE_GRID` name, mask threshold).
MaskKey = tuple[str, float]

#: The sets whose items choose the settings, pooled in this order.
DEV_SETS = ("pets_seg", "coco_seg_oracle")


@dataclass(frozen=True)
class RefineSweep:
    """:func:`refine_sweep`'s values: ``values`` {set: {key: per-item values}}; ``seconds_segment``: the plain
    ``segment`` per photo; ``seconds_refine``: one refined label map."""

    values: dict[str, dict[MaskKey, list[float]]]
    seconds_segment: float
    seconds_refine: float


class FamilyChoice(NamedTuple):
    """One family of keys chosen by :func:`_family_results`: its record entry, the held-out value per pooled item
    ``[N]`` and the key chosen on all items."""

    entry: dict[str, object]
    held_out: np.ndarray
    chosen: MaskKey


def refine_settings() -> dict[str, helpers.CRFSettings]:
    """The :data:`REFINE_GRID` as ``helpers.CRFSettings`` (the other fields at helpers' defaults)."""
    return {name: dataclasses.replace(helpers.CRFSettings(), **fields) for name, fields in REFINE_GRID.items()}


def refine_keys() -> list[MaskKey]:
    """Every refined (setting, threshold) pair, settings in :data:`REFINE_GRID` order, thresholds ascending."""
    return [(name, t) for name in REFINE_GRID for t in REFINE_THRESHOLDS]


def plain_keys() -> list[MaskKey]:
    """The plain masks at every threshold of :data:`THRESHOLDS`."""
    return [(PLAIN, t) for t in THRESHOLDS]


def _key_text(key: MaskKey) -> str:
    return f"{key[0]}|{key[1]}"


def refine_sweep(
    loaded: helpers.LoadedModel,
    pets: Sequence[PetsPhoto],
    coco: CocoSet | None,
    oracle: bool,
    keys: Sequence[MaskKey],
) -> RefineSweep:
    """Per set and key, the per-item values of the masks of that key: ``(PLAIN, t)``: :func:`relabel` at
    t; ``(setting, t)``: ``helpers.refine_label_maps`` at t with that setting (one sweep over the thresholds
    per setting), both from one plain ``segment`` per photo (:func:`mask_items`, no new forward pass)."""
    settings = refine_settings()
    values: dict[str, dict[MaskKey, list[float]]] = {}
    seconds = {"segment": 0.0, "refine": 0.0}
    photos = refinements = 0
    start = time.perf_counter()
    for name, photo, seg, score in mask_items(loaded, pets, coco, oracle):
        seconds["segment"] += time.perf_counter() - start
        photos += 1
        per_key = values.setdefault(name, {key: [] for key in keys})
        by_setting: dict[str, list[float]] = {}  # one threshold sweep per CRF setting: one lattice each
        for setting, threshold in keys:
            if setting == PLAIN:
                per_key[(setting, threshold)].extend(score(relabel(seg, threshold)))
            else:
                by_setting.setdefault(setting, []).append(threshold)
        for setting, thresholds in by_setting.items():
            begin = time.perf_counter()
            maps = helpers.refine_label_maps(photo, seg, thresholds, settings[setting])
            seconds["refine"] += time.perf_counter() - begin
            refinements += len(maps)
            for threshold, labels in zip(thresholds, maps, strict=True):
                per_key[(setting, threshold)].extend(score(labels))
        start = time.perf_counter()
    return RefineSweep(values, seconds["segment"] / max(1, photos), seconds["refine"] / max(1, refinements))


def _family_results(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]], keys: Sequence[MaskKey], dev_sets: Sequence[str]
) -> FamilyChoice:
    """One family of keys (plain or refined) chosen by 5-fold cross-validation on the pooled items of
    ``dev_sets``."""
    pooled = {key: [v for name in dev_sets for v in values[name][key]] for key in keys}
    _, per_fold, cv = kfold_choice(pooled)
    chosen = first_best(list(keys), np.array([np.mean(pooled[key]) for key in keys]))
    entry: dict[str, object] = {"cv": interval(cv)}
    offset = 0
    for name in dev_sets:  # the held-out values of each set's items
        n = len(values[name][keys[0]])
        entry[f"cv_{name}"] = interval(cv[offset : offset + n])
        offset += n
    entry |= {
        "cv_choices": [{"setting": k[0], "threshold": k[1]} for k in per_fold],
        "chosen": {"setting": chosen[0], "threshold": chosen[1]},
        "at_chosen": {name: interval(values[name][chosen]) for name in dev_sets},
        "mean_by_key": {name: {_key_text(k): float(np.mean(values[name][k])) for k in keys} for name in dev_sets},
    }
    return FamilyChoice(entry, cv, chosen)


def _repeated_cv(
    values: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    dev_sets: Sequence[str],
    seeds: Sequence[int] = REFINE_SEEDS,
) -> dict[str, object]:
    """Refined - plain, each family chosen by 5-fold CV as in :func:`_family_results`, once per fold seed ->
    {seeds; per set (``pooled`` and each of ``dev_sets``): the paired interval per seed; ``above_zero``: how many
    seeds' pooled intervals lie above 0; ``mean``: the mean pooled difference over the seeds}."""
    def pooled(keys: Sequence[MaskKey]) -> dict[MaskKey, list[float]]:
        return {key: [v for name in dev_sets for v in values[name][key]] for key in keys}

    plain, refined = pooled(plain_keys()), pooled(refine_keys())
    sizes = [len(values[name][plain_keys()[0]]) for name in dev_sets]
    out: dict[str, object] = {"seeds": list(seeds), "pooled": []} | {name: [] for name in dev_sets}
    for seed in seeds:
        diff = kfold_choice(refined, seed=seed).held_out - kfold_choice(plain, seed=seed).held_out
        out["pooled"].append(interval(diff))
        for name, part in zip(dev_sets, np.split(diff, np.cumsum(sizes)[:-1]), strict=True):
            out[name].append(interval(part))
    out["above_zero"] = sum(d["low"] > 0 for d in out["pooled"])
    out["mean"] = float(np.mean([d["mean"] for d in out["pooled"]]))
    return out


def refine_results(
    dev: Mapping[str, Mapping[MaskKey, Sequence[float]]],
    top3: Mapping[str, Mapping[MaskKey, Sequence[float]]] | None = None,
) -> dict[str, object]:
    """The protocol's numbers from :func:`refine_sweep`'s values: the plain family (:func:`plain_keys`) and
    the refined one (:func:`refine_keys`) each chosen by 5-fold CV on the pooled development items
    (``pets_seg`` then ``coco_seg_oracle``, the same folds for both), the paired CV difference refined -
    plain, and (``top3``: values at the two chosen keys) COCO top-3 at the keys chosen on all items."""
    dev_sets = [name for name in DEV_SETS if name in dev]
    if not dev_sets:
        raise ValueError("dev must hold the values of pets_seg or coco_seg_oracle")
    plain, plain_cv, plain_key = _family_results(dev, plain_keys(), dev_sets)
    refined, refined_cv, refined_key = _family_results(dev, refine_keys(), dev_sets)
    diff = refined_cv - plain_cv
    out: dict[str, object] = {
        "items": {name: len(values[next(iter(values))]) for name, values in {**dev, **(top3 or {})}.items()},
        "plain": plain,
        "refined": refined,
        "refined_minus_plain_cv": {"pooled": interval(diff)},
    }
    offset = 0
    for name in dev_sets:
        n = len(dev[name][plain_key])
        out["refined_minus_plain_cv"][name] = interval(diff[offset : offset + n])
        offset += n
    out["repeated_cv"] = _repeated_cv(dev, dev_sets)
    if top3 and "coco_seg_top3" in top3:
        t3 = top3["coco_seg_top3"]
        out["coco_seg_top3"] = {
            "plain": interval(t3[plain_key]),
            "refined": interval(t3[refined_key]),
            "refined_minus_plain": interval(np.array(t3[refined_key]) - np.array(t3[plain_key])),
        }
    return out

def segment_cost(
    loaded: helpers.LoadedModel, published: helpers.LoadedModel, photo: Image.Image, settings: helpers.CRFSettings
) -> dict[str, float]:
    """``segment`` top-3 on ``photo`` with and without ``settings``' refinement, as multiples of one forward
    pass of the published classifier (:func:`forward` at 224; median of 5, round-robin)."""
    seconds = median_seconds(
        {
            "forward (published)": lambda: forward(published, photo),
            "segment top-3, plain": lambda: helpers.segment(loaded, photo, topk=3, refine=False),
            "segment top-3, refined": lambda: helpers.segment(loaded, photo, topk=3, refine=settings),
        },
        repeats=5,
    )
    return {name: s / seconds["forward (published)"] for name, s in seconds.items()}


def refine_run(
    loaded: helpers.LoadedModel, data: Path = SHARED_DATA, published: helpers.LoadedModel | None = None
) -> dict[str, object]:
    """The refinement protocol (``python tests/evaluate.py --refine``, written to ``tests/results/refine.json``).

    The CRF setting (:data:`REFINE_GRID`) and the mask threshold (:data:`REFINE_THRESHOLDS`) are chosen
    together by 5-fold cross-validation on the pooled development items with classes given (the 26 Pets
    photos, then the 257 COCO (photo, class) pairs with oracle classes); the plain masks get their own
    threshold sweep (:data:`THRESHOLDS`) on the same folds. Reported: the held-out (cross-validated) scores,
    the paired bootstrap difference refined - plain, and COCO with the top-3 classes at the keys chosen on
    all development items. ``published`` (the stride-2 classifier): also the cost of ``segment`` top-3.

    Schema of ``results``::

        items: {set: number of items (photos for pets_seg, (photo, class) pairs for COCO)}
        settings: {setting name: every helpers.CRFSettings field};  thresholds: [tau, ...] (refined)
        plain | refined: {
            cv: {mean, low, high}               held-out score over the pooled items
            cv_pets_seg, cv_coco_seg_oracle: {mean, low, high}   the same held-out values, per set
            cv_choices: [{setting, threshold}] * 5   the key chosen on the other folds, per fold
            chosen: {setting, threshold}        chosen on all development items
            at_chosen: {set: {mean, low, high}} (in-sample at the chosen key)
            mean_by_key: {set: {"setting|threshold": mean}}   (setting "plain" for the plain family)
        }
        refined_minus_plain_cv: {pooled | pets_seg | coco_seg_oracle: {mean, low, high}}   paired
        coco_seg_top3: {plain, refined, refined_minus_plain: {mean, low, high}}
        seconds: {segment: s/photo (plain), refine: s per refine_label_map call}
        cost (with published): {row: multiple of a forward pass}, segment top-3 on the Chihuahua
        repeated_cv: {seeds, pooled | pets_seg | coco_seg_oracle: [{mean, low, high}] per seed, above_zero, mean}
        decision: {wins_beyond_interval (fold seed 0), seeds_beyond_interval, within_budget, refined_default,
                   defaults_are_chosen: helpers' CRF and threshold defaults are the chosen ones}
    """
    pets = [] if (root := find_dataset("pets_seg", data)) is None else load_pets(root)
    coco = None if (root := find_dataset("coco_seg", data)) is None else load_coco(root)
    dev = refine_sweep(loaded, pets, coco, True, plain_keys() + refine_keys())
    results = refine_results(dev.values)
    chosen = [(results[f]["chosen"]["setting"], results[f]["chosen"]["threshold"]) for f in ("plain", "refined")]
    if coco is not None:
        top3 = refine_sweep(loaded, [], coco, False, chosen)
        results = refine_results(dev.values, top3.values)
    settings = refine_settings()
    results["settings"] = {name: dataclasses.asdict(s) for name, s in settings.items()}
    results["thresholds"] = list(REFINE_THRESHOLDS)
    results["seconds"] = {"segment": dev.seconds_segment, "refine": dev.seconds_refine}
    repeated = results["repeated_cv"]
    decision: dict[str, object] = {
        "wins_beyond_interval": results["refined_minus_plain_cv"]["pooled"]["low"] > 0,  # fold seed 0, as registered
        "seeds_beyond_interval": f"{repeated['above_zero']} of {len(repeated['seeds'])}",
    }
    if published is not None:
        results["cost"] = segment_cost(
            loaded, published, helpers.load_image(ROOT / "Chihuahua.jpg"), settings[chosen[1][0]]
        )
        decision["within_budget"] = results["cost"]["segment top-3, refined"] <= SEGMENT_BUDGET_X_FORWARD
    signature = inspect.signature(helpers.segment).parameters.get("refine")
    decision["refined_default"] = None if signature is None else signature.default
    # helpers' defaults are what this protocol chose: CRFSettings() with DEFAULT_REFINED_MASK_THRESHOLD, and the
    # plain masks at DEFAULT_MASK_THRESHOLD.
    decision["defaults_are_chosen"] = (
        settings[chosen[1][0]] == helpers.CRFSettings()
        and math.isclose(chosen[1][1], helpers.DEFAULT_REFINED_MASK_THRESHOLD)
        and math.isclose(chosen[0][1], helpers.DEFAULT_MASK_THRESHOLD)
    )
    results["decision"] = decision
    return results
