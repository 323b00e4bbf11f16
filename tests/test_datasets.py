"""The data sets of the measuring system (evaluation/data.py): the one lookup, the loaders on the repository's copies,
on tiny hand-made sets and on the shared data when present."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation import data, metrics

DATA = data.TEST_DATA
SHARED = data.SHARED_DATA  # ../shared/data beside the repository: present in CI, maybe not elsewhere
PERSON, CAR, TRUCK, DOG = 1, 3, 8, 17  # COCO ids in classes.json order


def test_find_dataset_prefers_the_data_folder_then_tests_data(tmp_path):
    # Nothing under tmp_path: every set the repository holds comes from tests/data, coco_seg (not there) is missing.
    assert data.find_dataset("imagenet_val", tmp_path) == data.TEST_DATA / "imagenet_val"
    assert data.find_dataset("pets_seg", tmp_path) == data.TEST_DATA / "pets_seg"
    assert not (data.TEST_DATA / "coco_seg").exists() and data.find_dataset("coco_seg", tmp_path) is None
    # A folder without the set's marker is not the set; with it, it wins over tests/data.
    (tmp_path / "imagenet_val").mkdir()
    assert data.find_dataset("imagenet_val", tmp_path) == data.TEST_DATA / "imagenet_val"
    (tmp_path / "imagenet_val" / "annotations.json").write_text("[]")
    assert data.find_dataset("imagenet_val", tmp_path) == tmp_path / "imagenet_val"
    with pytest.raises(ValueError, match="name must be one of the data sets"):
        data.find_dataset("imagenet_train", tmp_path)


def test_coco_head_keeps_the_first_photos():
    coco = data.CocoSet(["a", "b", "c"], {}, {}, np.zeros(1000, dtype=np.int64), frozenset())
    assert coco.head(2).photos == ["a", "b"] and coco.head(None) is coco


def test_data_summary_counts_the_sets_found(tmp_path):
    summary = data.data_summary(tmp_path)  # nothing there: the repository's own copies
    assert summary["imagenet_val"]["photos"] == 60 and summary["imagenet_val"]["boxes"] == 103
    assert summary["pets_seg"]["photos"] == 26
    assert "coco_seg" not in summary and "imagenet_val_227" not in summary


def test_load_box_set_imagenet_val():
    samples = data.load_box_set(DATA / "imagenet_val")
    annotations = json.loads((DATA / "imagenet_val" / "annotations.json").read_text())
    assert len(samples) == 60
    assert sum(len(s.boxes) for s in samples) == 103
    assert [s.name for s in samples] == [a["file"] for a in annotations]
    clipped = 0
    for sample, entry in zip(samples, annotations, strict=True):
        assert isinstance(sample, data.BoxSample)
        assert sample.photo.mode == "RGB"
        assert sample.class_index == entry["class_index"]
        for box, raw in zip(sample.boxes, entry["boxes_xyxy"], strict=True):
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= sample.photo.width and 0 <= y0 < y1 <= sample.photo.height, (sample.name, box)
            clipped += tuple(box) != tuple(float(v) for v in raw)
    assert clipped > 0  # some stored boxes run past the (cropped) photos: they were clipped


def test_load_pets():
    samples = data.load_pets(DATA / "pets_seg")
    assert len(samples) == 26
    assert [name for name, _, _ in samples] == sorted(name for name, _, _ in samples)
    for name, photo, mask in samples:
        assert photo.mode == "RGB"
        assert mask.shape == (photo.height, photo.width) and mask.dtype == np.uint8, name
        assert set(np.unique(mask).tolist()) <= {0, 1, 2, 255}, name
        assert (mask == 1).any() or (mask == 2).any(), name  # every photo has a cat or a dog


def write_box_set(root: Path, boxes: list) -> None:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (20, 10), (200, 100, 50)).save(root / "images" / "a.png")
    entry = {"file": "a.png", "width": 24, "height": 10, "class_index": 3, "boxes_xyxy": boxes}
    (root / "annotations.json").write_text(json.dumps([entry]))


def test_load_box_set_clips_to_real_photo(tmp_path):
    # The photo is 20x10 though the annotation says 24 wide: (-2, 1, 23, 12) -> (0, 1, 20, 10).
    write_box_set(tmp_path, [[-2, 1, 23, 12], [3, 2, 5, 4]])
    (sample,) = data.load_box_set(tmp_path)
    assert sample.boxes == [(0.0, 1.0, 20.0, 10.0), (3.0, 2.0, 5.0, 4.0)]
    assert (sample.class_index, sample.name, sample.photo.size) == (3, "a.png", (20, 10))


def test_load_box_set_bad_data_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations\.json"):
        data.load_box_set(tmp_path)
    write_box_set(tmp_path, [[21, 0, 23, 5]])  # entirely right of the 20 px photo
    with pytest.raises(ValueError, match="empty once clipped"):
        data.load_box_set(tmp_path)


def write_coco_set(root: Path, label_size=(4, 3)) -> None:
    """A one-photo COCO set: photo 4x3, labels with a dog, a person and an ignored pixel."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = ["person", "bicycle", "car"] + [f"class{i}" for i in range(4, 8)] + ["truck"]
    names += [f"class{i}" for i in range(9, 16)] + ["cat", "dog"] + [f"class{i}" for i in range(18, 81)]
    classes = {"0": "unlabeled", "255": "ignore"} | {str(i): {"name": n} for i, n in enumerate(names, start=1)}
    (root / "classes.json").write_text(json.dumps(classes))
    mapping = {"about": "test", "coco_to_imagenet": {"dog": [208, 207], "car": [717, 407], "truck": [555, 717]}}
    (root / "imagenet_to_coco.json").write_text(json.dumps(mapping))
    Image.new("RGB", (4, 3)).save(root / "images" / "p.jpg")
    labels = np.zeros(label_size[::-1], np.uint8)
    labels[0, :2], labels[2, 3], labels[1, 0] = DOG, PERSON, 255
    Image.fromarray(labels).save(root / "labels" / "p.png")
    instance = {"class_index": DOG, "name": "dog", "iscrowd": 0, "box_xyxy": [0, 0, 2.5, 9]}
    entry = {"file": "p.jpg", "label": "p.png", "classes_present": [DOG, PERSON], "instances": [instance]}
    (root / "annotations.json").write_text(json.dumps([entry]))


