"""Issue 19's harness: the detail-size candidates (the adaptive rule's size), the detail records' report table and its
paired differences, the speckle measure on hand-built label maps, and the paired before/after of the boxes by size."""

import json

import numpy as np
import pytest
from PIL import Image

import helpers
from evaluation import detail, metrics, report, running, sizes

# ---- the candidates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "low", "high", "expected"),
    [
        (227, 227, 224, 320, 227),  # the squashed development photos: their own side
        (740, 493, 224, 320, 320),  # the Chihuahua: capped
        (740, 493, 224, 448, 448),
        (300, 1000, 224, 448, 300),  # the short side, whichever it is
        (100, 150, 224, 448, 224),  # a small photo: raised to the classifier's side
        (320, 320, 224, 320, 320),  # on the edge
    ],
)
def test_adaptive_size_is_the_short_side_clamped(width, height, low, high, expected):
    assert detail.adaptive_size(width, height, low, high) == expected


def test_adaptive_size_bad_input():
    with pytest.raises(ValueError, match="low must be <= high"):
        detail.adaptive_size(500, 400, 448, 224)
    with pytest.raises((TypeError, ValueError), match="width"):
        detail.adaptive_size(0, 400, 224, 448)


def test_detail_views_give_each_photo_its_sizes():
    assert detail.CANDIDATES == ("224", "288", "320", "384", "448", "photo320", "photo448")
    assert detail.BASELINE == "224"
    small, large = Image.new("RGB", (260, 300)), Image.new("RGB", (1000, 800))
    fixed = detail.detail_view("320")
    assert fixed.options() == {"input_sizes": (320,), "flip": False}
    assert fixed.sizes_for(small) == (320,) and fixed.file_name() == "detail_320.json"
    rule = detail.detail_view("photo320")
    assert [running.photo_options(rule.options(), p)["input_sizes"] for p in (small, large)] == [(260,), (320,)]
    assert running.photo_options({"input_sizes": (288,)}, small) == {"input_sizes": (288,)}
    assert rule.config()["input_sizes"] == "short side clamped to [224, 320]"
    assert rule.config()["class_size"] == helpers.INPUT_SIZE[0] == running.CLASS_SIZE
    with pytest.raises(ValueError, match="name must be one of"):
        detail.detail_view("512")
    with pytest.raises(ValueError, match="exactly one of size and bounds"):
        detail.DetailView("both", size=320, bounds=(224, 320))


def test_detail_crf_spells_out_issue_15s_setting():
    expected = {
        "temperature": 0.1,
        "gaussian_sxy": 0.006,
        "gaussian_weight": 3.0,
        "bilateral_sxy": 0.08,
        "bilateral_srgb": 13.0,
        "bilateral_weight": 80.0,
        "iterations": 5,
        "long_side": 128,
        "min_region": 0.0,
    }
    assert {name: getattr(detail.DETAIL_CRF, name) for name in expected} == expected


# ---- the report's table ---------------------------------------------------------------------


def _interval(mean: float) -> dict:
    return {"mean": mean, "low": mean - 0.01, "high": mean + 0.01}


def _detail_record(name: str, dev_hits: str, pets: list[float], threshold: float) -> dict:
    """A hand-built detail record: dev CV hits ``dev_hits``, refined Pets held-out ``pets``."""
    box = {"gt_known_cv": _interval(dev_hits.count("1") / len(dev_hits)), "threshold": threshold, "cv_hits": dev_hits}
    family = {
        "cv_pets_seg": _interval(float(np.mean(pets))),
        "held_out_pets_seg": pets,
        "chosen": {"setting": "x", "threshold": 0.25, "min_region": 0.0},
    }
    return {
        "file": f"detail_{name}.json",
        "config": {"technique": "detail", "detail": name, "limit": None},
        "model": "m",
        "torch": "t",
        "torchvision": "v",
        "results": {
            "boxes_masks": {
                "imagenet_val_227": {"largest": box},
                "imagenet_val": {"largest": {"gt_known": _interval(0.5), "hits": "10"}},
            },
            "refine": {"plain": family, "refined": family},
            "cost": {"detect top-5": 4.0, "segment top-3, refined": 5.25},
        },
    }


