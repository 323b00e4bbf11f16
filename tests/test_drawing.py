"""Drawing as users call it: the photo must be the one the results were made for (an EXIF-rotated JPEG opened with
Image.open is not), boxes as lists, arrays or tensors with None among them, columns checked, no figure left open when
a call fails, a batch result refused, distinct colours for any number of classes.

Expected values are hand-built (pixels of a drawn box, tab10's colours from matplotlib) or come from the plain call
(a list of boxes for an array of boxes).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

import helpers

FAST = {"input_sizes": 224, "flip": False}
WRONG_PHOTO = r"image is 96x64 \(H x W\) but the {} are for a 64x96 photo: .*helpers\.load_image, which applies EXIF"


@pytest.fixture(scope="module")
def photo(chihuahua) -> Image.Image:
    """96 wide, 64 high."""
    return chihuahua.resize((96, 64))


@pytest.fixture(scope="module")
def detections(lite, photo) -> list[helpers.Detection]:
    return helpers.detect(lite, photo, topk=3, **FAST)


@pytest.fixture(scope="module")
def seg(lite, photo) -> helpers.Segmentation:
    return helpers.segment(lite, photo, topk=3, refine=False, **FAST)


@pytest.fixture
def no_new_figure():
    """The test's calls leave no figure open."""
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


# ---- the photo must match the results ----


@pytest.mark.usefixtures("no_new_figure")
def test_plot_detections_on_another_size_photo_raises(photo, detections):
    turned = photo.transpose(Image.Transpose.ROTATE_90)  # 64 wide, 96 high
    with pytest.raises(ValueError, match=WRONG_PHOTO.format("detections")):
        helpers.plot_detections(turned, detections)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=WRONG_PHOTO.format("detections")):
        helpers.show_detection(ax, turned, detections[0])
    with pytest.raises(TypeError, match=r"detection must be a Detection \(one of detect's results\), got list"):
        helpers.show_detection(ax, photo, detections)
    plt.close(fig)


@pytest.mark.usefixtures("no_new_figure")
def test_segmentation_drawings_on_another_size_photo_raise(photo, seg):
    turned = photo.transpose(Image.Transpose.ROTATE_90)
    message = WRONG_PHOTO.format("segmentation's labels")
    with pytest.raises(ValueError, match=message):
        helpers.plot_segmentation(turned, seg)
    with pytest.raises(ValueError, match=message):
        helpers.blend_segmentation(turned, seg)


def test_exif_rotated_jpeg_is_drawn_with_load_image(lite, photo, tmp_path):
    """A JPEG stored on its side with EXIF orientation 6: detect(path) sees it upright, Image.open does not."""
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    photo.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    found = helpers.detect(lite, path, topk=2, **FAST)
    with Image.open(path) as raw:
        with pytest.raises(ValueError, match=WRONG_PHOTO.format("detections")):
            helpers.plot_detections(raw, found)
    fig = helpers.plot_detections(helpers.load_image(path), found)
    titles = [f"#{rank} {d.label} ({d.score:.1%})" for rank, d in enumerate(found, 1)]
    assert [ax.get_title() for ax in fig.axes[:2]] == titles
    plt.close(fig)


# ---- draw_boxes ----


def test_draw_boxes_draws_exclusive_edges():
    black = Image.new("RGB", (16, 12))
    out = helpers.draw_boxes(black, [(2, 3, 10, 8)], colors="red", width=1)
    red, inside = out[[3, 3, 7, 7], [2, 9, 2, 9]], out[4:7, 3:9]
    assert (red == (255, 0, 0)).all() and (inside == 0).all()
    assert (out[:, 10:] == 0).all() and (out[8:] == 0).all()  # x1 = 10 and y1 = 8 are outside the box


def test_draw_boxes_skips_none_with_its_label_and_colour(photo):
    want = helpers.draw_boxes(photo, [(5, 5, 40, 30)], labels=["dog"], colors=["blue"])
    got = helpers.draw_boxes(photo, [None, (5, 5, 40, 30)], labels=["nothing", "dog"], colors=["red", "blue"])
    assert np.array_equal(got, want)
    assert np.array_equal(helpers.draw_boxes(photo, [None]), np.asarray(photo))


