"""The object-size protocol (evaluation/sizes.py): hand-built cases whose answers are known, read as the records
hold them, and a stand-in "classifier" whose Grad-CAM is known. No real model."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import helpers
from evaluation import data, metrics, records, report, schema, sizes
from evaluation.metrics import Interval


def sample(width: int, height: int, boxes: list) -> data.BoxSample:
    return data.BoxSample(Image.new("RGB", (width, height)), 0, boxes, "x")


def by_size(out: dict) -> dict[str, schema.SizeBucket]:
    """:func:`sizes.gt_known_by_size`'s result as the records hold it."""
    return records.parse(dict[str, schema.SizeBucket], records.jsonable(out, "out"))


def paired(out: dict) -> dict[str, Interval | None]:
    """:func:`sizes.paired_by_size`'s result as the records hold it."""
    return records.parse(dict[str, Interval | None], records.jsonable(out, "out"))


# ---- buckets ---------------------------------------------------------------------------------


def test_size_bucket_edges_go_to_the_larger_bucket():
    assert sizes.size_bucket(0.0999) == "small"
    assert sizes.size_bucket(0.1) == "medium"
    assert sizes.size_bucket(0.3999) == "medium"
    assert sizes.size_bucket(0.4) == "large"
    assert sizes.size_bucket(1.0) == "large"


def test_size_buckets_of_hand_built_photos():
    samples = [
        sample(100, 100, [(0, 0, 30, 30)]),  # 0.09 small
        sample(100, 100, [(0, 0, 10, 10), (0, 0, 50, 20)]),  # largest 0.10 medium
        sample(200, 100, [(0, 0, 100, 80)]),  # 0.40 large
        sample(100, 100, [(0, 0, 100, 100)]),  # 1.0 large
    ]
    assert sizes.size_buckets(samples).tolist() == ["small", "medium", "large", "large"]


