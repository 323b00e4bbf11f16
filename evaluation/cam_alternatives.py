"""The other ways to make Grad-CAM maps of several classes that the benchmark measures helpers against: a
tutorial's per-class loop, pytorch-grad-cam and torchcam (``pip install -r requirements-bench.txt``; without them
:data:`PGC_MISSING` and :data:`TORCHCAM_MISSING` say why). Each takes a loaded model, a photo and the class indices
and returns the maps ``[k, H, W]`` in [0, 1] at the photo's size, upsampled as helpers does
(:func:`helpers.full_size_heatmaps`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

import helpers

try:
    from pytorch_grad_cam import GradCAM as PgcGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    PGC_MISSING = None
except (ImportError, OSError) as err:  # OSError: a shared library of opencv that cannot be loaded
    PgcGradCAM = ClassifierOutputTarget = None
    PGC_MISSING = f"not installed ({type(err).__name__}: {err})"

try:
    from torchcam.methods import GradCAM as TorchcamGradCAM

    TORCHCAM_MISSING = None
except (ImportError, OSError) as err:
    TorchcamGradCAM = None
    TORCHCAM_MISSING = f"not installed ({type(err).__name__}: {err})"


def naive_grad_cams(loaded: helpers.LoadedModel, photo: Image.Image, classes: Sequence[int]) -> torch.Tensor:
    """A tutorial's loop: preprocess once, then per class a fresh forward with grad enabled (a forward hook makes the
    target layer's output a leaf, a tensor hook saves its gradient), ``logit[c].backward()`` stopping at the target
    layer, Grad-CAM ``relu(sum_k mean(dA^k) A^k)``."""
    x = loaded.preprocess(photo).to(loaded.device)
    maps = []
    for c in classes:
        store: dict[str, torch.Tensor] = {}

        def hook(_module, _inputs, output, store=store):
            leaf = output.detach().requires_grad_()
            leaf.register_hook(lambda grad: store.__setitem__("gradient", grad))
            store["activation"] = leaf
            return leaf

        handle = loaded.target_layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                logits = loaded.model(x)
                logits[0, c].backward()
        finally:
            handle.remove()
        weights = store["gradient"].mean(dim=(2, 3), keepdim=True)
        maps.append(torch.relu((weights * store["activation"].detach()).sum(dim=1))[0])  # [h, w]
    return helpers.full_size_heatmaps(torch.stack(maps).cpu(), (photo.height, photo.width))


def pgc_grad_cams(loaded: helpers.LoadedModel, photo: Image.Image, classes: Sequence[int]) -> torch.Tensor:
    """pytorch-grad-cam's ``GradCAM`` in a with-block (hooks released), one call with one ``ClassifierOutputTarget``
    per class. The model is frozen, so the input gets ``requires_grad_()`` (else its backward fails)."""
    if PGC_MISSING:
        raise ImportError(f"pytorch-grad-cam is {PGC_MISSING}: pip install -r requirements-bench.txt")
    x = loaded.preprocess(photo).to(loaded.device).requires_grad_()
    with PgcGradCAM(model=loaded.model, target_layers=[loaded.target_layer]) as cam:
        maps = [torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])) for c in classes]
    return helpers.full_size_heatmaps(torch.cat(maps).float(), (photo.height, photo.width))


def torchcam_grad_cams(loaded: helpers.LoadedModel, photo: Image.Image, classes: Sequence[int]) -> torch.Tensor:
    """torchcam's ``GradCAM`` in a with-block (hooks removed): one forward (the input ``requires_grad_()``), then one
    ``extractor(class_idx=c, scores=scores, retain_graph=...)`` per class (its class lists are per batch sample)."""
    if TORCHCAM_MISSING:
        raise ImportError(f"torchcam is {TORCHCAM_MISSING}: pip install -r requirements-bench.txt")
    x = loaded.preprocess(photo).to(loaded.device).requires_grad_()
    with TorchcamGradCAM(loaded.model, target_layer=loaded.target_layer) as extractor:
        scores = loaded.model(x)
        maps = [
            extractor(class_idx=c, scores=scores, retain_graph=i < len(classes) - 1)[0] for i, c in enumerate(classes)
        ]
    return helpers.full_size_heatmaps(torch.cat(maps).detach().float().cpu(), (photo.height, photo.width))