def test_detail_table_rows_and_paired_differences():
    base = _detail_record("224", "1100", [0.5, 0.6, 0.7], 0.25)
    finer = _detail_record("320", "1110", [0.6, 0.6, 0.9], 0.15)
    odd = _detail_record("photo320", "11", [0.5], 0.2)  # other items: no paired difference
    lines = report.detail_tables([odd, finer, base])  # listed in CANDIDATES order, whatever the input order
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith("| **224** (baseline) | 50.0% [49.0%, 51.0%] | 0.25 |")
    assert rows[2].startswith("| 320 | 75.0% [74.0%, 76.0%] | 0.15 |") and rows[2].endswith("| 4.00 | 5.25 |")
    assert rows[3].startswith("| photo320 |")
    difference = next(line for line in rows[4:] if line.startswith("| 320 |")).split(" | ")
    expected_boxes = metrics.paired_difference("1100", "1110")
    assert difference[1] == report.ci_text(expected_boxes, signed=True)  # +25.0%, bootstrap interval
    d = metrics.bootstrap_ci(np.array([0.1, 0.0, 0.2]))
    assert difference[6] == f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"  # refined Pets (CV), paired per photo
    odd_row = next(line for line in rows[4:] if line.startswith("| photo320 |"))
    assert odd_row.count("–") == len(report.DETAIL_PAIRED) - 1  # only the test photos (the same two) pair


# ---- the speckle measure --------------------------------------------------------------------------


def test_speckle_of_a_hand_built_label_map():
    labels = np.full((20, 30), -1, dtype=np.int64)
    labels[2:12, 2:12] = 3  # class 3: a 10 x 10 block (100 px) ...
    labels[15, 20] = 3  # ... and a one-pixel island: 101 px, the island 1/101 < 1%
    labels[16, 21] = 3  # diagonal to it: the same 8-connected island (2 px: 2/102 >= 1%)
    labels[0:5, 20:30] = 7  # class 7: one 50 px block with a 1-pixel hole (a hole is no component)
    labels[2, 25] = -1
    out = metrics.speckle(labels)
    assert out.classes == [3, 7]
    assert out.components == [2, 1]
    assert out.small_share == [pytest.approx(0.0), 0.0]  # 2 of 102 px is not below 1%
    out = metrics.speckle(labels, fraction=0.05)  # at 5% the 2-pixel island is small
    assert out.small_share[0] == pytest.approx(2 / 102)
    assert metrics.speckle(np.full((4, 4), -1)).components == []
    with pytest.raises(ValueError, match="label_map"):
        metrics.speckle(np.zeros((2, 2, 2), dtype=np.int64))


def test_speckle_after_remove_specks_is_clean():
    labels = np.zeros((40, 40), dtype=np.int64)  # one class, a big mask
    labels[10, 10] = -1  # an enclosed one-pixel hole
    labels[30:32, 30:32] = -1  # an enclosed 4-pixel hole
    labels[0, 39] = 5  # a one-pixel island of another class: its own whole mask, not small
    before = metrics.speckle(labels)
    cleaned = helpers.remove_specks(labels, 0.01)  # holes < 1% of class 0's mask (~15 px) are filled
    assert (cleaned[10, 10], cleaned[30, 30]) == (0, 0)
    assert metrics.speckle(cleaned).components == before.components == [1, 1]


# ---- boxes by size: after against before -----------------------------------------------------------


def test_before_after_pairs_the_same_photos_per_bucket():
    earlier = {"buckets": "sslml", "hits_at_default": "01101"}
    buckets = np.array(["small", "small", "large", "medium"])  # a run on the first four photos
    after = np.array([True, True, True, True])  # before: 0, 1, 1, 0
    out = sizes.before_after(earlier, after, buckets)
    assert out["hits_at_default"] == "0110"
    assert out["gt_known_by_size"]["small"]["mean"] == pytest.approx(0.5)
    assert out["gt_known_by_size"]["large"]["mean"] == pytest.approx(1.0)
    difference = out["difference_at_default"]
    assert difference["small"] == pytest.approx({"mean": 0.5, "low": 0.0, "high": 1.0})
    assert difference["large"] == pytest.approx({"mean": 0.0, "low": 0.0, "high": 0.0})
    assert difference["medium"]["mean"] == pytest.approx(1.0)
    assert difference["all"]["mean"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert sizes.before_after(earlier, after, np.array(["large", "small", "large", "medium"])) is None


def test_sizes_table_shows_before_and_the_paired_difference():
    record = json.loads((sizes.SIZES_BEFORE).read_text())["results"]
    s = record["sets"]["imagenet_val"]
    buckets = np.array([{"s": "small", "m": "medium", "l": "large"}[b] for b in s["buckets"]])
    hits = np.array([c == "1" for c in s["hits_at_default"]])
    after = ~hits  # every photo flips
    entry = {k: s[k] for k in ("role", "photos", "gt_known_by_size")} | {
        "before": sizes.before_after(s, after, buckets)
    }
    results = {"default_threshold": 0.15, "sets": {"imagenet_val": entry}}
    results["before"] = {"file": "sizes_224.json", "default_threshold": record["default_threshold"]}
    table = report.sizes_markdown(results)
    assert "before (`sizes_224.json`, at 0.25) | after - before (paired) |" in table
    (row,) = [line for line in table.splitlines() if line.startswith("| all |")]
    expected = report.ci_text(metrics.interval(after.astype(float) - hits), signed=True)
    assert row.endswith(f"| {expected} |")
