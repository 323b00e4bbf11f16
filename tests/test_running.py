"""What the protocols share to run the model (evaluation/running.py): relabel against helpers.segment, the forward
pass, per-photo options and the progress bar."""

import numpy as np
import pytest
import torch
from PIL import Image

import helpers
from evaluation import running


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.55])
def test_relabel_is_segment_at_that_threshold(lite, chihuahua, threshold):
    seg = helpers.segment(lite, chihuahua, topk=3, refine=False)  # at helpers' default plain threshold
    expected = helpers.segment(lite, chihuahua, topk=3, refine=False, threshold=threshold).label_map
    relabelled = running.relabel(seg, threshold)
    assert relabelled.dtype == expected.dtype == np.int16 and relabelled.shape == (chihuahua.height, chihuahua.width)
    np.testing.assert_array_equal(relabelled, expected)
    if threshold != helpers.DEFAULT_MASK_THRESHOLD:
        assert not np.array_equal(relabelled, seg.label_map)  # the threshold matters: not the stored map


def test_relabel_bad_input(lite, chihuahua):
    seg = helpers.segment(lite, chihuahua, topk=1, refine=False)
    with pytest.raises(TypeError, match=r"seg must be a helpers\.Segmentation"):
        running.relabel(seg.label_map, 0.3)
    with pytest.raises(ValueError, match="threshold"):
        running.relabel(seg, 0.0)


def test_predict_is_the_softmax_of_one_forward_pass(lite, chihuahua, chihuahua_probabilities):
    probabilities = running.predict(lite, chihuahua, helpers.INPUT_SIZE[0])  # the view detect/segment score on
    torch.testing.assert_close(probabilities, chihuahua_probabilities, atol=1e-6, rtol=1e-5)


def test_photo_options_gives_each_photo_its_sizes():
    small, large = Image.new("RGB", (260, 300)), Image.new("RGB", (1000, 800))

    def short_side(photo):
        return (min(photo.size),)

    options = {"input_sizes": short_side, "flip": False}
    assert [running.photo_options(options, p) for p in (small, large)] == [
        {"input_sizes": (260,), "flip": False},
        {"input_sizes": (800,), "flip": False},
    ]
    assert running.photo_options({"input_sizes": (288,)}, small) == {"input_sizes": (288,)}  # fixed sizes: as given


def test_progress_is_quiet_without_a_terminal(capsys):
    items = [1, 2, 3]
    assert running.progress(items, "test") is items  # pytest captures stderr: not a terminal
    assert capsys.readouterr().err == ""
