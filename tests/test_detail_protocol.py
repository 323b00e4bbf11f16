"""The detail-size protocol (evaluation/detail.py): the candidates and the size the adaptive rule gives a photo, and
its one CRF setting."""

import dataclasses

import pytest
from PIL import Image

import helpers
from evaluation import detail, records, refine, running

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


def test_detail_crf_is_helpers_crf_without_speck_removal():
    assert detail.DETAIL_CRF == dataclasses.replace(helpers.CRFSettings(), min_region=0.0)
    assert refine.REFINE_GRID[detail.DETAIL_CRF_NAME] == detail.DETAIL_CRF  # one of the refinement grid's settings
    # The stored detail runs hold the setting they ran with, whatever helpers' defaults are now.
    stored = records.load("detail_320").results.refine.setting
    assert (stored.bilateral_weight, stored.long_side, stored.min_region) == (80.0, 128, 0.0)
