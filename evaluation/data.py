"""The data sets: ImageNet box sets, Oxford-IIIT Pets masks and the COCO segmentation set.

Every set is found by one rule (:func:`find_dataset`): ``<data>/<name>`` (``--data``, by default ``../shared/data``
beside the repository), else ``tests/data/<name>``, else it is missing and skipped.

Conventions
- Boxes are ``(x0, y0, x1, y1)`` float pixel edges with ``x1``/``y1`` exclusive, as ``torchvision.ops.box_iou``
  expects. ``None`` stands for "no box" (it hits nothing).
- COCO class ids are 1..80 in ``classes.json`` order, 0 is "no object", 255 "ignore".
- ImageNet label maps hold -1 for background, else the ImageNet-1k class index 0..999.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

import helpers
from helpers import NUM_CLASSES, Box

from . import ROOT

#: The repository's own small copies of the data sets (always present).
TEST_DATA = ROOT / "tests" / "data"
#: The full data sets beside the repository (present in CI, maybe not elsewhere).
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The sets the harness knows, each with the entry (file or folder) whose presence means the set is there.
DATASETS: dict[str, str] = {
    "imagenet_val_227": "annotations.json",  # development boxes, squashed to 227 x 227
    "imagenet_val": "annotations.json",  # test boxes, full size
    "pets_seg": "images",  # development masks
    "coco_seg": "annotations.json",  # development masks and instances
}
NUM_COCO_CLASSES = 80
IGNORE = 255


def find_dataset(name: str, data: str | os.PathLike = SHARED_DATA) -> Path | None:
    """The folder of set ``name`` (a key of :data:`DATASETS`): ``data/name`` if it holds the set's marker entry,
    else ``tests/data/name`` if that does, else None (the set is missing)."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of the data sets {sorted(DATASETS)}, got {name!r}")
    for root in (Path(data) / name, TEST_DATA / name):
        if (root / DATASETS[name]).exists():
            return root
    return None


@dataclass(frozen=True)
class BoxSample:
    """An annotated photo: ImageNet class index and ground-truth boxes (clipped to the photo)."""

    photo: Image.Image
    class_index: int
    boxes: list[Box]
    name: str


class PetsPhoto(NamedTuple):
    """A Pets photo: ``mask`` uint8 ``[H, W]``, 0 background, 1 cat, 2 dog, 255 ignore."""

    name: str
    photo: Image.Image
    mask: np.ndarray


@dataclass(frozen=True)
class CocoInstance:
    """One annotated object: COCO class id 1..80, crowd flag, box in photo pixels (clipped)."""

    class_index: int
    iscrowd: bool
    box: Box


@dataclass(frozen=True)
class CocoPhoto:
    """``labels``: uint8 ``[H, W]`` (0 none, 1..80 COCO class, 255 ignore);
    ``classes_present``: the COCO ids with pixels in ``labels``, ascending."""

    name: str
    photo: Image.Image
    labels: np.ndarray
    classes_present: tuple[int, ...]
    instances: tuple[CocoInstance, ...]


@dataclass(frozen=True)
class CocoSet:
    """The COCO segmentation set with its ImageNet mapping.

    ``class_names``: COCO id -> name (1..80). ``imagenet_of_coco``: COCO id -> the ImageNet
    classes that mean it (only the mappable ids are keys). ``coco_of_imagenet``: int64 ``[1000]``,
    the COCO id of each ImageNet class, 0 where there is none; pickup (717) means both car (3)
    and truck (8): it holds the lower id, 3. ``mappable_coco``: the keys of ``imagenet_of_coco``.
    """

    photos: list[CocoPhoto]
    class_names: dict[int, str]
    imagenet_of_coco: dict[int, tuple[int, ...]]
    coco_of_imagenet: np.ndarray
    mappable_coco: frozenset[int]

    def head(self, limit: int | None) -> CocoSet:
        """The same set with its first ``limit`` photos only (all of them for None)."""
        return self if limit is None else replace(self, photos=self.photos[:limit])


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"No annotation file at {str(path)!r}")
    return json.loads(path.read_text())


