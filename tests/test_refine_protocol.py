"""The refinement protocol (evaluation/refine.py): the families chosen by cross-validation on hand-built values, as
the records hold them, the CRF grid from helpers' settings, and the sweep's maps with stand-ins for the model."""

import dataclasses

import numpy as np
import pytest

import helpers
from evaluation import data, records, refine, schema
from evaluation.metrics import Interval

DATA = data.TEST_DATA


def as_recorded(results: dict) -> schema.RefineResults:
    """A protocol's results as its record holds them (written as JSON, read back as the type)."""
    return records.parse(schema.RefineResults, records.jsonable(results, "results"))


def _protocol_values(n_pets: int, n_coco: int, plain_best: float, refined_best: refine.MaskKey) -> dict:
    """Hand-built protocol values: every plain key scores 0.5 except ``plain_best`` (0.6), every refined key 0.4
    except ``refined_best`` (0.9), every cleaned key 0.3 except ``refined_best`` with specks < 0.01 removed (0.95),
    on every item."""
    out = {}
    cleaned_best = refined_best._replace(min_region=0.01)
    for name, n in (("pets_seg", n_pets), ("coco_seg_oracle", n_coco)):
        per_key = {key: [0.6 if key == ("plain", plain_best, 0.0) else 0.5] * n for key in refine.plain_keys()}
        per_key |= {key: [0.9 if key == refined_best else 0.4] * n for key in refine.refine_keys()}
        per_key |= {key: [0.95 if key == cleaned_best else 0.3] * n for key in refine.cleaned_keys()}
        out[name] = per_key
    return out


def test_refine_results_hand_built():
    refined_best = refine.MaskKey(list(refine.REFINE_GRID)[2], 0.35)
    cleaned_best = refined_best._replace(min_region=0.01)
    dev = _protocol_values(5, 7, 0.3, refined_best)
    top3 = {
        "coco_seg_top3": {refine.MaskKey("plain", 0.3): [0.1, 0.3], refined_best: [0.2, 0.2], cleaned_best: [0.3, 0.1]}
    }
    raw = refine.refine_results(dev, top3)
    out = as_recorded(raw)
    assert out.items == {"pets_seg": 5, "coco_seg_oracle": 7, "coco_seg_top3": 2}
    assert out.plain.chosen == refine.MaskKey("plain", 0.3, 0.0)
    assert out.refined.chosen == refined_best and out.cleaned.chosen == cleaned_best
    assert out.refined.cv_choices == [out.refined.chosen] * 5
    assert out.plain.cv == Interval(0.6, 0.6, 0.6)
    assert out.refined.cv_pets_seg.mean == pytest.approx(0.9)
    assert out.refined.held_out_pets_seg == pytest.approx([0.9] * 5)
    for part in ("pooled", "pets_seg", "coco_seg_oracle"):  # paired: the same difference on every item
        assert getattr(out.refined_minus_plain_cv, part) == Interval(0.3, 0.3, 0.3)
        assert getattr(out.cleaned_minus_refined_cv, part) == Interval(0.05, 0.05, 0.05)
    assert out.coco_seg_top3.plain.mean == pytest.approx(0.2)
    assert out.coco_seg_top3.refined_minus_plain.mean == pytest.approx(0.0)
    assert out.coco_seg_top3.values_cleaned == [0.3, 0.1]
    assert out.refined.mean_by_key["pets_seg"][f"{refined_best.setting}|0.35"] == pytest.approx(0.9)
    assert out.cleaned.mean_by_key["pets_seg"][f"{refined_best.setting}|0.35|0.01"] == pytest.approx(0.95)
    repeated = out.repeated_cv  # the same difference on every item: every fold seed sees +0.3 exactly
    assert repeated.seeds == list(refine.REFINE_SEEDS) and repeated.above_zero == len(refine.REFINE_SEEDS)
    assert repeated.mean == pytest.approx(0.3)
    assert out.repeated_cv_cleaned_minus_refined.mean == pytest.approx(0.05)
    assert all(d == Interval(0.3, 0.3, 0.3) for d in repeated.pets_seg)
    # The cleaned family loses nothing: the protocol keeps the speck removal and its key.
    settings = {name: helpers.CRFSettings(bilateral_weight=10.0 + i) for i, name in enumerate(refine.REFINE_GRID)}
    key, kept = refine.chosen_crf(raw, settings)
    assert kept and key == cleaned_best
    assert refine.key_settings(key, settings).min_region == 0.01
    assert refine.key_settings(key, settings).bilateral_weight == settings[refined_best.setting].bilateral_weight
    with pytest.raises(ValueError, match="pets_seg or coco_seg_oracle"):
        refine.refine_results({"coco_seg_top3": dev["pets_seg"]})


def test_chosen_crf_drops_a_speck_removal_that_loses():
    refined_best = refine.MaskKey(next(iter(refine.REFINE_GRID)), 0.3)
    dev = _protocol_values(6, 6, 0.3, refined_best)
    for per_key in dev.values():  # cleaned now loses 0.1 on every item against refined
        per_key[refined_best._replace(min_region=0.01)] = [0.8] * 6
    out = refine.refine_results(dev)
    assert as_recorded(out).cleaned_minus_refined_cv.pooled.high == pytest.approx(-0.1)
    key, kept = refine.chosen_crf(out, refine.REFINE_GRID)
    assert not kept and key == refined_best


