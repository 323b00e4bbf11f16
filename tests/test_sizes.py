"""Boxes by object size, the zoom-in second pass and the box of the refined mask in the harness
(tests/evaluate.py): hand-built cases whose answers are known, and a stand-in "classifier" whose Grad-CAM is
known. No real model."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

if str(Path(__file__).resolve().parent) not in sys.path:  # pytest's default import mode adds it; others may not
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import evaluate

helpers = evaluate.helpers


def sample(width: int, height: int, boxes: list) -> evaluate.BoxSample:
    return evaluate.BoxSample(Image.new("RGB", (width, height)), 0, boxes, "x")


# ---- buckets ---------------------------------------------------------------------------------


def test_largest_box_fraction_takes_the_largest_box():
    # 100x50 photo (area 5000): boxes of area 400 and 1000 -> 1000 / 5000
    assert evaluate.largest_box_fraction([(0, 0, 20, 20), (10, 10, 60, 30)], 100, 50) == pytest.approx(0.2)


def test_size_bucket_edges_go_to_the_larger_bucket():
    assert evaluate.size_bucket(0.0999) == "small"
    assert evaluate.size_bucket(0.1) == "medium"
    assert evaluate.size_bucket(0.3999) == "medium"
    assert evaluate.size_bucket(0.4) == "large"
    assert evaluate.size_bucket(1.0) == "large"


def test_size_buckets_of_hand_built_photos():
    samples = [
        sample(100, 100, [(0, 0, 30, 30)]),  # 0.09 small
        sample(100, 100, [(0, 0, 10, 10), (0, 0, 50, 20)]),  # largest 0.10 medium
        sample(200, 100, [(0, 0, 100, 80)]),  # 0.40 large
        sample(100, 100, [(0, 0, 100, 100)]),  # 1.0 large
    ]
    assert evaluate.size_buckets(samples).tolist() == ["small", "medium", "large", "large"]


@pytest.mark.parametrize(
    "bad, error", [(0.0, ValueError), (-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                   (True, TypeError), ("0.2", TypeError)]
)  # fmt: skip
def test_size_bucket_rejects_bad_fractions(bad, error):
    with pytest.raises(error, match="fraction"):
        evaluate.size_bucket(bad)


def test_largest_box_fraction_rejects_empty_input():
    with pytest.raises(ValueError, match="non-empty"):
        evaluate.largest_box_fraction([], 10, 10)
    with pytest.raises(ValueError, match="x0 < x1"):
        evaluate.largest_box_fraction([(5, 0, 5, 3)], 10, 10)


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
    out = evaluate.gt_known_by_size(hits, BUCKETS, 0.25)
    small, medium, large, whole = out["small"], out["medium"], out["large"], out["all"]
    assert [small["photos"], medium["photos"], large["photos"], whole["photos"]] == [2, 1, 2, 5]
    assert small["gt_known"]["mean"] == pytest.approx(0.5)
    assert small["curve"] == {0.25: 0.5, 0.5: 0.5, 0.75: 0.5}
    assert small["best_threshold"] == 0.25  # tie: the lowest
    assert small["oracle"]["mean"] == pytest.approx(1.0)  # photo 0 at 0.25, photo 1 at 0.5
    assert medium["gt_known"]["mean"] == 0.0
    assert (medium["best_threshold"], medium["best_gt_known"]) == (0.75, 1.0)
    assert large["curve"] == {0.25: 1.0, 0.5: 0.5, 0.75: 0.0}
    assert large["oracle"]["mean"] == 1.0
    assert whole["gt_known"]["mean"] == pytest.approx(0.6)
    assert whole["best_threshold"] == 0.25 and whole["best_gt_known"] == pytest.approx(0.6)
    assert whole["oracle"]["mean"] == pytest.approx(1.0)


def test_gt_known_by_size_intervals_match_bootstrap_ci():
    rng = np.random.default_rng(1)
    hits = {t: rng.random(40) < p for t, p in ((0.2, 0.3), (0.4, 0.6))}
    buckets = np.array(["small", "medium", "large", "large"] * 10)
    out = evaluate.gt_known_by_size(hits, buckets, 0.4)
    expected = evaluate.bootstrap_ci(hits[0.4][buckets == "large"])
    assert tuple(out["large"]["gt_known"].values()) == pytest.approx(expected)
    ceiling = evaluate.bootstrap_ci(hits[0.2] | hits[0.4])
    assert tuple(out["all"]["oracle"].values()) == pytest.approx(ceiling)


def test_oracle_ceiling_is_at_least_every_threshold():
    rng = np.random.default_rng(2)
    hits = {round(0.05 * i, 2): rng.random(60) < 0.4 for i in range(1, 9)}
    buckets = rng.choice(evaluate.SIZE_BUCKETS, 60)
    out = evaluate.gt_known_by_size(hits, buckets, 0.25)
    for entry in out.values():
        if entry["photos"]:
            assert entry["oracle"]["mean"] >= max(entry["curve"].values())
            assert entry["best_gt_known"] == max(entry["curve"].values())


def test_gt_known_by_size_empty_bucket():
    out = evaluate.gt_known_by_size({0.25: [True, False]}, ["large", "large"], 0.25)
    assert out["small"] == {
        "photos": 0,
        "gt_known": None,
        "curve": None,
        "best_threshold": None,
        "best_gt_known": None,
        "oracle": None,
    }
    assert out["large"]["photos"] == 2


def test_gt_known_by_size_bad_input():
    with pytest.raises(ValueError, match="one of the thresholds"):
        evaluate.gt_known_by_size({0.25: [True]}, ["small"], 0.3)
    with pytest.raises(ValueError, match="one bucket name per photo"):
        evaluate.gt_known_by_size({0.25: [True, False]}, ["small"], 0.25)
    with pytest.raises(ValueError, match="names from"):
        evaluate.gt_known_by_size({0.25: [True]}, ["tiny"], 0.25)
    with pytest.raises(ValueError, match="hits"):
        evaluate.gt_known_by_size({0.25: [0.5]}, ["small"], 0.25)


def test_paired_by_size_hand_built():
    base = [1, 0, 0, 1, 1]
    new = [1, 1, 1, 0, 1]
    out = evaluate.paired_by_size(base, new, BUCKETS)
    assert out["small"]["mean"] == pytest.approx(0.5)
    assert out["medium"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
    assert out["large"]["mean"] == pytest.approx(-0.5)
    assert out["all"]["mean"] == pytest.approx(0.2)
    assert evaluate.paired_by_size([1], [1], ["small"])["large"] is None


# ---- zoom geometry ---------------------------------------------------------------------------


def test_zoom_crop_grows_each_side_by_the_margin():
    # box 20 wide, 10 high -> 10 px more left/right, 5 px more top/bottom
    assert evaluate.zoom_crop((40, 40, 60, 50), 200, 100, 0.5) == (30, 35, 70, 55)


def test_zoom_crop_clips_to_the_photo_and_rounds_outwards():
    assert evaluate.zoom_crop((1.5, 2.5, 9.5, 10.0), 10, 10, 0.5) == (0, 0, 10, 10)
    assert evaluate.zoom_crop((10.2, 10.2, 20.2, 20.2), 100, 100, 0.25) == (7, 7, 23, 23)
    assert evaluate.zoom_crop((10, 10, 20, 20), 100, 100, 0.0) == (10, 10, 20, 20)


def test_zoom_crop_bad_input():
    with pytest.raises(ValueError, match="inside"):
        evaluate.zoom_crop((0, 0, 20, 5), 10, 10)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        evaluate.zoom_crop((0, 0, 5, 5), 10, 10, -0.1)
    with pytest.raises(TypeError, match="margin must be a finite number"):
        evaluate.zoom_crop((0, 0, 5, 5), 10, 10, np.bool_(True))


def test_uncrop_box_is_the_inverse_of_cropping():
    crop = (30, 35, 70, 55)
    assert evaluate.uncrop_box((2.0, 3.0, 12.0, 13.0), crop) == (32.0, 38.0, 42.0, 48.0)
    assert evaluate.uncrop_box(None, crop) is None
    with pytest.raises(ValueError, match="inside"):
        evaluate.uncrop_box((0, 0, 41, 5), crop)


class _Fixed(torch.nn.Module):
    """A stand-in "classifier" whose 4x4 feature map is the photo's red channel pooled to 4x4: every class's
    logit is the map's mean times (class + 1), so Grad-CAM of any class is the pooled red channel."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.AdaptiveAvgPool2d(4)

    def forward(self, x):
        maps = self.features(x)[:, :1]  # [B, 1, 4, 4]
        return maps.mean(dim=(1, 2, 3))[:, None] * torch.arange(1, 1001)[None]