def test_draw_boxes_of_detections_without_a_box(photo, detections):
    boxes = [d.box for d in detections] + [None]
    labels = [d.label for d in detections] + ["no box"]
    kept = [i for i, b in enumerate(boxes) if b is not None]
    want = helpers.draw_boxes(photo, [boxes[i] for i in kept], labels=[labels[i] for i in kept])
    assert np.array_equal(helpers.draw_boxes(photo, boxes, labels=labels), want)


@pytest.mark.parametrize("as_array", [np.array, torch.tensor, lambda b: torch.tensor(b, dtype=torch.int64)])
def test_draw_boxes_takes_arrays_and_tensors(photo, as_array):
    boxes = [(5.0, 5.0, 40.0, 30.0), (50.0, 10.0, 90.0, 60.0)]
    assert np.array_equal(helpers.draw_boxes(photo, as_array(boxes)), helpers.draw_boxes(photo, boxes))


def test_draw_boxes_wrong_shape_raises(photo):
    with pytest.raises(ValueError, match=r"boxes must be \[n, 4\]"):
        helpers.draw_boxes(photo, np.zeros((2, 3)))


# ---- columns, failures, batch results ----


@pytest.mark.usefixtures("no_new_figure")
@pytest.mark.parametrize(("columns", "error"), [(0, ValueError), (-2, ValueError), (2.5, TypeError), ("3", TypeError)])
def test_bad_columns_raise(photo, detections, columns, error):
    with pytest.raises(error, match=r"columns must be an int >= 1"):
        helpers.plot_detections(photo, detections, columns=columns)


def test_columns_make_the_grid(photo, detections):
    fig = helpers.plot_detections(photo, detections, columns=2)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 2 * 2 + 1 and len(panels) == 3  # a 2 x 2 grid, one empty panel, one colour bar
    plt.close(fig)


@pytest.mark.usefixtures("no_new_figure")
def test_batch_result_is_refused(lite, photo):
    batch = helpers.detect(lite, [photo, photo], topk=2, **FAST)
    with pytest.raises(ValueError, match=r"a batch result: draw one photo at a time, plot_detections\(photos\[i\]"):
        helpers.plot_detections(photo, batch)
    with pytest.raises(ValueError, match=r"non-empty list of Detection"):
        helpers.plot_detections(photo, [])


@pytest.mark.usefixtures("no_new_figure")
def test_failure_while_drawing_closes_the_figure(photo, detections, seg, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(helpers, "show_detection", broken)
    monkeypatch.setattr(helpers, "segmentation_legend", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        helpers.plot_detections(photo, detections)
    with pytest.raises(RuntimeError, match="drawing failed"):
        helpers.plot_segmentation(photo, seg)


@pytest.mark.usefixtures("no_new_figure")
def test_bad_alpha_leaves_no_figure(photo, seg):
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        helpers.plot_segmentation(photo, seg, alpha=2)


# ---- colours ----


def test_first_ten_colours_are_tab10():
    tab10 = [tuple(round(255 * v) for v in c) for c in colormaps["tab10"].colors]
    assert helpers.class_colors(10) == tab10


def test_colours_are_distinct_and_fixed_by_rank():
    colors = helpers.class_colors(1000)  # the largest topk of an ImageNet-1k model
    assert len(set(colors)) == 1000
    assert all(0 <= v <= 255 for c in colors for v in c)
    assert helpers.class_colors(12) == colors[:12]


def test_top_12_segmentation_has_12_colours():
    """A hand-built 12-class map: the label map panel and the legend show 12 different colours."""
    label_map = np.repeat(np.arange(12) * 10, 4).reshape(6, 8)
    classes = [(10 * i, f"class {i}", 0.05) for i in range(12)]
    seg = helpers.Segmentation(label_map, classes, torch.zeros(12, 2, 2), torch.zeros(12, 2, 2))
    fig = helpers.plot_segmentation(Image.new("RGB", (8, 6)), seg)
    label_rgb = fig.axes[1].images[0].get_array()
    assert len({tuple(p) for p in np.asarray(label_rgb).reshape(-1, 3)}) == 12
    legend = fig.axes[1].get_legend().get_patches()
    assert len({tuple(p.get_facecolor()) for p in legend}) == 12
    plt.close(fig)
