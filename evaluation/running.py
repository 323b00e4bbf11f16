"""What every protocol shares to run the model: the one forward-pass helper, the plain label map at another
threshold (:func:`relabel`) and progress bars (timing: :func:`.speed.median_seconds`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import helpers

Item = TypeVar("Item")

#: The input size the classes and probabilities come from (helpers' plain view; detect/segment make one extra
#: forward pass at it when their first map view is another): the oracle classes of the protocols come from it too.
CLASS_SIZE = helpers.INPUT_SIZE[0]


def forward(loaded: helpers.LoadedModel, photo: Image.Image, size: int = CLASS_SIZE) -> Tensor:
    """Logits ``[C]`` of one plain forward pass of ``loaded`` at ``size`` (inference mode, no hooks): the cost unit
    of the protocols and, through :func:`predict`, the scores detect/segment rank by."""
    with torch.inference_mode():
        return loaded.model(loaded.preprocess(photo, size).to(loaded.device))[0]


def predict(loaded: helpers.LoadedModel, photo: Image.Image, size: int = CLASS_SIZE) -> Tensor:
    """Softmax probabilities ``[C]`` of :func:`forward` (as detect/segment score), on the CPU."""
    return forward(loaded, photo, size).softmax(dim=0).cpu()


#: ``input_sizes`` of the protocols' options: fixed sizes, or a rule giving a photo its own sizes (a detail view
#: that follows the photo, :mod:`.detail`).
SizeRule = Callable[[Image.Image], tuple[int, ...]]


def photo_options(options: Mapping[str, object], photo: Image.Image) -> dict[str, object]:
    """The keyword arguments of detect/segment for one ``photo``: ``options`` with an ``input_sizes`` rule
    (a callable ``photo -> sizes``, :data:`SizeRule`) replaced by its sizes for that photo; else ``options``."""
    out = dict(options)
    sizes = out.get("input_sizes")
    if callable(sizes):
        out["input_sizes"] = tuple(sizes(photo))
    return out


def relabel(seg: helpers.Segmentation, threshold: float) -> np.ndarray:
    """The plain label map ``[H, W]`` (int16 numpy, -1 background, else the class index) of ``seg`` at another mask
    ``threshold``, from its stored maps, no new forward pass: ``helpers.plain_label_map``, what
    ``helpers.segment(..., refine=False, threshold=threshold).label_map`` returns."""
    if not isinstance(seg, helpers.Segmentation):
        raise TypeError(f"seg must be a helpers.Segmentation, got {type(seg).__name__}")
    classes = [c for c, _, _ in seg.classes]
    threshold = helpers.check_threshold(threshold)
    return helpers.plain_label_map(seg.cams_low, seg.logits_low, classes, seg.label_map.shape, threshold)


def progress(items: Iterable[Item], description: str, total: int | None = None) -> Iterable[Item]:
    """``items`` with a tqdm progress bar on stderr when stderr is a terminal; unchanged otherwise (CI, logs)."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, total=total, unit="photo")