@pytest.fixture(scope="module")
def fixed() -> helpers.LoadedModel:
    model = _Fixed()
    return helpers.LoadedModel(
        model=model,
        name="fixed",
        source="test",
        categories=tuple(str(i) for i in range(1000)),
        target_layer=model.features,
        classifier=torch.nn.Linear(1, 1000),  # only its device (and bias, for segment) is read
        preprocess=lambda photo, size=224: TF.to_tensor(photo.resize((size, size)))[None],
    )


def red_square(size: int = 400, square: tuple[int, int, int, int] = (100, 100, 200, 200)) -> Image.Image:
    photo = Image.new("RGB", (size, size))
    photo.paste((255, 0, 0), square)
    return photo


def test_zoom_boxes_maps_the_crop_box_back_to_the_photo(fixed):
    photo = red_square()  # a red square one 4x4 cell wide
    (det,) = helpers.detect(fixed, photo, class_indices=[0], threshold=0.5)
    assert det.box is not None
    crop = evaluate.zoom_crop(det.box, 400, 400, 0.5)
    ((box,),) = evaluate.zoom_boxes(fixed, photo, [det], (0.5,), 0.5)
    # Independently: detect on the cropped photo, shifted by the crop's corner.
    (on_crop,) = helpers.detect(fixed, photo.crop(crop), class_indices=[0], threshold=0.5)
    assert box == pytest.approx(evaluate.uncrop_box(on_crop.box, crop))
    # The first box is the square (100..200); the crop 50..250 holds it as its middle 2x2 cells of 4x4,
    # whose box at half the maximum is again the square, in photo pixels.
    assert det.box == pytest.approx((100, 100, 200, 200))
    assert crop == (50, 50, 250, 250)
    assert box == pytest.approx((100, 100, 200, 200))


