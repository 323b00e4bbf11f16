"""Detection and Segmentation as values: compared by content, hashable, pickled compactly, a read-only heatmap, and
label maps in the smallest integer type that holds -1 and the class indices (int16 for ImageNet-1k)."""

import pickle

import numpy as np
import pytest
import torch

import helpers

FAST = {"input_sizes": 224}


@pytest.fixture(scope="module")
def photo(chihuahua):
    return chihuahua.resize((96, 64))


def test_detections_compare_by_content(lite, photo):
    first = helpers.detect(lite, photo, topk=3, **FAST)
    again = helpers.detect(lite, photo, topk=3, **FAST)
    assert first == again and first[0] is not again[0]
    assert again[1] in first and first[0] != first[1]
    assert len({*first, *again}) == 3  # equal detections hash alike
    assert first[0] != "not a detection"
    moved = helpers.replace(first[0], cam=first[0].cam + 1e-3)  # a map that differs in value only
    assert moved != first[0] and moved not in first


def test_segmentations_compare_by_content(lite, photo):
    seg = helpers.segment(lite, photo, topk=2, **FAST)
    again = helpers.segment(lite, photo, topk=2, **FAST)
    assert seg == again and seg in [again] and hash(seg) == hash(again)
    assert len({seg, again}) == 1
    relabelled = helpers.replace(seg, label_map=np.where(seg.label_map == -1, seg.classes[0][0], seg.label_map))
    assert relabelled != seg
    assert seg != helpers.segment(lite, photo, topk=2, refine=False, **FAST)


def test_heatmap_is_read_only(lite, photo):
    (detection,) = helpers.detect(lite, photo, topk=1, **FAST)
    expected = detection.heatmap.copy()
    with pytest.raises(ValueError, match="read-only"):
        detection.heatmap[:] = 0
    assert np.array_equal(detection.heatmap, expected)


def test_one_detection_of_a_top_100_call_pickles_as_small_as_a_top_1(lite, photo):
    (top1,) = helpers.detect(lite, photo, topk=1, **FAST)
    top100 = helpers.detect(lite, photo, topk=100, **FAST)
    assert top100[0] == top1
    assert len(pickle.dumps(top100[0])) == len(pickle.dumps(top1))
    assert top100[0].cam.untyped_storage().nbytes() == top1.cam.numel() * top1.cam.element_size()


def test_pickling_round_trips(lite, photo):
    detections = helpers.detect(lite, photo, topk=2, **FAST)
    seg = helpers.segment(lite, photo, topk=2, **FAST)
    size = len(pickle.dumps(detections[0]))
    assert detections[0].heatmap.shape == (64, 96) and seg.cams.shape == (2, 64, 96)  # cached on access ...
    assert len(pickle.dumps(detections[0])) == size  # ... and not pickled
    loaded, loaded_seg = pickle.loads(pickle.dumps((detections, seg)))
    assert loaded == detections and loaded_seg == seg
    assert np.array_equal(loaded[0].heatmap, detections[0].heatmap)
    assert torch.equal(loaded_seg.cams, seg.cams)


@pytest.mark.parametrize("refine", [False, True])
def test_label_map_is_int16_for_imagenet(lite, photo, refine):
    seg = helpers.segment(lite, photo, topk=3, refine=refine, **FAST)
    assert seg.label_map.dtype == np.int16
    assert set(np.unique(seg.label_map).tolist()) <= {-1, *(c for c, _, _ in seg.classes)}
    assert helpers.refine_label_map(photo, seg).dtype == np.int16


def test_label_map_dtype_holds_the_class_indices(photo):
    masks = torch.tensor([[[True, False, False]], [[False, True, False]]])
    label_map = helpers.label_map_by_logit(masks, masks.float(), [3, 999])
    assert label_map.dtype == torch.int16 and label_map.tolist() == [[3, 999, -1]]
    # A model with more classes than int16 holds: the CRF's map of a segmentation by hand, classes 7 and 40000.
    cams = torch.zeros(2, 4, 6)
    cams[0, :, :3], cams[1, :, 3:] = 1.0, 1.0
    seg = helpers.Segmentation(np.full((64, 96), -1, np.int32), [(7, "a", 0.5), (40000, "b", 0.5)], cams, 5 * cams)
    refined = helpers.refine_label_map(photo, seg, settings=helpers.CRFSettings(min_region=0.0))
    assert refined.dtype == np.int32
    assert refined[32, 10] == 7 and refined[32, 85] == 40000


def test_remove_specks_keeps_an_int16_map_and_its_largest_class():
    labels = np.full((30, 30), -1, dtype=np.int16)
    labels[2:22, 2:22] = 32767  # the largest index int16 holds
    labels[25, 25] = 32767  # a one-pixel island
    labels[10, 10] = -1  # a one-pixel hole
    cleaned = helpers.remove_specks(labels, 0.01)
    expected = np.full((30, 30), -1, dtype=np.int16)
    expected[2:22, 2:22] = 32767
    assert cleaned.dtype == np.int16
    assert np.array_equal(cleaned, expected)
