"""The detection protocol (evaluation/detection.py) on a hand-built case whose AP is known: a stand-in "classifier"
whose Grad-CAM is the photo's red channel, on photos with two red squares boxed by hand. No real model."""

import json

import pytest
from PIL import Image

import helpers
from evaluation import detection, records, schema
from evaluation.metrics import Interval

TOP_CLASS = 999  # the stand-in ranks the classes by index: 999 first, with a probability of about 1


def two_squares(corners: tuple[tuple[int, int], tuple[int, int]]) -> tuple[Image.Image, list[list[float]]]:
    """A 400 x 400 black photo with two red 100 px squares at the given top-left corners (cells of the 4 x 4 map),
    and the squares as its ground-truth boxes."""
    photo = Image.new("RGB", (400, 400))
    boxes = []
    for x, y in corners:
        photo.paste((255, 0, 0), (x, y, x + 100, y + 100))
        boxes.append([x, y, x + 100, y + 100])
    return photo, boxes


def test_detection_protocol_scores_one_box_per_class_against_one_box_per_peak(red_channel, tmp_path):
    # Each photo's map has two equal peaks, one per square. One box per peak (outlined at 0.35 of its height) boxes
    # each square: IoU 100^2 / 115.6^2 = 0.75. One box per class boxes one square only (the largest component at
    # 0.15, 135 px: IoU 0.55). So one box per peak finds all 4 objects with precision 1: AP 1; one box per class
    # finds 2 of the 4 with precision 1: of COCO's 101 recall points 0, 0.01, ..., 1, the 51 up to 0.5 have
    # precision 1, the others none: AP 51/101. CorLoc (the best-scored box hits an object): 1 for both.
    photos = [two_squares(((0, 0), (300, 300))), two_squares(((0, 300), (300, 0)))]
    single = Image.new("RGB", (400, 400))
    single.paste((255, 0, 0), (0, 0, 100, 100))  # one object: not a photo with several
    root = tmp_path / "imagenet_val"
    (root / "images").mkdir(parents=True)
    entries = []
    for i, (photo, boxes) in enumerate([*photos, (single, [[0, 0, 100, 100]])]):
        photo.save(root / "images" / f"{i}.png")
        entries.append({"file": f"{i}.png", "class_index": TOP_CLASS, "boxes_xyxy": boxes})
    (root / "annotations.json").write_text(json.dumps(entries))

    raw = detection.detection_results(red_channel, {}, tmp_path)  # no COCO, no development boxes in tests/data
    results = records.parse(schema.DetectionResults, records.jsonable(raw, "results"))  # as the record holds it
    chosen = detection.key_name(("peaks", helpers.DEFAULT_INSTANCE_THRESHOLD))
    assert results.instance_setting == chosen == "peaks 0.35"
    assert results.coco_oracle is None and results.imagenet_val_227_several_objects is None
    several = results.imagenet_val_several_objects
    assert several.photos == 2 and set(several.by_key) == {"one", chosen}
    one, peaks = several.by_key["one"], several.by_key[chosen]
    assert one.ap50.mean == pytest.approx(51 / 101, abs=1e-4) and peaks.ap50.mean == pytest.approx(1.0)
    assert one.corloc == Interval(1.0, 1.0, 1.0) and peaks.corloc == Interval(1.0, 1.0, 1.0)
    assert peaks.ap50_minus_one.mean == pytest.approx(50 / 101, abs=1e-4)  # paired: on the same photos
    assert one.ap50_minus_one is None


def test_predictions_score_instances_by_peak_times_probability(red_channel):
    photo, _ = two_squares(((0, 0), (300, 300)))
    detections = helpers.detect(red_channel, photo, class_indices=[TOP_CLASS])
    (det,) = detections
    one = detection._predictions(detections, lambda c: 7, detection.ONE_BOX)
    assert one == [(7, det.box, det.score)]  # one box per class: its box, scored by the class probability
    peaks = detection._predictions(detections, lambda c: 7, ("peaks", 0.35))
    instances = helpers.cam_to_instances(det.cam, det.image_size, 0.35)
    assert peaks == [(7, box, peak * det.score) for box, peak in instances] and len(peaks) == 2
    assert detection._predictions(detections, lambda c: 0, detection.ONE_BOX) == []  # category 0: dropped
    assert detection.keys() == [detection.ONE_BOX, *detection.INSTANCE_SETTINGS]