def test_zoom_boxes_keeps_a_detection_without_a_box_and_a_whole_photo_crop(fixed):
    photo = red_square()
    (det,) = helpers.detect(fixed, photo, class_indices=[0], threshold=0.5)
    empty = helpers.Detection(0, "0", 1.0, None, det.cam, det.image_size)
    whole = helpers.Detection(0, "0", 1.0, (0.0, 0.0, 400.0, 400.0), det.cam, det.image_size)
    no_box, own = evaluate.zoom_boxes(fixed, photo, [empty, whole], (0.5,))
    assert no_box == [None]
    assert own == helpers.cam_to_boxes(det.cam, (400, 400), [0.5])  # the first pass's own box


def test_detect_zoomed_replaces_only_the_box(fixed):
    photo = red_square()
    first = helpers.detect(fixed, photo, topk=2, threshold=0.5)
    zoomed = evaluate.detect_zoomed(fixed, photo, topk=2, threshold=0.5)
    assert [d.class_index for d in zoomed] == [d.class_index for d in first]
    assert [d.score for d in zoomed] == [d.score for d in first]
    expected = evaluate.zoom_boxes(fixed, photo, first, (0.5,))
    assert [d.box for d in zoomed] == [b[0] for b in expected]


# ---- the box of the refined mask ------------------------------------------------------------


def test_refined_box_takes_the_largest_8_connected_component():
    label_map = np.full((8, 8), -1)
    label_map[0:2, 0:2] = 5  # a 2x2 block ...
    for i in (2, 3, 4):
        label_map[i, i] = 5  # ... and a diagonal chain: 7 pixels together, only through corners
    label_map[7, 2:8] = 5  # 6 pixels in a row: the largest piece under 4-connectivity
    label_map[0:4, 4:8] = 3  # another class, larger than both
    assert evaluate.refined_box(label_map, 5) == (0.0, 0.0, 5.0, 5.0)
    assert evaluate.refined_box(torch.from_numpy(label_map), 3) == (4.0, 0.0, 8.0, 4.0)


def test_refined_box_whole_map_and_absent_class():
    assert evaluate.refined_box(np.full((3, 5), 2), 2) == (0.0, 0.0, 5.0, 3.0)  # a constant map: the whole photo
    assert evaluate.refined_box(np.full((3, 5), -1), 2) is None
    assert evaluate.refined_box(np.array([[1, 2], [2, 2]]), 1) == (0.0, 0.0, 1.0, 1.0)


def test_refined_box_bad_input():
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        evaluate.refined_box(np.zeros((2, 2, 2), dtype=int), 0)
    with pytest.raises(TypeError, match="integers"):
        evaluate.refined_box(np.zeros((2, 2)), 0)