def test_defaults_are_chosen_compares_every_crf_field():
    chosen = helpers.CRFSettings()
    assert refine.defaults_are_chosen(chosen, helpers.DEFAULT_REFINED_MASK_THRESHOLD, helpers.DEFAULT_MASK_THRESHOLD)
    for field, value in (("long_side", chosen.long_side + 64), ("min_region", 0.015), ("bilateral_weight", 1.0)):
        other = dataclasses.replace(chosen, **{field: value})
        assert not refine.defaults_are_chosen(
            other, helpers.DEFAULT_REFINED_MASK_THRESHOLD, helpers.DEFAULT_MASK_THRESHOLD
        ), field
    assert not refine.defaults_are_chosen(
        chosen, helpers.DEFAULT_REFINED_MASK_THRESHOLD + 0.05, helpers.DEFAULT_MASK_THRESHOLD
    )
    assert not refine.defaults_are_chosen(
        chosen, helpers.DEFAULT_REFINED_MASK_THRESHOLD, helpers.DEFAULT_MASK_THRESHOLD + 0.05
    )


def test_refine_sweep_scores_plain_refined_and_cleaned_maps(monkeypatch):
    # Stand-ins: plain maps are all background (IoU 0 with a mask that has foreground); refined maps all foreground
    # but an enclosed one-pixel hole at (5, 5), which the real helpers.remove_specks fills at min_region 0.01.
    calls = []

    def segment(loaded, photo, topk=3, class_indices=None, refine=True, **options):
        assert refine is False and options == {}  # the protocol refines the plain maps itself
        return ("seg", photo.size)

    def relabel(seg, t):
        return np.full(seg[1][::-1], -1, dtype=np.int64)

    def refine_label_maps(photo, seg, thresholds, settings):
        calls.append((tuple(thresholds), settings))
        maps = []
        for _ in thresholds:
            labels = np.zeros(seg[1][::-1], dtype=np.int64)
            labels[5, 5] = -1  # an enclosed hole of one pixel
            maps.append(labels)
        return maps

    monkeypatch.setattr(helpers, "segment", segment)
    monkeypatch.setattr(refine, "relabel", relabel)
    monkeypatch.setattr(helpers, "refine_label_maps", refine_label_maps)
    pets = data.load_pets(DATA / "pets_seg")[:2]
    settings = {"a": "settings of a"}
    refined = refine.MaskKey("a", 0.25)
    cleaned = refined._replace(min_region=0.01)
    keys = [refine.MaskKey("plain", 0.3), refined, cleaned, refine.MaskKey("a", 0.2)]
    sweep = refine.refine_sweep(None, pets, None, True, keys, settings, measure_speckle=True)
    values = sweep.values["pets_seg"]

    def iou(pred, m):
        valid = m != 255
        fg = (m > 0) & valid
        return float((pred & fg).sum() / ((pred | fg) & valid).sum())

    def holed(shape):
        pred = np.ones(shape, dtype=bool)
        pred[5, 5] = False
        return pred

    with_hole = [iou(holed(m.shape), m) for _, _, m in pets]
    filled = [iou(np.ones(m.shape, dtype=bool), m) for _, _, m in pets]
    assert values[keys[0]] == [0.0, 0.0]
    assert values[refined] == pytest.approx(with_hole) and values[cleaned] == pytest.approx(filled)
    assert calls == [((0.2, 0.25), "settings of a")] * 2  # one CRF call per photo and setting, thresholds sorted
    assert [s.components for s in sweep.specks[refined]] == [[1], [1]]
    assert sweep.specks[cleaned][0].small_share == [0.0]
    assert refine.MaskKey("plain", 0.3) not in sweep.specks
    assert sweep.seconds_segment >= 0 and sweep.seconds_refine >= 0


def test_the_grid_varies_helpers_crf_settings():
    grid = refine.REFINE_GRID
    assert len(grid) == 9
    assert {(s.bilateral_weight, s.bilateral_sxy, s.long_side) for s in grid.values()} == {
        (w, 0.08, ls) for w in (20.0, 40.0, 80.0) for ls in (128, 192, 256)
    }
    assert all(refine.setting_name(s) == name for name, s in grid.items())
    assert next(iter(grid)) == "wb80 sxy0.08 ls128"  # the first wins ties: the cheapest working size, weight 80
    base = refine.REFINE_BASE  # the rest: helpers' defaults, without speck removal (chosen on its own)
    assert base == dataclasses.replace(helpers.CRFSettings(), min_region=0.0)
    varied = {"bilateral_weight", "bilateral_sxy", "long_side"}
    for s in grid.values():
        assert all(getattr(s, f.name) == getattr(base, f.name) for f in dataclasses.fields(s) if f.name not in varied)
    assert refine.REFINE_THRESHOLDS == (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
    assert len(refine.cleaned_keys()) == 9 * 7 * 3
    assert {k.min_region for k in refine.cleaned_keys()} == {0.005, 0.01, 0.02}
    assert {k.min_region for k in refine.refine_keys()} == {0.0}


def test_repeated_cv_counts_the_seeds_whose_interval_is_above_zero():
    # The first refined key wins on item 0 only (by 1.0) and ties elsewhere, so every fold chooses it (ties go to
    # the first key): the held-out gain is 1 on item 0 and 0 elsewhere, a mean of 1/N for every seed; the
    # intervals of a vector that is 0 but for one item reach down to 0, so no seed's interval lies above 0.
    best = refine.refine_keys()[0]
    keys = refine.plain_keys() + refine.refine_keys()
    n = 12
    dev = {"pets_seg": {k: [0.5] * n for k in keys}}
    dev["pets_seg"][best] = [1.5] + [0.5] * (n - 1)
    out = records.parse(schema.RepeatedCV, records.jsonable(refine._repeated_cv(dev, ["pets_seg"], (0, 1, 2)), "r"))
    assert out.seeds == [0, 1, 2] and out.above_zero == 0 and out.below_zero == 0
    assert out.mean == pytest.approx(1 / n, abs=1e-4)  # as recorded: 4 digits
    assert [d.low for d in out.pooled] == [0.0, 0.0, 0.0] and out.pooled == out.pets_seg
