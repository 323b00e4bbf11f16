"""Screen of map sources for boxes, on the development photos (not a test; a few minutes on 2 cores).

    python tests/screen_layers.py [N]      # the first N photos of imagenet_val_227 (default: all 800)

For the true class of each photo it computes, from one forward pass (and one backward pass where a
gradient is needed), maps from:

- ``cam224``: CAM of the last stage at 224 (= Grad-CAM there), the plain recipe;
- ``cam320``: the same at a 320 input;
- ``cam_dil``: the last stage at stride 1, dilated (helpers.dilate_lite_last_stage), 14 x 14;
- ``layercam_mid`` / ``gradcam_mid``: LayerCAM (element-wise positive gradients) and Grad-CAM on the
  stage before the last (EfficientNet-Lite0's block 10, 112 x 14 x 14, stride 16);
- fusions: ``fuse_mul`` (cam224 x layercam_mid), ``fuse_mean`` (cam224 + layercam_mid),
  ``fuse_dil_mid`` (cam_dil + layercam_mid), each map normalised to its maximum first;

and prints, for the box rules largest / peak / union, GT-known localization at every threshold and
the best one. It is a screen (the best threshold is chosen on the same photos); the techniques that
pass it are measured properly, with cross-validated thresholds, by python -m evaluation.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # helpers.py and the harness (evaluation)

import helpers as H  # noqa: E402
from evaluation.boxes_masks import THRESHOLDS  # noqa: E402
from evaluation.data import find_dataset  # noqa: E402

DATA = find_dataset("imagenet_val_227")  # the harness's one lookup; None when the shared data is missing
VARIANTS = ["cam224", "cam320", "cam_dil", "layercam_mid", "gradcam_mid", "fuse_mul", "fuse_mean", "fuse_dil_mid"]
RULES = ["largest", "peak", "union"]


def maps_for(loaded: H.LoadedModel, dilated: torch.nn.Module, photo, c: int) -> dict[str, torch.Tensor]:
    """Raw maps of class c from every source, and the top-1 classes at 224, 320 and dilated."""
    model = loaded.model
    store: dict[str, torch.Tensor] = {}
    handles = [
        model.features.blocks[10].register_forward_hook(lambda m, i, o: store.__setitem__("mid", o)),
        model.features.register_forward_hook(lambda m, i, o: store.__setitem__("last", o)),
    ]
    try:
        x = loaded.preprocess(photo, 224).requires_grad_()  # the parameters are frozen: the graph starts here
        with torch.enable_grad():
            logits = model(x)
            grad_mid, _ = torch.autograd.grad(logits[0, c], [store["mid"], store["last"]])
    finally:
        for handle in handles:
            handle.remove()
    last, mid = store["last"][0].detach(), store["mid"][0].detach()
    w = loaded.classifier.weight[c]
    out = {
        "top1": int(logits.argmax()),
        "cam224": torch.einsum("k,khw->hw", w, last),
        "layercam_mid": (grad_mid[0].clamp_min(0) * mid).sum(0),
        "gradcam_mid": torch.einsum("k,khw->hw", grad_mid[0].mean((1, 2)), mid),
    }
    with torch.no_grad(), H.ActivationRecorder(model.features) as recorder:
        out["top1_320"] = int(model(loaded.preprocess(photo, 320)).argmax())
        out["cam320"] = torch.einsum("k,khw->hw", w, recorder.activations[0])
    with torch.no_grad(), H.ActivationRecorder(dilated.features) as recorder:
        out["top1_dil"] = int(dilated(loaded.preprocess(photo, 224)).argmax())
        out["cam_dil"] = torch.einsum("k,khw->hw", w, recorder.activations[0])
    return out


def norm(m: torch.Tensor) -> torch.Tensor:
    m = m.clamp_min(0)
    peak = m.max()
    return m / peak if peak > 0 else m


def up(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def box(heatmap: np.ndarray, t: float, rule: str):
    labels, n = ndimage.label(heatmap >= t * heatmap.max(), structure=np.ones((3, 3)))
    if n == 0:
        return None
    slices = ndimage.find_objects(labels)
    if rule == "union":
        return (
            min(s[1].start for s in slices),
            min(s[0].start for s in slices),
            max(s[1].stop for s in slices),
            max(s[0].stop for s in slices),
        )
    if rule == "largest":
        i = int(np.argmax(np.bincount(labels.ravel())[1:]))
    else:
        i = labels[np.unravel_index(np.argmax(heatmap), heatmap.shape)] - 1
    s = slices[i]
    return (s[1].start, s[0].start, s[1].stop, s[0].stop)


def main() -> None:
    torch.set_num_threads(2)
    if DATA is None:
        raise SystemExit("imagenet_val_227 not found: it is in the shared data (../shared/data) only")
    entries = json.loads((DATA / "annotations.json").read_text())
    entries = entries[: int(sys.argv[1])] if len(sys.argv) > 1 else entries
    loaded = H.load_model("efficientnet_lite0", dilated=False)
    dilated = copy.deepcopy(loaded.model)
    H.dilate_lite_last_stage(dilated.features)
    hits = {(v, r, t): [] for v in VARIANTS for r in RULES for t in THRESHOLDS}
    top1 = {"224": [], "320": [], "dilated": []}
    start = time.time()
    for k, e in enumerate(entries):
        photo = H.load_image(DATA / "images" / e["file"])
        c, size = e["class_index"], (photo.height, photo.width)
        o = maps_for(loaded, dilated, photo, c)
        for key, name in (("224", "top1"), ("320", "top1_320"), ("dilated", "top1_dil")):
            top1[key].append(o[name] == c)
        maps = {v: norm(up(norm(o[v]), size)) for v in VARIANTS[:5]}
        maps["fuse_mul"] = norm(maps["cam224"] * maps["layercam_mid"])
        maps["fuse_mean"] = norm(maps["cam224"] + maps["layercam_mid"])
        maps["fuse_dil_mid"] = norm(maps["cam_dil"] + maps["layercam_mid"])
        gt = e["boxes_xyxy"]
        for v in VARIANTS:
            heatmap = maps[v].numpy()
            for r in RULES:
                for t in THRESHOLDS:
                    b = box(heatmap, t, r)
                    hits[(v, r, t)].append(b is not None and H.best_iou(b, gt) >= 0.5)
        if k % 100 == 0:
            print(f"{k} photos, {time.time() - start:.0f} s", flush=True)
    print("top-1 classification:", {k: f"{np.mean(v):.1%}" for k, v in top1.items()})
    print("GT-known per threshold " + " ".join(f"{t:.2f}" for t in THRESHOLDS))
    for v in VARIANTS:
        for r in RULES:
            accs = {t: np.mean(hits[(v, r, t)]) for t in THRESHOLDS}
            best = max(accs, key=accs.get)
            print(f"{v:14} {r:8} best {accs[best]:.3f} at {best} | " + " ".join(f"{accs[t]:.2f}" for t in THRESHOLDS))


if __name__ == "__main__":
    main()