def test_refined_boxes_follow_the_photos_edges(fixed):
    # The map is one hot 4x4 cell, so today's box is a blob around the square that grows as the threshold falls
    # (75..225 at 0.25: the bilinear peak falls linearly over one 100 px cell); the CRF's mask is the red square.
    photo = red_square()
    (det,) = helpers.detect(fixed, photo, class_indices=[0])
    taus = (0.25, 0.4)
    assert helpers.cam_to_boxes(det.cam, (400, 400), taus) == [(75.0, 75.0, 225.0, 225.0), (90.0, 90.0, 210.0, 210.0)]
    assert evaluate.refined_boxes(photo, det, taus) == [(100.0, 100.0, 200.0, 200.0)] * 2


def test_refined_boxes_without_pairwise_terms_are_todays_boxes(fixed):
    # With both pairwise weights 0 the CRF is its unaries, whose argmax is the map above tau; on a photo no larger
    # than the CRF's working size that is today's box at tau (no ties: tau is no value of this map).
    photo = red_square(64, (16, 16, 32, 32))
    (det,) = helpers.detect(fixed, photo, class_indices=[0])
    off = helpers.CRFSettings(gaussian_weight=0.0, bilateral_weight=0.0)
    taus = (0.3, 0.45)
    assert evaluate.refined_boxes(photo, det, taus, off) == helpers.cam_to_boxes(det.cam, (64, 64), taus)
    assert evaluate.refined_boxes(photo, det, taus) == [(16.0, 16.0, 32.0, 32.0)] * 2


def test_detection_segmentation_holds_the_detections_map(fixed):
    photo = red_square()
    (det,) = helpers.detect(fixed, photo, class_indices=[7])
    seg = evaluate.detection_segmentation(det)
    assert seg.label_map.shape == (400, 400) and (seg.label_map == -1).all()
    assert torch.equal(seg.cams_low[0], det.cam) and not seg.logits_low.any()
    assert seg.classes == [(7, det.label, det.score)]
    with pytest.raises(TypeError, match="Detection"):
        evaluate.detection_segmentation(seg)


def test_detect_refined_replaces_only_the_box(fixed):
    photo = red_square()
    first = helpers.detect(fixed, photo, topk=2)
    refined = evaluate.detect_refined(fixed, photo, topk=2, tau=0.3)
    assert [(d.class_index, d.score, d.boxes) for d in refined] == [(d.class_index, d.score, d.boxes) for d in first]
    assert [d.box for d in refined] == [evaluate.refined_boxes(photo, d, (0.3,))[0] for d in first]
    assert refined[0].box == (100.0, 100.0, 200.0, 200.0) != first[0].box


def test_pooled_refined_choice_pools_the_development_sets():
    # Set A alone prefers tau 0.25 (2/2 against 0/2), pooled with set B tau 0.3 wins (3/6 against 2/6).
    a = ({0.25: np.array([1, 0], bool)}, {0.25: np.array([1, 1], bool), 0.3: np.array([0, 0], bool)},
         np.array(["small", "large"]))
    b = ({0.25: np.array([0, 0, 1, 0], bool)},
         {0.25: np.array([0, 0, 0, 0], bool), 0.3: np.array([1, 1, 1, 0], bool)}, np.array(["large"] * 4))
    out = evaluate._pooled_refined_choice([a, b])
    assert out["chosen_tau"] == 0.3
    assert out["pooled_dev_gt_known_by_tau"] == pytest.approx({0.25: 2 / 6, 0.3: 3 / 6})
    assert out["pooled_dev_photos"] == 6
    # refined at 0.3 - today, photo by photo: [-1, 0] and [1, 1, 0, 0]
    difference = out["pooled_dev_difference"]
    assert difference["all"]["mean"] == pytest.approx(1 / 6)
    assert difference["small"] == {"mean": -1.0, "low": -1.0, "high": -1.0}
    assert difference["large"]["mean"] == pytest.approx(2 / 5)
    tie = ({0.25: np.array([0, 1], bool)}, {0.25: np.array([1, 0], bool), 0.3: np.array([0, 1], bool)},
           np.array(["large", "large"]))
    assert evaluate._pooled_refined_choice([tie])["chosen_tau"] == 0.25  # a tie: the lowest


