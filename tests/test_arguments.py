"""Arguments as users pass them: flip checked like refine, messages that name the parameter typed, photos as numpy
arrays or tensors, URLs, integer arrays wherever a list of ints is taken, a class listed twice.

Expected results come from the same call with the plain form (a PIL photo, a list of ints); messages are matched on the
parameter's name and what is expected.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_tensor

import helpers

FAST = {"input_sizes": 224, "flip": False}


@pytest.fixture(scope="module")
def photo(chihuahua) -> Image.Image:
    return chihuahua.resize((96, 64))


# ---- flip ----


@pytest.mark.parametrize("flip", ["no", 0, None, 1.0])
@pytest.mark.parametrize("function", ["detect", "segment", "grad_cams"])
def test_flip_must_be_a_bool(lite, photo, function, flip):
    with pytest.raises(TypeError, match=r"flip must be True or False, got"):
        getattr(helpers, function)(lite, photo, class_indices=[151], input_sizes=224, flip=flip)


def test_numpy_bool_flip_is_a_bool(lite, photo):
    want = helpers.grad_cams(lite, photo, [151], flip=True)
    assert torch.equal(helpers.grad_cams(lite, photo, [151], flip=np.bool_(True)), want)


# ---- messages name the parameter typed ----


def test_topk_with_groups_names_topk(lite, photo):
    groups = helpers.imagenet_groups()
    with pytest.raises(ValueError, match=r"topk must be an int in \[1, 570\] \(with groups"):
        helpers.detect(lite, photo, topk=571, groups=groups, **FAST)
    with pytest.raises(TypeError, match=r"topk must be an int"):
        helpers.segment(lite, photo, topk="3", groups=groups, **FAST)


@pytest.mark.parametrize("function", [helpers.detect, helpers.segment])
def test_empty_photo_list_names_image(lite, function):
    with pytest.raises(ValueError, match=r"image must not be an empty list"):
        function(lite, [])


# ---- photos as arrays ----


def as_arrays(photo: Image.Image) -> dict[str, object]:
    rgb = np.asarray(photo)
    return {
        "numpy uint8 HxWx3": rgb,
        "numpy float HxWx3": rgb / 255.0,
        "tensor float 3xHxW": to_tensor(photo),
        "tensor uint8 3xHxW": pil_to_tensor(photo),
    }


def test_array_photos_give_the_photos_maps(lite, photo):
    want = helpers.grad_cams(lite, photo, [151, 281])
    for kind, array in as_arrays(photo).items():
        assert torch.equal(helpers.grad_cams(lite, array, [151, 281]), want), kind


def test_greyscale_array_is_the_greyscale_photo(lite, photo):
    grey = photo.convert("L")
    want = helpers.grad_cams(lite, grey, [151])
    assert torch.equal(helpers.grad_cams(lite, np.asarray(grey), [151]), want)
    assert torch.equal(helpers.grad_cams(lite, to_tensor(grey)[0], [151]), want)


def test_array_photos_in_detect_segment_and_batches(lite, photo):
    array = np.asarray(photo)
    (want,) = helpers.detect(lite, photo, topk=1, **FAST)
    (got,) = helpers.detect(lite, array, topk=1, **FAST)
    assert (got.class_index, got.box) == (want.class_index, want.box)
    batch = helpers.segment(lite, [to_tensor(photo), photo], topk=2, refine=False, **FAST)
    assert np.array_equal(batch[0].label_map, batch[1].label_map)


@pytest.mark.parametrize(
    ("array", "error", "message"),
    [
        (np.zeros((3, 40, 50), np.uint8), ValueError, r"numpy \[H, W, 3\].*got shape \[3, 40, 50\]"),
        (torch.zeros(40, 50, 3), ValueError, r"tensor \[3, H, W\].*got shape \[40, 50, 3\]"),
        (torch.zeros(2, 3, 40, 50), ValueError, r"a batch: a list of photos"),
        (np.full((40, 50, 3), 200.0), ValueError, r"uint8, or float in \[0, 1\].*got float64 values outside"),
        (torch.full((3, 40, 50), -0.5), ValueError, r"uint8, or float in \[0, 1\].*got float32 values outside"),
        (np.full((40, 50, 3), 200, np.int64), ValueError, r"uint8, or float in \[0, 1\].*got int64 values outside"),
    ],
)
def test_bad_array_photos_say_what_is_expected(lite, array, error, message):
    with pytest.raises(error, match=message):
        helpers.detect(lite, array, topk=1, **FAST)


def test_not_a_photo_lists_what_is_accepted(lite):
    with pytest.raises(TypeError, match=r"image must be a photo \(a PIL image, a file path, a numpy array"):
        helpers.detect(lite, 3, **FAST)


# ---- URLs ----


@pytest.mark.parametrize("call", ["load_image", "detect"])
def test_url_says_download_it_first(lite, call):
    url = "https://example.com/photos/dog.jpg"
    with pytest.raises(ValueError, match=r"not URLs: download 'https://example\.com/photos/dog\.jpg' first"):
        helpers.load_image(url) if call == "load_image" else helpers.detect(lite, url)


# ---- integer arrays wherever a sequence of ints is taken ----


@pytest.mark.parametrize("sizes", [np.array([224, 256]), torch.tensor([224, 256]), (np.int64(224), 256)])
def test_integer_array_input_sizes(lite, photo, sizes):
    want = helpers.grad_cams(lite, photo, [151], input_sizes=[224, 256])
    assert torch.equal(helpers.grad_cams(lite, photo, [151], input_sizes=sizes), want)


def test_float_array_input_sizes_are_refused(lite, photo):
    with pytest.raises(ValueError, match=r"input_sizes must hold ints >= 32"):
        helpers.grad_cams(lite, photo, [151], input_sizes=np.array([224.0]))


@pytest.mark.parametrize("indices", [np.array([[151, 3], [281, 5]]), torch.tensor([[151, 3], [281, 5]])])
def test_2d_class_indices_for_a_batch(lite, photo, indices):
    photos = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    want = helpers.grad_cams(lite, photos, [[151, 3], [281, 5]])
    got = helpers.grad_cams(lite, photos, indices)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_2d_class_indices_for_one_photo_are_refused(lite, photo):
    with pytest.raises(TypeError, match=r"each entry of class_indices must be an int"):
        helpers.grad_cams(lite, photo, np.array([[151, 3]]))


# ---- a class listed twice ----


@pytest.mark.parametrize("function", ["detect", "segment", "grad_cams"])
def test_duplicate_class_indices_are_refused(lite, photo, function):
    with pytest.raises(ValueError, match=r"class_indices must list each class once, got \[151, 3, 151\]"):
        getattr(helpers, function)(lite, photo, class_indices=[151, 3, 151], input_sizes=224)


def test_duplicate_class_indices_in_a_batch_name_the_photo(lite, photo):
    with pytest.raises(ValueError, match=r"class_indices\[1\] must list each class once, got \[5, 5\]"):
        helpers.segment(lite, [photo, photo], class_indices=np.array([[1, 5], [5, 5]]), **FAST)
