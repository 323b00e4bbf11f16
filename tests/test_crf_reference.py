"""The CRF reference run (evaluation/crf_reference.py) without its optional reference package."""

import pytest

import helpers
from evaluation import crf_reference


def test_pixel_kernels_scale_the_fractions_by_the_long_side():
    settings = helpers.CRFSettings()
    kernels = crf_reference.pixel_kernels(settings, 1000)
    assert kernels["gaussian_sxy"] == pytest.approx(1000 * settings.gaussian_sxy)
    assert kernels["bilateral_sxy"] == pytest.approx(1000 * settings.bilateral_sxy)
    assert kernels["bilateral_srgb"] == settings.bilateral_srgb


def test_without_pydensecrf2_the_run_stops_with_a_clear_message(capsys):
    if crf_reference.reference_missing() is None:
        pytest.skip("pydensecrf2 is installed here")
    assert crf_reference.main(["--limit", "1"]) == 2
    assert "pydensecrf2 is needed for the reference run" in capsys.readouterr().err