@pytest.mark.parametrize(
    "bad, error", [(0.0, ValueError), (-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                   (True, TypeError), ("0.2", TypeError)]
)  # fmt: skip
def test_size_bucket_rejects_bad_fractions(bad, error):
    with pytest.raises(error, match="fraction"):
        sizes.size_bucket(bad)


# ---- GT-known by size ------------------------------------------------------------------------

# Five photos, three thresholds. Rows: thresholds 0.25, 0.5, 0.75.
HITS = {
    0.25: [1, 0, 0, 1, 1],
    0.5: [0, 1, 0, 1, 0],
    0.75: [0, 1, 1, 0, 0],
}
BUCKETS = ["small", "small", "medium", "large", "large"]


def test_gt_known_by_size_hand_built():
    hits = {t: np.array(v, dtype=bool) for t, v in HITS.items()}
    out = by_size(sizes.gt_known_by_size(hits, BUCKETS, 0.25))
    small, medium, large, whole = out["small"], out["medium"], out["large"], out["all"]
    assert [small.photos, medium.photos, large.photos, whole.photos] == [2, 1, 2, 5]
    assert small.gt_known.mean == pytest.approx(0.5)
    assert small.curve == {0.25: 0.5, 0.5: 0.5, 0.75: 0.5}
    assert small.best_threshold == 0.25  # tie: the lowest
    assert small.oracle.mean == pytest.approx(1.0)  # photo 0 at 0.25, photo 1 at 0.5
    assert medium.gt_known.mean == 0.0
    assert (medium.best_threshold, medium.best_gt_known) == (0.75, 1.0)
    assert large.curve == {0.25: 1.0, 0.5: 0.5, 0.75: 0.0}
    assert large.oracle.mean == 1.0
    assert whole.gt_known.mean == pytest.approx(0.6)
    assert whole.best_threshold == 0.25 and whole.best_gt_known == pytest.approx(0.6)
    assert whole.oracle.mean == pytest.approx(1.0)


def test_gt_known_by_size_intervals_are_the_bootstrap_intervals():
    rng = np.random.default_rng(1)
    hits = {t: rng.random(40) < p for t, p in ((0.2, 0.3), (0.4, 0.6))}
    buckets = np.array(["small", "medium", "large", "large"] * 10)
    out = sizes.gt_known_by_size(hits, buckets, 0.4)
    assert out["large"]["gt_known"] == metrics.interval(hits[0.4][buckets == "large"])
    assert out["all"]["oracle"] == metrics.interval(hits[0.2] | hits[0.4])


def test_oracle_ceiling_is_at_least_every_threshold():
    rng = np.random.default_rng(2)
    hits = {round(0.05 * i, 2): rng.random(60) < 0.4 for i in range(1, 9)}
    buckets = rng.choice(sizes.SIZE_BUCKETS, 60)
    for entry in by_size(sizes.gt_known_by_size(hits, buckets, 0.25)).values():
        if entry.photos:
            assert entry.oracle.mean >= max(entry.curve.values()) - 1e-4
            assert entry.best_gt_known == max(entry.curve.values())


def test_gt_known_by_size_empty_bucket():
    out = by_size(sizes.gt_known_by_size({0.25: [True, False]}, ["large", "large"], 0.25))
    assert out["small"] == schema.SizeBucket(photos=0)  # every other field None
    assert out["large"].photos == 2


def test_gt_known_by_size_bad_input():
    with pytest.raises(ValueError, match="one of the thresholds"):
        sizes.gt_known_by_size({0.25: [True]}, ["small"], 0.3)
    with pytest.raises(ValueError, match="one bucket name per photo"):
        sizes.gt_known_by_size({0.25: [True, False]}, ["small"], 0.25)
    with pytest.raises(ValueError, match="names from"):
        sizes.gt_known_by_size({0.25: [True]}, ["tiny"], 0.25)
    with pytest.raises(ValueError, match="hits"):
        sizes.gt_known_by_size({0.25: [0.5]}, ["small"], 0.25)


def test_paired_by_size_hand_built():
    base = [1, 0, 0, 1, 1]
    new = [1, 1, 1, 0, 1]
    out = paired(sizes.paired_by_size(base, new, BUCKETS))
    assert out["small"].mean == pytest.approx(0.5)
    assert out["medium"] == Interval(1.0, 1.0, 1.0)
    assert out["large"].mean == pytest.approx(-0.5)
    assert out["all"].mean == pytest.approx(0.2)
    assert paired(sizes.paired_by_size([1], [1], ["small"]))["large"] is None


def test_before_after_pairs_the_same_photos_per_bucket():
    buckets = np.array(["small", "small", "large", "medium"])  # a run on the first four photos of five
    after = np.array([True, True, True, True])  # before: 0, 1, 1, 0
    out = records.parse(
        schema.BeforeAfter, records.jsonable(sizes.before_after("sslml", "01101", after, buckets), "x")
    )
    assert out.hits_at_default == "0110"
    assert out.gt_known_by_size["small"].mean == pytest.approx(0.5)
    assert out.gt_known_by_size["large"].mean == pytest.approx(1.0)
    difference = out.difference_at_default
    assert difference["small"] == Interval(0.5, 0.0, 1.0)
    assert difference["large"] == Interval(0.0, 0.0, 0.0)
    assert difference["medium"].mean == pytest.approx(1.0)
    assert difference["all"].mean == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert sizes.before_after("sslml", "01101", after, np.array(["large", "small", "large", "medium"])) is None


def red_square(size: int = 400, square: tuple[int, int, int, int] = (100, 100, 200, 200)) -> Image.Image:
    photo = Image.new("RGB", (size, size))
    photo.paste((255, 0, 0), square)
    return photo


def _box_set(root: Path, photos: list[tuple[Image.Image, list]]) -> None:
    (root / "images").mkdir(parents=True)
    entries = []
    for i, (photo, boxes) in enumerate(photos):
        photo.save(root / "images" / f"{i}.png")
        entries.append({"file": f"{i}.png", "class_index": 0, "boxes_xyxy": boxes})
    (root / "annotations.json").write_text(json.dumps(entries))


def test_sizes_results_end_to_end_on_hand_built_sets(red_channel, tmp_path):
    # Dev: the red square with its own box (area 1/16 of the photo: small; its box at 0.5 is the square, see
    # above) and a photo whose top half is red, boxed so (area 1/2: large; the two red rows of 4x4 cells
    # upsampled bilinearly cross one half exactly at the half's edge, so the box at 0.5 is the half).
    small = (red_square(), [[100, 100, 200, 200]])
    large = (red_square(square=(0, 0, 400, 200)), [[0, 0, 400, 200]])
    _box_set(tmp_path / "imagenet_val_227", [small, large])
    _box_set(tmp_path / "imagenet_val", [large])
    raw = sizes.sizes_results(red_channel, tmp_path)
    results = records.parse(schema.SizesResults, records.jsonable(raw, "results"))  # as the record holds them
    dev = results.sets["imagenet_val_227"]
    assert dev.bucket_counts == {"small": 1, "medium": 0, "large": 1}
    assert dev.buckets == "sl"
    small_bucket, large_bucket = dev.gt_known_by_size["small"], dev.gt_known_by_size["large"]
    assert small_bucket.curve[0.5] == 1.0 and large_bucket.curve[0.5] == 1.0
    assert dev.gt_known_by_size["medium"].photos == 0 and dev.gt_known_by_size["medium"].curve is None
    today = [int(h) for h in dev.hits_at_default]
    # Independently: detect's own box (the defaults) against the ground truth, photo by photo.
    expected = [
        int(helpers.best_iou(helpers.detect(red_channel, photo, class_indices=[0])[0].box, boxes) >= 0.5)
        for photo, boxes in (small, large)
    ]
    assert today == expected and small_bucket.gt_known.mean == expected[0]
    assert dev.gt_known_by_size["all"].gt_known.mean == pytest.approx(np.mean(today))
    assert results.sets["imagenet_val"].bucket_counts["large"] == 1
    assert results.sets["imagenet_val"].role.startswith("test")
    assert dev.zoom is None and dev.refined_box is None  # the lost passes are gone
    table = report.sizes_markdown(results)
    best = small_bucket.best_threshold
    assert small_bucket.curve[best] == 1.0 and best <= 0.5
    assert f"| small | 1 | {expected[0]:.1%} [{expected[0]:.1%}, {expected[0]:.1%}] | {best}: 100.0% |" in table
    assert "zoom" not in table