def test_load_coco_hand_made(tmp_path):
    write_coco_set(tmp_path)
    coco = data.load_coco(tmp_path)
    assert coco.class_names[DOG] == "dog" and coco.class_names[TRUCK] == "truck" and len(coco.class_names) == 80
    assert coco.imagenet_of_coco == {CAR: (407, 717), TRUCK: (555, 717), DOG: (207, 208)}
    assert coco.mappable_coco == {CAR, TRUCK, DOG}
    assert coco.coco_of_imagenet.shape == (1000,)
    # Pickup (717) is a car and a truck: the table holds the lower id, car.
    assert {i: int(coco.coco_of_imagenet[i]) for i in np.flatnonzero(coco.coco_of_imagenet)} == {
        207: DOG,
        208: DOG,
        407: CAR,
        555: TRUCK,
        717: CAR,
    }
    (photo,) = coco.photos
    assert (photo.name, photo.photo.size, photo.classes_present) == ("p", (4, 3), (PERSON, DOG))
    assert photo.labels.tolist() == [[DOG, DOG, 0, 0], [255, 0, 0, 0], [0, 0, 0, PERSON]]
    assert photo.instances == (data.CocoInstance(DOG, False, (0.0, 0.0, 2.5, 3.0)),)  # box clipped to 3 rows
    # A prediction of dog everywhere: person pixel (2,3) and the 255 pixel are ignored ->
    # truth 2, predicted 10 valid pixels, IoU 2/10.
    assert metrics.coco_pair_ious(np.full((3, 4), DOG), photo.labels, photo.classes_present, coco.mappable_coco) == {
        DOG: pytest.approx(0.2)
    }


def test_load_coco_bad_data_raises(tmp_path):
    write_coco_set(tmp_path, label_size=(5, 3))
    with pytest.raises(ValueError, match="does not match the photo"):
        data.load_coco(tmp_path)
    mapping = {"coco_to_imagenet": {"unicorn": [1]}}
    (tmp_path / "imagenet_to_coco.json").write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match="unicorn"):
        data.load_coco(tmp_path)


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")


@needs_shared
def test_load_box_set_imagenet_val_227():
    samples = data.load_box_set(SHARED / "imagenet_val_227")
    assert len(samples) == 800
    assert sum(len(s.boxes) for s in samples) == 1201
    assert len({s.class_index for s in samples}) == 547  # README says 747 "overall"; the file holds 547
    assert all(s.photo.size == (227, 227) for s in samples)
    assert all(0 <= b[0] < b[2] <= 227 and 0 <= b[1] < b[3] <= 227 for s in samples for b in s.boxes)


@needs_shared
def test_load_coco_shared():
    coco = data.load_coco(SHARED / "coco_seg")
    assert len(coco.photos) == 128
    assert len(coco.mappable_coco) == 63 and PERSON not in coco.mappable_coco
    assert int((coco.coco_of_imagenet > 0).sum()) == 321  # 322 entries, pickup listed twice
    assert coco.coco_of_imagenet[717] == CAR and 717 in coco.imagenet_of_coco[TRUCK]
    assert sum(len(p.classes_present) for p in coco.photos) == 362
    assert sum(len(set(p.classes_present) & coco.mappable_coco) for p in coco.photos) == 257
    for p in coco.photos:
        assert p.labels.shape == (p.photo.height, p.photo.width)
        assert set(np.unique(p.labels).tolist()) - {0, 255} == set(p.classes_present), p.name
