"""The boxes-and-masks protocol (evaluation/boxes_masks.py): detect's box at every threshold, the scores of a
hand-built sweep as the records hold them, and the techniques measured."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

import helpers
from evaluation import boxes_masks, data, metrics, records, schema


def test_box_sweep_gives_detects_box_at_every_threshold(lite):
    samples = data.load_box_set(data.TEST_DATA / "imagenet_val")[:2]
    sweep = boxes_masks.box_sweep(lite, samples, {})
    assert isinstance(sweep, boxes_masks.BoxSweep) and sweep.seconds_per_photo > 0
    assert sorted(sweep.boxes) == list(boxes_masks.THRESHOLDS)
    for i, sample in enumerate(samples):
        for t in (0.1, helpers.DEFAULT_BOX_THRESHOLD, 0.6):  # independently: detect at that threshold
            (det,) = helpers.detect(lite, sample.photo, class_indices=[sample.class_index], threshold=t)
            assert sweep.boxes[t][i] == det.box
            assert sweep.top1[i] == (det.rank == 0)


def test_box_results_of_a_hand_built_sweep():
    # Four 100x100 photos, each with the box (0, 0, 50, 50) (a quarter: median largest box area 0.25). At every
    # threshold but 0.3 every box misses; at 0.3 photos 0-2 are hit: GT-known 3/4 at the threshold chosen.
    truth = (0.0, 0.0, 50.0, 50.0)
    samples = [data.BoxSample(Image.new("RGB", (100, 100)), 0, [truth], f"{i}") for i in range(4)]
    miss = (60.0, 60.0, 90.0, 90.0)
    boxes = {t: [miss] * 4 for t in boxes_masks.THRESHOLDS}
    boxes[0.3] = [truth, truth, truth, None]
    sweep = boxes_masks.BoxSweep(boxes, [True, False, True, True], 0.5)
    results = boxes_masks.box_results(sweep, samples, chosen=0.3)
    typed = records.parse(schema.BoxSet, records.jsonable(results, "results"))  # as the record holds it
    assert typed.photos == 4 and typed.median_largest_box_area == 0.25 and typed.seconds_per_photo == 0.5
    assert typed.top1_classification.mean == 0.75
    rule = typed.largest
    assert rule.threshold == 0.3 and rule.hits == "1110" and rule.gt_known.mean == 0.75
    assert rule.top1_localization.mean == 0.5  # photos 0 and 2: hit and ranked first
    assert rule.gt_known_by_threshold[0.3] == 0.75 and rule.gt_known_by_threshold[0.5] == 0.0
    assert (rule.max_box_acc, rule.max_box_acc_threshold) == (0.75, 0.3)
    assert rule.gt_known_cv is None  # a threshold given: no cross-validation


def test_mask_results_of_hand_built_values():
    best = [0.5, 0.6, 0.7, 0.8, 0.9]
    values = {t: [0.1, 0.2, 0.3, 0.2, 0.2] for t in boxes_masks.THRESHOLDS}
    values[0.25] = best  # the best on every photo: chosen in every fold
    typed = records.parse(schema.MaskSet, records.jsonable(boxes_masks.mask_results(values), "results"))
    assert (typed.items, typed.threshold, typed.cv_thresholds, typed.values) == (5, 0.25, [0.25] * 5, best)
    expected = metrics.interval(best)
    assert dataclasses.astuple(typed.at_threshold) == pytest.approx(dataclasses.astuple(expected), abs=1e-4)
    assert typed.cv.mean == pytest.approx(0.7) and typed.mean_by_threshold[0.05] == pytest.approx(0.2)
    applied = records.parse(schema.MaskSet, records.jsonable(boxes_masks.mask_results(values, 0.3), "results"))
    assert applied.threshold == 0.3 and applied.cv is None and applied.at_threshold.mean == pytest.approx(0.2)


def test_techniques_options_config_and_files_match_the_stored_runs():
    for name, technique in boxes_masks.TECHNIQUES.items():
        assert technique.name == name
        assert set(technique.options()) == {"input_sizes", "flip"}  # keyword arguments of detect and segment
        stored = records.load(technique.file_name().removesuffix(".json")).config
        assert isinstance(stored, schema.TechniqueConfig) and stored.technique == name
        expected = (technique.dilated, list(technique.input_sizes), technique.flip)
        assert (stored.dilated, stored.input_sizes, stored.flip) == expected
    assert boxes_masks.TECHNIQUES["dilated, sizes 224+320"].file_name() == "dilated_sizes_224_320.json"
    assert np.isclose(boxes_masks.THRESHOLDS, np.arange(1, 17) * 0.05).all()