def test_wins_on_development_needs_every_set_above_zero_and_large_not_below():
    up = {"all": {"mean": 0.05, "low": 0.01, "high": 0.09}, "large": {"mean": 0.0, "low": -0.01, "high": 0.01}}
    noise = {"all": {"mean": 0.05, "low": -0.01, "high": 0.1}, "large": None}
    large_down = {"all": {"mean": 0.05, "low": 0.01, "high": 0.09}, "large": {"mean": -0.01, "low": -0.02, "high": 0}}
    assert evaluate._wins_on_development([up])
    assert not evaluate._wins_on_development([up, noise])
    assert not evaluate._wins_on_development([large_down])
    assert not evaluate._wins_on_development([])


def _box_set(root: Path, photos: list[tuple[Image.Image, list]]) -> None:
    (root / "images").mkdir(parents=True)
    entries = []
    for i, (photo, boxes) in enumerate(photos):
        photo.save(root / "images" / f"{i}.png")
        entries.append({"file": f"{i}.png", "class_index": 0, "boxes_xyxy": boxes})
    (root / "annotations.json").write_text(json.dumps(entries))


def test_sizes_results_end_to_end_on_hand_built_sets(fixed, tmp_path):
    # Dev: the red square with its own box (area 1/16 of the photo: small; its box at 0.5 is the square, see
    # above) and a photo whose top half is red, boxed so (area 1/2: large; the two red rows of 4x4 cells
    # upsampled bilinearly cross one half exactly at the half's edge, so the box at 0.5 is the half).
    small = (red_square(), [[100, 100, 200, 200]])
    large = (red_square(square=(0, 0, 400, 200)), [[0, 0, 400, 200]])
    _box_set(tmp_path / "imagenet_val_227", [small, large])
    _box_set(tmp_path / "imagenet_val", [large])
    results = evaluate.sizes_results(fixed, tmp_path)
    assert "imagenet_val_227" not in results  # the notebook's technique loop must skip this run
    dev = results["sets"]["imagenet_val_227"]
    assert dev["bucket_counts"] == {"small": 1, "medium": 0, "large": 1}
    assert dev["buckets"] == "sl"
    by_size = dev["gt_known_by_size"]
    assert by_size["small"]["curve"][0.5] == 1.0 and by_size["large"]["curve"][0.5] == 1.0
    assert by_size["medium"]["photos"] == 0 and by_size["medium"]["curve"] is None
    # The paired difference is the zoom pass's hits minus today's, photo by photo.
    today = [int(h) for h in dev["hits_at_default"]]
    zoom = [int(h) for h in dev["zoom_hits_at_default"]]
    assert dev["zoom"]["difference_at_default"]["all"]["mean"] == pytest.approx(np.mean(np.subtract(zoom, today)))
    assert dev["gt_known_by_size"]["all"]["gt_known"]["mean"] == pytest.approx(np.mean(today))
    assert results["sets"]["imagenet_val"]["bucket_counts"]["large"] == 1
    assert results["zoom_decision"]["kept"] is False  # no cost measured: never kept
    # The refined box: tau is the best of the development set's hits (lowest on ties); the test set only reports.
    decision = results["refined_box_decision"]
    refined_hits = {float(t): [int(h) for h in bits] for t, bits in dev["refined_box_hits"].items()}
    assert sorted(refined_hits) == list(evaluate.REFINED_BOX_TAUS)
    best = max(np.mean(v) for v in refined_hits.values())
    tau = decision["chosen_tau"]
    assert tau == min(t for t, v in refined_hits.items() if np.mean(v) == best)
    # Both photos' CRF masks are the red regions, whose boxes are the ground truth: every tau hits both.
    assert refined_hits == {t: [1, 1] for t in evaluate.REFINED_BOX_TAUS} and tau == 0.25
    difference = dev["refined_box"]["difference_at_default"]
    assert difference["all"]["mean"] == pytest.approx(np.mean(np.subtract(refined_hits[tau], today)))
    assert decision["pooled_dev_difference"] == difference  # one development set: the pool is that set
    assert dev["refined_box"]["gt_known_by_size"]["small"]["curve"] == {t: 1.0 for t in evaluate.REFINED_BOX_TAUS}
    assert "refined_box" in results["sets"]["imagenet_val"]
    assert decision["kept"] is False and "top5_x_forward" not in decision  # no cost measured: never kept
    table = evaluate.sizes_markdown(results)
    assert f"refined box at {tau} - today (paired)" in table
    json.dumps(evaluate._jsonable(results, "results"))  # writable as JSON