def _clip_box(box: Sequence[float], width: int, height: int, where: str) -> Box:
    if len(box) != 4:
        raise ValueError(f"{where}: a box must be [x0, y0, x1, y1], got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    clipped = (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        raise ValueError(f"{where}: box {box!r} is empty once clipped to the {width}x{height} photo")
    return clipped


def load_box_set(root: str | os.PathLike) -> list[BoxSample]:
    """``root/annotations.json`` + ``root/images/`` (``imagenet_val`` or ``imagenet_val_227``):
    photos (RGB) with ImageNet class and boxes ``[x0, y0, x1, y1]``, in the file's order. Boxes are
    clipped to the real photo size (the stored ``imagenet_val`` photos may be a few pixels smaller)."""
    root = Path(root)
    entries = _read_json(root / "annotations.json")
    if not isinstance(entries, list):
        raise ValueError(f"{str(root / 'annotations.json')!r} must hold a list of photos")
    samples = []
    for entry in entries:
        photo = helpers.load_image(root / "images" / entry["file"])
        class_index = int(entry["class_index"])
        if not 0 <= class_index < NUM_CLASSES:
            raise ValueError(f"{entry['file']}: class_index must be in 0..999, got {class_index}")
        boxes = [_clip_box(b, photo.width, photo.height, entry["file"]) for b in entry["boxes_xyxy"]]
        if not boxes:
            raise ValueError(f"{entry['file']}: no ground-truth box")
        samples.append(BoxSample(photo, class_index, boxes, entry["file"]))
    return samples


def load_pets(root: str | os.PathLike) -> list[PetsPhoto]:
    """``root/images/*.jpg`` with ``root/masks/<stem>.png`` -> :class:`PetsPhoto` (name, RGB photo, mask uint8
    ``[H, W]``) sorted by name; mask values 0 background, 1 cat, 2 dog, 255 ignore."""
    root = Path(root)
    paths = sorted((root / "images").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"No *.jpg photos in {str(root / 'images')!r}")
    out = []
    for path in paths:
        mask_path = root / "masks" / f"{path.stem}.png"
        if not mask_path.is_file():
            raise FileNotFoundError(f"No mask for {path.name}: expected {str(mask_path)!r}")
        with Image.open(mask_path) as image:
            mask = np.array(image)
        photo = helpers.load_image(path)
        if mask.shape != (photo.height, photo.width):
            raise ValueError(f"{path.name}: mask {mask.shape} does not match the photo {(photo.height, photo.width)}")
        out.append(PetsPhoto(path.stem, photo, mask))
    return out


def _coco_mapping(raw: object, class_names: Mapping[int, str]) -> tuple[dict[int, tuple[int, ...]], np.ndarray]:
    """``imagenet_to_coco.json`` (``{"coco_to_imagenet": {COCO name: [ImageNet indices]}}``) ->
    (COCO id -> ImageNet indices, COCO id per ImageNet class ``[1000]``, 0 for none, lowest id on a clash)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("coco_to_imagenet"), dict):
        raise ValueError('imagenet_to_coco.json must hold {"coco_to_imagenet": {COCO class name: [ImageNet indices]}}')
    id_of_name = {name: i for i, name in class_names.items()}
    imagenet_of_coco: dict[int, tuple[int, ...]] = {}
    for name, indices in raw["coco_to_imagenet"].items():
        if name not in id_of_name:
            raise ValueError(f"imagenet_to_coco.json names {name!r}, which is not a COCO class of classes.json")
        bad = [i for i in indices if not 0 <= int(i) < NUM_CLASSES]
        if bad:
            raise ValueError(f"imagenet_to_coco.json: {name!r} maps to ImageNet indices outside 0..999: {bad}")
        imagenet_of_coco[id_of_name[name]] = tuple(sorted(int(i) for i in indices))
    coco_of_imagenet = np.zeros(NUM_CLASSES, dtype=np.int64)
    for coco_id in sorted(imagenet_of_coco, reverse=True):  # the lowest COCO id is written last and wins
        coco_of_imagenet[list(imagenet_of_coco[coco_id])] = coco_id
    return dict(sorted(imagenet_of_coco.items())), coco_of_imagenet


def load_coco(root: str | os.PathLike) -> CocoSet:
    """``root`` = ``coco_seg``: ``annotations.json``, ``classes.json``, ``imagenet_to_coco.json``,
    ``images/*.jpg`` and ``labels/*.png`` -> :class:`CocoSet` (photos in the annotation file's order)."""
    root = Path(root)
    classes = _read_json(root / "classes.json")
    class_names = {int(k): v["name"] for k, v in classes.items() if isinstance(v, dict)}
    if sorted(class_names) != list(range(1, NUM_COCO_CLASSES + 1)):
        raise ValueError(f"classes.json must name the COCO classes 1..80, got ids {sorted(class_names)}")
    imagenet_of_coco, coco_of_imagenet = _coco_mapping(_read_json(root / "imagenet_to_coco.json"), class_names)
    photos = []
    for entry in _read_json(root / "annotations.json"):
        photo = helpers.load_image(root / "images" / entry["file"])
        label_path = root / "labels" / entry["label"]
        if not label_path.is_file():
            raise FileNotFoundError(f"No label map for {entry['file']}: expected {str(label_path)!r}")
        with Image.open(label_path) as image:
            labels = np.array(image)
        if labels.shape != (photo.height, photo.width):
            raise ValueError(f"{entry['label']}: label map {labels.shape} does not match the photo")
        present = tuple(sorted(int(c) for c in entry["classes_present"]))
        if any(not 1 <= c <= NUM_COCO_CLASSES for c in present):
            raise ValueError(f"{entry['file']}: classes_present must be COCO ids 1..80, got {present}")
        instances = tuple(
            CocoInstance(
                int(i["class_index"]),
                bool(i["iscrowd"]),
                _clip_box(i["box_xyxy"], photo.width, photo.height, entry["file"]),
            )
            for i in entry["instances"]
        )
        photos.append(CocoPhoto(Path(entry["file"]).stem, photo, labels, present, instances))
    return CocoSet(photos, class_names, imagenet_of_coco, coco_of_imagenet, frozenset(imagenet_of_coco))


def data_summary(data: str | os.PathLike = SHARED_DATA) -> dict[str, object]:
    """Counts of the data sets found by :func:`find_dataset` (photos, boxes, mappable COCO pairs); a missing set
    is skipped."""
    summary: dict[str, object] = {}
    for name in ("imagenet_val", "imagenet_val_227"):
        if (root := find_dataset(name, data)) is not None:
            samples = load_box_set(root)
            summary[name] = {"photos": len(samples), "boxes": sum(len(s.boxes) for s in samples), "root": root}
    if (root := find_dataset("pets_seg", data)) is not None:
        summary["pets_seg"] = {"photos": len(load_pets(root)), "root": root}
    if (root := find_dataset("coco_seg", data)) is not None:
        coco = load_coco(root)
        pairs = sum(len(set(p.classes_present) & coco.mappable_coco) for p in coco.photos)
        summary["coco_seg"] = {
            "photos": len(coco.photos),
            "pairs": sum(len(p.classes_present) for p in coco.photos),
            "mappable_pairs": pairs,
            "mappable_classes": len(coco.mappable_coco),
            "root": root,
        }
    return summary
