"""The detail view (classes from one 224 view, maps from a finer view) and speck removal (issue 19)."""

import numpy as np
import pytest
import torch

import helpers


def count_forwards(loaded, fn):
    """How often loaded.model runs during fn(), and fn's result."""
    calls = []
    handle = loaded.model.register_forward_pre_hook(lambda _module, inputs: calls.append(tuple(inputs[0].shape)))
    try:
        result = fn()
    finally:
        handle.remove()
    return calls, result


def test_detail_view_classes_come_from_224_and_maps_from_320(lite, chihuahua, chihuahua_probabilities):
    calls, found = count_forwards(lite, lambda: helpers.detect(lite, chihuahua, topk=3, input_sizes=320))
    assert [shape[-1] for shape in calls] == [224, 320]  # one class view, one map view
    top3 = chihuahua_probabilities.topk(3)
    assert [d.class_index for d in found] == top3.indices.tolist()
    np.testing.assert_allclose([d.score for d in found], top3.values.numpy(), rtol=0, atol=1e-6)
    assert [d.rank for d in found] == [0, 1, 2]
    assert all(tuple(d.cam.shape) == (20, 20) for d in found)  # 320 / 16 with the dilated last stage
    # The maps are exactly the sheet's one-view Grad-CAM at 320 for the same classes.
    expected = helpers.grad_cams(lite, chihuahua, top3.indices.tolist(), input_sizes=320)
    got = torch.stack([torch.from_numpy(d.heatmap) for d in found])
    assert float((got - expected).abs().max()) < 1e-5


def test_the_224_view_is_one_forward_pass(lite, chihuahua):
    calls, _ = count_forwards(lite, lambda: helpers.detect(lite, chihuahua, topk=2, input_sizes=224))
    assert [shape[-1] for shape in calls] == [224]
    calls, _ = count_forwards(lite, lambda: helpers.segment(lite, chihuahua, topk=2, input_sizes=224, refine=False))
    assert [shape[-1] for shape in calls] == [224]


def test_segment_detail_view_is_the_cam_of_the_320_view(lite, chihuahua, chihuahua_probabilities):
    calls, seg = count_forwards(lite, lambda: helpers.segment(lite, chihuahua, topk=3, input_sizes=320, refine=False))
    assert [shape[-1] for shape in calls] == [224, 320]
    classes = chihuahua_probabilities.topk(3).indices.tolist()
    assert [c for c, _, _ in seg.classes] == classes
    with torch.inference_mode(), helpers.ActivationRecorder(lite.target_layer) as recorder:
        lite.model(lite.preprocess(chihuahua, 320))
    raw = helpers.calculate_cam(recorder.activations[0], lite.classifier.weight, classes)
    torch.testing.assert_close(seg.cams_low, helpers.normalize_heatmap(raw), rtol=0, atol=1e-5)


def test_groups_are_chosen_on_the_224_view(lite, chihuahua):
    groups = helpers.imagenet_groups()
    found = helpers.detect(lite, chihuahua, topk=2, input_sizes=320, groups=groups)
    on_224 = helpers.detect(lite, chihuahua, topk=2, input_sizes=224, groups=groups)
    assert [(d.label, d.class_index) for d in found] == [(d.label, d.class_index) for d in on_224]
    assert [d.score for d in found] == pytest.approx([d.score for d in on_224], abs=1e-6)


# --------------------------------------------------------------------------------------------
# remove_specks and CRFSettings.min_region
# --------------------------------------------------------------------------------------------


def test_remove_specks_hand_built():
    labels = np.full((20, 20), -1, dtype=np.int64)
    labels[2:12, 2:12] = 5  # class 5: 100 px ...
    labels[15, 15] = 5  # ... + a 1-px island (about 1% of 101)
    labels[5, 5] = -1  # a 1-px hole inside class 5
    labels[0:3, 17:20] = 7  # class 7: 9 px touching the border
    labels[1, 18] = -1  # a hole of class 7 (enclosed on three sides by 7, one by the border: not enclosed)
    out = helpers.remove_specks(labels, 0.02)  # limit 0.02 * 100 = 2 px for class 5
    assert out[15, 15] == -1  # the island went to the background
    assert out[5, 5] == 5  # the hole was filled
    assert out[1, 18] == -1  # touching the border: not a hole
    assert (out[0:3, 17:20] != -1).sum() == 8  # class 7 keeps its 8 px (8 >= 0.02 * 8)
    kept = helpers.remove_specks(labels, 0.005)  # limit 0.5 px: nothing is smaller
    np.testing.assert_array_equal(kept, labels)


def test_remove_specks_diagonal_pixels_are_one_island():
    labels = np.full((10, 10), -1, dtype=np.int64)
    labels[0:6, 0:6] = 1  # 36 px
    labels[7, 7] = labels[8, 8] = 1  # two diagonal pixels: one 8-connected island of 2 px
    assert helpers.remove_specks(labels, 2 / 38 + 1e-9)[7, 7] == -1  # limit just over 2 px: removed
    assert helpers.remove_specks(labels, 2 / 38 - 1e-9)[8, 8] == 1  # limit just under: one island of 2 px stays


def test_remove_specks_zero_is_an_equal_copy():
    labels = np.array([[1, -1], [-1, 2]], dtype=np.int64)
    out = helpers.remove_specks(labels, 0.0)
    np.testing.assert_array_equal(out, labels)
    assert out is not labels


@pytest.mark.parametrize(
    ("labels", "fraction", "error", "match"),
    [
        (np.zeros((3, 3), dtype=np.float32), 0.01, ValueError, "label_map must be a 2-d integer array"),
        (np.zeros((2, 3, 3), dtype=np.int64), 0.01, ValueError, "label_map must be a 2-d integer array"),
        (np.zeros((3, 3), dtype=np.int64), 1.0, ValueError, r"min_fraction must lie in \[0, 1\)"),
        (np.zeros((3, 3), dtype=np.int64), -0.1, ValueError, "min_fraction"),
        (np.zeros((3, 3), dtype=np.int64), True, TypeError, "min_fraction"),
    ],
)
def test_remove_specks_bad_input(labels, fraction, error, match):
    with pytest.raises(error, match=match):
        helpers.remove_specks(labels, fraction)


def test_min_region_is_remove_specks_after_the_crf(lite, chihuahua):
    seg = helpers.segment(lite, chihuahua, topk=3, refine=False)
    without = helpers.refine_label_map(chihuahua, seg, settings=helpers.CRFSettings(min_region=0.0))
    cleaned = helpers.refine_label_map(chihuahua, seg, settings=helpers.CRFSettings(min_region=0.02))
    np.testing.assert_array_equal(cleaned, helpers.remove_specks(without, 0.02))
    assert helpers.CRFSettings().min_region == pytest.approx(0.02)
    for bad in (1.0, -0.1, "x"):
        with pytest.raises((TypeError, ValueError), match="CRFSettings.min_region"):
            helpers.CRFSettings(min_region=bad)
