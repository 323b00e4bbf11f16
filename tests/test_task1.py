"""Task 1: Grad-CAM heatmaps, boxes from heatmaps, model loading and the detector end to end."""

import contextlib
import inspect
import io
import json
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import helpers

# --------------------------------------------------------------------------------------------
# Independent reference computations (plain loops / numpy, no helpers)
# --------------------------------------------------------------------------------------------


def reference_grad_cam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM of one [K, h, w] pair with explicit loops: alpha_k = mean_ij dY/dA_kij,
    map = ReLU(sum_k alpha_k A_k), divided by its maximum (all zeros when the maximum is 0)."""
    channels, height, width = activations.shape
    cam = np.zeros((height, width), dtype=np.float64)
    for k in range(channels):
        alpha = 0.0
        for i in range(height):
            for j in range(width):
                alpha += float(gradients[k, i, j])
        alpha /= height * width
        for i in range(height):
            for j in range(width):
                cam[i, j] += alpha * float(activations[k, i, j])
    cam = np.maximum(cam, 0.0)
    peak = cam.max()
    return cam / peak if peak > 0 else cam


def independent_low_grad_cam(loaded: helpers.LoadedModel, batch: torch.Tensor, class_index: int) -> torch.Tensor:
    """Grad-CAM [h, w] of one class for one input [1, 3, S, S], with its own hook and its own
    forward and backward pass, normalised by its maximum."""
    store = {}

    def hook(_module, _inputs, output):
        store["A"] = output

    handle = loaded.target_layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # The parameters are frozen: an input that requires grad puts the layer output in the graph.
            x = batch.clone().requires_grad_(True)
            logits = loaded.model(x)
            (grad,) = torch.autograd.grad(logits[0, class_index], store["A"])
    finally:
        handle.remove()
    activations, gradients = store["A"].detach()[0], grad[0]
    _, height, width = gradients.shape
    alpha = gradients.sum(dim=(1, 2)) / (height * width)
    cam = torch.zeros(height, width)
    for k in range(alpha.shape[0]):
        cam += alpha[k] * activations[k]
    cam = cam.clamp_min(0)
    return cam / cam.max()


def resize(maps: torch.Tensor, size) -> torch.Tensor:
    """[h, w] -> [H, W], bilinear with align_corners=False."""
    return F.interpolate(maps[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def independent_grad_cam(loaded: helpers.LoadedModel, image, class_index: int, sizes=(224,), flip=False):
    """Grad-CAM of one class at the photo's size [H, W]: one view per input side (and its mirror
    image with ``flip``), each its own forward+backward; mirrored maps are flipped back, all maps
    resized to the largest grid, averaged and renormalised; then bilinear (align_corners=False)
    to the photo and renormalised by the maximum."""
    maps = []
    for side in sizes:
        for mirrored in (False, True) if flip else (False,):
            batch = loaded.preprocess(image, side)
            low = independent_low_grad_cam(loaded, batch.flip(-1) if mirrored else batch, class_index)
            maps.append(low.flip(-1) if mirrored else low)
    if len(maps) > 1:
        grid = max((m.shape for m in maps), key=lambda hw: hw[0] * hw[1])
        mean = torch.stack([resize(m, grid) for m in maps]).mean(dim=0).clamp_min(0)
        low = mean / mean.max()
    else:
        low = maps[0]
    up = resize(low, (image.height, image.width))
    return up / up.max()


def iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes with exclusive ends, by plain arithmetic."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def no_forward_hooks(model: nn.Module) -> bool:
    return all(len(m._forward_hooks) == 0 for m in model.modules())


# --------------------------------------------------------------------------------------------
# calculate_grad_cam
# --------------------------------------------------------------------------------------------


def test_calculate_grad_cam_single_map_matches_loops():
    generator = torch.Generator().manual_seed(1)
    activations = torch.randn(6, 5, 4, generator=generator, dtype=torch.float64)
    gradients = torch.randn(6, 5, 4, generator=generator, dtype=torch.float64)
    # The ReLU must matter for this case: the weighted sum has negative and positive pixels.
    raw = np.einsum("k,khw->hw", gradients.numpy().mean(axis=(1, 2)), activations.numpy())
    assert raw.min() < 0 < raw.max()

    got = helpers.calculate_grad_cam(activations, gradients)
    expected = reference_grad_cam(activations.numpy(), gradients.numpy())
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    assert float(got.max()) == pytest.approx(1.0)


def test_calculate_grad_cam_batch_matches_loops_per_item():
    generator = torch.Generator().manual_seed(2)
    activations = torch.rand(3, 8, 4, 6, generator=generator)  # non-negative, like post-ReLU features
    gradients = torch.randn(3, 8, 4, 6, generator=generator)
    got = helpers.calculate_grad_cam(activations, gradients)
    assert got.shape == (3, 4, 6)
    for b in range(3):
        expected = reference_grad_cam(activations[b].numpy(), gradients[b].numpy())
        np.testing.assert_allclose(got[b].numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("activations", "gradients"),
    [
        (torch.zeros(4, 3, 3), torch.zeros(4, 3, 3)),  # all zero
        (torch.ones(4, 3, 3), -torch.ones(4, 3, 3)),  # weighted sum negative everywhere
        (torch.ones(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)),  # batched, zero gradient
    ],
)
def test_calculate_grad_cam_without_positive_evidence_is_zero_not_nan(activations, gradients):
    got = helpers.calculate_grad_cam(activations, gradients)
    assert not torch.isnan(got).any()
    assert torch.equal(got, torch.zeros(activations.shape[:-3] + activations.shape[-2:]))


def test_calculate_grad_cam_shape_mismatch_raises():
    with pytest.raises(ValueError):
        helpers.calculate_grad_cam(torch.rand(4, 3, 3), torch.rand(4, 3, 2))
    with pytest.raises(ValueError):
        helpers.calculate_grad_cam(torch.rand(2, 4, 3, 3), torch.rand(4, 3, 3))


# --------------------------------------------------------------------------------------------
# grad_cams: batched backward vs one backward per class
# --------------------------------------------------------------------------------------------


# The input views grad_cams/detect use by default (the first side, unflipped, gives the class scores).
DEFAULT_VIEWS = (tuple(helpers.DEFAULT_INPUT_SIZES), bool(helpers.DEFAULT_FLIP))


@pytest.mark.parametrize(
    ("sizes", "flip", "count"),
    [((224,), False, 5), (DEFAULT_VIEWS[0], DEFAULT_VIEWS[1], 5), ((320, 256), True, 2)],
    ids=["224", "default", "320+256-flip"],
)
def test_grad_cams_batched_matches_one_backward_per_class(lite, chihuahua, chihuahua_probabilities, sizes, flip, count):
    classes = chihuahua_probabilities.topk(count).indices.tolist()
    maps = helpers.grad_cams(lite, chihuahua, classes, input_sizes=sizes, flip=flip)
    assert maps.shape == (count, chihuahua.height, chihuahua.width)
    for row, c in enumerate(classes):
        expected = independent_grad_cam(lite, chihuahua, c, sizes, flip)
        diff = float((maps[row] - expected).abs().max())
        assert diff < 1e-5, f"class {c}: max abs diff {diff}"
    # The maps differ between classes, so a mix-up of the per-class seeds would be caught.
    assert float((maps[0] - maps[1]).abs().max()) > 1e-2
    assert all(p.grad is None for p in lite.model.parameters())
    assert no_forward_hooks(lite.model)


# --------------------------------------------------------------------------------------------
# LayerRecorder
# --------------------------------------------------------------------------------------------


def tiny_net() -> nn.Sequential:
    """x [B, 2] -> first: a = x @ W0^T + b0 -> second: y = a @ [2, -3]^T + 0.5."""
    first, second = nn.Linear(2, 2), nn.Linear(2, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5]]))
        first.bias.copy_(torch.tensor([0.25, -1.0]))
        second.weight.copy_(torch.tensor([[2.0, -3.0]]))
        second.bias.fill_(0.5)
    return nn.Sequential(first, second)


def test_layer_recorder_records_activations_and_gradients():
    net = tiny_net()
    x = torch.tensor([[1.0, 1.0], [0.0, 2.0], [-1.0, 3.0]])
    with helpers.LayerRecorder(net[0]) as recorder, torch.enable_grad():
        out = net(x)
        out.sum().backward()
    # a = x @ W0^T + b0, by hand: [1+2+0.25, -1+0.5-1], [0+4+0.25, 0+1-1], [-1+6+0.25, 1+1.5-1]
    expected_a = torch.tensor([[3.25, -1.5], [4.25, 0.0], [5.25, 1.5]])
    torch.testing.assert_close(recorder.activations.detach(), expected_a)
    # d(sum_b y_b)/d a_b = the second layer's weight row [2, -3] for every sample.
    torch.testing.assert_close(recorder.gradients, torch.tensor([[2.0, -3.0]] * 3))
    # The output itself is unchanged by the recording: y = a @ [2, -3] + 0.5.
    torch.testing.assert_close(out.detach(), expected_a @ torch.tensor([[2.0], [-3.0]]) + 0.5)
    assert recorder.calls == 1
    assert len(net[0]._forward_hooks) == 0


def test_layer_recorder_removes_hooks_when_block_raises():
    net = tiny_net()
    with pytest.raises(KeyError), helpers.LayerRecorder(net[0]) as recorder:
        net(torch.ones(1, 2))
        assert len(net[0]._forward_hooks) == 1  # active inside the block
        raise KeyError("boom")
    assert recorder.calls == 1
    assert len(net[0]._forward_hooks) == 0
    assert no_forward_hooks(net)


def test_layer_recorder_counts_a_layer_that_runs_twice():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(3, 3)

        def forward(self, x):
            return self.shared(torch.relu(self.shared(x)))

    net = Twice()
    with helpers.LayerRecorder(net.shared) as recorder:
        net(torch.ones(2, 3))
    assert recorder.calls == 2
    assert len(net.shared._forward_hooks) == 0


def test_grad_cams_refuses_a_target_layer_that_runs_twice(chihuahua):
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Conv2d(3, 3, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(3, 1000)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.shared(self.shared(x))), 1))

    net = Twice().eval()
    loaded = helpers.LoadedModel(
        model=net,
        name="twice",
        source="test",
        categories=tuple(str(i) for i in range(1000)),
        target_layer=net.shared,
        classifier=net.fc,
        preprocess=lambda image, size=224: torch.zeros(1, 3, 32, 32),
    )
    with pytest.raises(RuntimeError, match="2 times"):
        helpers.grad_cams(loaded, chihuahua, [0])
    assert no_forward_hooks(net)


def test_activation_recorder_under_inference_mode():
    net = tiny_net()
    with torch.inference_mode(), helpers.ActivationRecorder(net[0]) as recorder:
        net(torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(recorder.activations, torch.tensor([[3.25, -1.5]]))
    assert recorder.gradients is None
    assert len(net[0]._forward_hooks) == 0


# --------------------------------------------------------------------------------------------
# heatmap_to_bbox
# --------------------------------------------------------------------------------------------


def test_single_rectangle_box_has_exclusive_ends():
    heatmap = np.zeros((10, 12), dtype=np.float32)
    heatmap[2:5, 3:8] = 1.0  # rows 2..4, cols 3..7
    assert helpers.heatmap_to_bbox(heatmap) == (3.0, 2.0, 8.0, 5.0)


def test_two_blobs_largest_wins():
    heatmap = np.zeros((10, 12))
    heatmap[0:2, 0:2] = 1.0  # 4 pixels, found first in scan order, holding the peak
    heatmap[5:8, 6:10] = 0.9  # 12 pixels
    assert helpers.heatmap_to_bbox(heatmap, threshold=0.5) == (6.0, 5.0, 10.0, 8.0)
    heatmap[5:8, 6:10] = 0.0
    heatmap[5:7, 6:8] = 0.9  # now both have 4 pixels: the first in scan order wins
    assert helpers.heatmap_to_bbox(heatmap, threshold=0.5) == (0.0, 0.0, 2.0, 2.0)


def test_threshold_is_a_fraction_of_the_maximum():
    heatmap = np.zeros((10, 12))
    heatmap[0:3, 0:3] = 0.5  # 9 pixels at half the maximum
    heatmap[6:8, 8:10] = 1.0  # 4 pixels at the maximum
    assert helpers.heatmap_to_bbox(heatmap, threshold=0.6) == (8.0, 6.0, 10.0, 8.0)
    # 0.5 >= 0.5 * max: the weaker, larger region now counts and wins.
    assert helpers.heatmap_to_bbox(heatmap, threshold=0.5) == (0.0, 0.0, 3.0, 3.0)
    # Scaling the map does not move the boxes: the threshold is relative.
    for threshold in (0.5, 0.6, 1.0):
        assert helpers.heatmap_to_bbox(7.0 * heatmap, threshold) == helpers.heatmap_to_bbox(heatmap, threshold)
    assert helpers.heatmap_to_bbox(heatmap, threshold=1.0) == (8.0, 6.0, 10.0, 8.0)


def test_diagonal_neighbours_are_one_component():
    heatmap = np.zeros((6, 6))
    heatmap[1, 1] = heatmap[2, 2] = heatmap[3, 3] = 1.0
    assert helpers.heatmap_to_bbox(heatmap) == (1.0, 1.0, 4.0, 4.0)


@pytest.mark.parametrize("heatmap", [np.zeros((5, 5)), np.full((5, 5), 0.7), -np.ones((5, 5))])
def test_maps_without_a_confident_region_have_no_box(heatmap):
    assert helpers.heatmap_to_bbox(heatmap) is None


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5, float("nan")])
def test_threshold_outside_unit_interval_raises(threshold):
    heatmap = np.eye(4)
    with pytest.raises(ValueError, match="threshold must be in"):
        helpers.heatmap_to_bbox(heatmap, threshold)


def test_tensor_and_numpy_inputs_agree():
    generator = torch.Generator().manual_seed(3)
    heatmap = torch.rand(20, 30, generator=generator)
    for threshold in (0.3, 0.6, 0.9):
        box = helpers.heatmap_to_bbox(heatmap, threshold)
        assert box is not None and box == helpers.heatmap_to_bbox(heatmap.numpy(), threshold)


# --------------------------------------------------------------------------------------------
# load_model: the torch.hub path, without the network
# --------------------------------------------------------------------------------------------


REAL_HUB_LOAD = torch.hub.load


def bind_hub_call(args, kwargs) -> tuple[str, str, object]:
    """(repo_or_dir, model, weights) of a torch.hub.load call, however it was spelled."""
    bound = inspect.signature(REAL_HUB_LOAD).bind(*args, **kwargs)
    extra_args = bound.arguments.get("args", ())
    weights = bound.arguments.get("kwargs", {}).get("weights", extra_args[0] if extra_args else None)
    return bound.arguments["repo_or_dir"], bound.arguments["model"], weights


def test_load_model_asks_torch_hub_for_resnet50(monkeypatch):
    calls = []

    def fake_load(*args, **kwargs):
        model = torchvision.models.resnet50()
        calls.append((args, kwargs, model))
        return model

    monkeypatch.setattr(torch.hub, "load", fake_load)
    loaded = helpers.load_model("resnet50")
    assert len(calls) == 1
    args, kwargs, model = calls[0]
    repo, name, weights = bind_hub_call(args, kwargs)
    assert repo.startswith("pytorch/vision")
    assert name == "resnet50"
    assert weights == "IMAGENET1K_V1"
    assert loaded.model is model
    assert loaded.target_layer is model.layer4
    assert loaded.classifier is model.fc
    assert len(loaded.categories) == 1000
    assert not model.training and not any(m.training for m in model.modules())


def test_load_model_falls_back_to_stand_in_offline(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in the test")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.warns(helpers.OfflineFallbackWarning):
        loaded = helpers.load_model("resnet50")
    assert loaded.name == "efficientnet_lite0"
    assert "fallback" in loaded.source.lower()
    assert len(loaded.categories) == 1000


def test_load_model_without_fallback_raises_helpful_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in the test")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(RuntimeError) as info:
        helpers.load_model("resnet50", allow_offline_fallback=False)
    message = str(info.value)
    assert "network" in message
    assert "hub/checkpoints/resnet50-0676ba61.pth" in message  # the checkpoint ...
    assert "pytorch_vision_v" in message  # ... and the hub repository: torch.hub needs both offline
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_offline_fallback_warning_names_repository_and_checkpoint(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in the test")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.warns(helpers.OfflineFallbackWarning) as record:
        helpers.load_model("resnet50")
    message = str(record[0].message)
    assert "resnet50-0676ba61.pth" in message and "pytorch_vision_v" in message and "$TORCH_HOME/hub" in message


def test_resnet50_architecture_offline_is_torchvisions_resnet50(monkeypatch):
    def offline(*args, **kwargs):
        print("Downloading: something")  # the hub prints; resnet50_architecture must stay quiet
        raise urllib.error.URLError("no network in the test")

    monkeypatch.setattr(torch.hub, "load", offline)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model, note = helpers.resnet50_architecture()
    assert out.getvalue() == ""
    assert isinstance(model, torchvision.models.ResNet) and not model.training
    assert repr(model) == repr(torchvision.models.resnet50())  # the module tree torch.hub builds
    assert "without weights" in note and "resnet50-0676ba61.pth" in note


def test_resnet50_architecture_online_uses_the_hub_model(monkeypatch):
    built = torchvision.models.resnet50()
    monkeypatch.setattr(torch.hub, "load", lambda *args, **kwargs: built)
    model, note = helpers.resnet50_architecture()
    assert model is built and note.startswith("torch.hub pytorch/vision")


def test_layer_recorder_on_resnet50_layer4_shapes():
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    with helpers.LayerRecorder(model.layer4) as recorder:
        model(torch.zeros(1, 3, 224, 224))[0, 151].backward()
    assert tuple(recorder.activations.shape) == (1, 2048, 7, 7)
    assert tuple(recorder.gradients.shape) == (1, 2048, 7, 7)
    # Pooling then linear: dy/dA = w_c / (h w) at every position.
    expected = model.fc.weight[151][:, None, None].expand(-1, 7, 7) / 49
    assert torch.allclose(recorder.gradients[0], expected, atol=1e-7)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), None])
def test_load_model_on_a_device(device, chihuahua):
    loaded = helpers.load_model("efficientnet_lite0", device=device)
    assert loaded.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    detections = helpers.detect(loaded, chihuahua, topk=1, input_sizes=224, flip=False)
    assert detections[0].label == "Chihuahua"


@pytest.mark.parametrize("device", ["gpu0", 3.5])
def test_load_model_bad_device_raises(device):
    with pytest.raises(ValueError, match="device must be"):
        helpers.load_model("efficientnet_lite0", device=device)


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.763, "76.3%"), (0.001, "0.1%"), (0.0002, "2.0e-04"), (0.00099, "9.9e-04"), (0.0, "0.0e+00"), (1.0, "100.0%")],
)
def test_format_probability(p, text):
    assert helpers.format_probability(p) == text


@pytest.mark.parametrize(
    ("p", "error"),
    [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError), ("0.5", TypeError), (True, TypeError)],
)
def test_format_probability_bad_input(p, error):
    with pytest.raises(error, match=r"p must .*in \[0, 1\] \(a probability\)"):
        helpers.format_probability(p)


HUBCONF = """
import json
import pathlib

import torchvision

dependencies = ["torch", "torchvision"]


def resnet50(weights=None, **kwargs):
    record = pathlib.Path(__file__).with_name("calls.json")
    record.write_text(json.dumps({"weights": weights, "kwargs": sorted(kwargs)}))
    return torchvision.models.resnet50()
"""


def test_load_model_through_a_real_local_hub_repo(monkeypatch, tmp_path):
    (tmp_path / "hubconf.py").write_text(HUBCONF)
    real_load = torch.hub.load
    asked = []

    def load_locally(repo_or_dir, model, *args, **kwargs):
        # Same call, but from the local directory: torch.hub.load accepts trust_repo and
        # skip_validation for every source and only uses them for source="github".
        asked.append(repo_or_dir)
        return real_load(str(tmp_path), model, *args, **{**kwargs, "source": "local"})

    monkeypatch.setattr(torch.hub, "load", load_locally)
    loaded = helpers.load_model("resnet50", allow_offline_fallback=False)
    assert asked and asked[0].startswith("pytorch/vision")
    record = json.loads((tmp_path / "calls.json").read_text())
    assert record == {"weights": "IMAGENET1K_V1", "kwargs": []}
    assert isinstance(loaded.model, torchvision.models.ResNet)
    assert loaded.target_layer is loaded.model.layer4
    assert loaded.classifier is loaded.model.fc
    assert len(loaded.categories) == 1000 and not loaded.model.training


# --------------------------------------------------------------------------------------------
# describe_model
# --------------------------------------------------------------------------------------------


def table_rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell for cell in line.split("  ") if cell.strip()]
        rows[cells[0].strip()] = [cell.strip() for cell in cells[1:]]
    return rows


def test_describe_model_random_resnet(random_resnet):
    model = random_resnet.model
    rows = table_rows(helpers.describe_model(model))
    kind, shape, params = rows["layer4"]
    assert kind == "Sequential"
    assert shape == "1x2048x7x7"
    expected = 0
    for p in model.layer4.parameters():
        expected += int(np.prod(p.shape))
    assert int(params.replace(",", "")) == expected
    assert rows["conv1"][1] == "1x64x112x112"  # stride-2 7x7 stem on 224x224
    assert rows["fc"][1] == "1x1000"
    # The total is the count torchvision documents for ResNet-50.
    total = int(rows["total"][-1].replace(",", ""))
    assert total == torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["num_params"]
    assert no_forward_hooks(model)


# --------------------------------------------------------------------------------------------
# The detector end to end on the stand-in
# --------------------------------------------------------------------------------------------

# Hand-annotated box of the dog in Chihuahua.jpg (x0, y0, x1, y1; exclusive ends): the nose is
# at x~330, the right ear tip at x~710, the left ear touches the top edge, the body the bottom.
CHIHUAHUA_BOX = (328.0, 0.0, 712.0, 493.0)


@pytest.fixture(scope="module")
def chihuahua_detections(lite, chihuahua) -> list[helpers.Detection]:
    return helpers.detect(lite, chihuahua)


def test_detect_chihuahua_top1_class_and_box(chihuahua_detections):
    detections = chihuahua_detections
    assert len(detections) == 5
    top = detections[0]
    assert top.label == "Chihuahua"
    assert top.box is not None
    overlap = iou(top.box, CHIHUAHUA_BOX)
    assert overlap >= 0.5, f"top-1 box {top.box} has IoU {overlap:.3f} with the hand-annotated box"


def test_detection_heatmap_and_scores(lite, chihuahua_detections, chihuahua_probabilities):
    detections = chihuahua_detections
    heatmap = detections[0].heatmap
    assert isinstance(heatmap, np.ndarray)
    assert heatmap.dtype == np.float32
    assert heatmap.shape == (493, 740)
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert heatmap.max() == pytest.approx(1.0, abs=1e-6)
    probabilities = chihuahua_probabilities
    expected_order = probabilities.topk(5).indices.tolist()
    assert [d.class_index for d in detections] == expected_order
    for d in detections:
        assert d.score == pytest.approx(float(probabilities[d.class_index]), abs=1e-6)
        assert d.label == lite.categories[d.class_index]


def test_detect_with_class_indices_keeps_order(lite, chihuahua, chihuahua_probabilities):
    chosen = [281, 151, 999]  # tabby, Chihuahua, toilet tissue: deliberately not in rank order
    detections = helpers.detect(lite, chihuahua, class_indices=chosen)
    assert [d.class_index for d in detections] == chosen
    assert [d.label for d in detections] == [lite.categories[c] for c in chosen]
    assert lite.categories[151] == "Chihuahua"
    probabilities = chihuahua_probabilities
    for d in detections:
        assert d.score == pytest.approx(float(probabilities[d.class_index]), abs=1e-6)
    # Each detection's heatmap is that class's Grad-CAM (with the default input views).
    expected = independent_grad_cam(lite, chihuahua, 281, *DEFAULT_VIEWS)
    assert float((torch.tensor(detections[0].heatmap) - expected).abs().max()) < 1e-5


def test_detect_scores_come_from_one_224_view_whatever_the_map_views(lite, chihuahua):
    # The class ranking and scores always come from one plain 224 view (the size the classifier was trained at);
    # the map views (here 288 and 224, each also flipped) only make the maps.
    detections = helpers.detect(lite, chihuahua, topk=3, input_sizes=(288, 224), flip=True)
    with torch.no_grad():
        probabilities = lite.model(lite.preprocess(chihuahua, 224)).softmax(dim=1)[0]
    assert [d.class_index for d in detections] == probabilities.topk(3).indices.tolist()
    for d in detections:
        assert d.score == pytest.approx(float(probabilities[d.class_index]), abs=1e-6)


# --------------------------------------------------------------------------------------------
# Box rules, cam_to_boxes, the dilated last stage
# --------------------------------------------------------------------------------------------


def test_heatmap_to_bbox_is_the_largest_component_hand_built(two_blobs):
    assert helpers.heatmap_to_bbox(two_blobs, 0.5) == (1.0, 1.0, 7.0, 6.0)  # the 30 px plateau, not the peak
    # Above 0.6 only the peak region is left.
    assert helpers.heatmap_to_bbox(two_blobs, 0.7) == (9.0, 7.0, 11.0, 9.0)


def test_cam_to_boxes_matches_upsample_then_box():
    """cam_to_boxes = bilinear upsampling to the photo + normalisation + heatmap_to_bbox, per threshold."""
    generator = torch.Generator().manual_seed(3)
    cam = torch.rand(7, 7, generator=generator)
    size = (50, 80)
    full = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    full = full / full.max()
    thresholds = [0.2, 0.5, 0.8]
    expected = [helpers.heatmap_to_bbox(full, t) for t in thresholds]
    assert helpers.cam_to_boxes(cam, size, thresholds) == expected
    assert list(inspect.signature(helpers.cam_to_boxes).parameters) == ["cam", "image_size", "thresholds"]


def test_detect_has_at_most_nine_parameters_the_rare_ones_keyword_only():
    parameters = inspect.signature(helpers.detect).parameters
    assert len(parameters) <= 9
    keyword_only = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only == ["input_sizes", "flip", "groups", "instance_threshold"]


def test_dilated_resnet_layer4_is_torchvisions_dilated_resnet50():
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True]).eval()
    reference.load_state_dict(model.state_dict())
    helpers.dilate_resnet_layer4(model)
    assert repr(model) == repr(reference)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    with helpers.LayerRecorder(model.layer4, gradients=False) as recorder, torch.no_grad():
        model(x)
    assert tuple(recorder.activations.shape) == (1, 2048, 14, 14)


def test_dilated_stand_in_doubles_the_grid_and_keeps_the_prediction(chihuahua):
    dilated = helpers.load_model("efficientnet_lite0", dilated=True)
    lite = helpers.load_model("efficientnet_lite0", dilated=False)
    assert "dilated" in dilated.source and "dilated" not in lite.source
    x = lite.preprocess(chihuahua, 224)
    with helpers.ActivationRecorder(dilated.target_layer) as recorder, torch.no_grad():
        logits = dilated.model(x)
    assert tuple(recorder.activations.shape) == (1, 1280, 14, 14)
    with torch.no_grad():
        plain = lite.model(x)
    assert int(logits.argmax()) == int(plain.argmax()) == 151
    # Pooling then linear still holds: the mean per-pixel logit is the logit.
    cams = helpers.calculate_cam(recorder.activations[0], dilated.classifier.weight, [151])
    assert torch.allclose(cams.mean(dim=(-2, -1)) + dilated.classifier.bias[151], logits[0, 151], atol=1e-4)
    (det,) = helpers.detect(dilated, chihuahua, topk=1, input_sizes=224, flip=False)
    assert tuple(det.cam.shape) == (14, 14)


def test_load_model_dilated_must_be_bool():
    with pytest.raises(TypeError, match="dilated must be"):
        helpers.load_model("efficientnet_lite0", dilated="yes")


def test_detection_rank_counts_the_more_probable_classes(lite, chihuahua, chihuahua_probabilities):
    classes = [151, 158, 1]  # Chihuahua (the top-1), toy terrier, goldfish
    detections = helpers.detect(lite, chihuahua, class_indices=classes)
    for det, c in zip(detections, classes, strict=True):
        assert det.rank == int((chihuahua_probabilities > chihuahua_probabilities[c]).sum())
    assert detections[0].rank == 0 and detections[1].rank >= 1 and detections[2].rank > 100


def test_all_is_the_user_api_and_the_readme_and_evaluation_use_public_names():
    import ast
    import re
    from pathlib import Path

    root = Path(helpers.__file__).resolve().parent
    tree = ast.parse((root / "helpers.py").read_text(encoding="utf-8"))
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    # __all__ is the API a user calls (at most about 40 names): every entry is defined, none twice, no constant or
    # validator; the README uses only these names; the measuring system uses only public names.
    assert set(helpers.__all__) <= public and len(helpers.__all__) == len(set(helpers.__all__))
    assert len(helpers.__all__) <= 40
    assert not [n for n in helpers.__all__ if n.startswith(("check_", "DEFAULT_", "MAX_"))]
    used = set(re.findall(r"\bH\.([A-Za-z_]\w*)", (root / "README.md").read_text(encoding="utf-8")))
    assert used <= set(helpers.__all__)
    for path in sorted((root / "evaluation").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        names = set(re.findall(r"\bhelpers\.([A-Za-z_]\w*)", text)) - {"py"}  # "py": the file name helpers.py
        for imported in re.findall(r"^\s*from helpers import ([\w, ]+)", text, flags=re.MULTILINE):
            names |= {name.strip() for name in imported.split(",")}
        assert names <= public, (path.name, sorted(names - public))


def test_sections_follow_the_sheet():
    from pathlib import Path

    text = Path(helpers.__file__).read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("# ==== ")]
    order = ["Constants", "Task 1.1", "Task 1.3", "Task 1.2", "Task 1.4", "Task 2.1", "Task 2.4", "Beyond the sheet",
             "Drawing", "Argument checks"]
    positions = [next(i for i, h in enumerate(headings) if key in h) for key in order]
    assert positions == sorted(positions)
    assert text.index("\ndef calculate_grad_cam(") < text.index("\ndef detect(") < text.index("\ndef calculate_cam(")
    assert text.index("\ndef calculate_cam(") < text.index("\ndef segment(") < text.index("\ndef peak_boxes(")


def test_hub_messages_name_paths_relative_to_torch_home(monkeypatch, tmp_path):
    """Stored outputs must not show a machine's folders: the hub cache is named as $TORCH_HOME/..."""
    import re
    import warnings
    from pathlib import Path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def unreachable(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load", unreachable)
    with pytest.raises(RuntimeError) as failed:
        helpers.load_model("resnet50", allow_offline_fallback=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        helpers.load_model("resnet50", allow_offline_fallback=True)
    _, note = helpers.resnet50_architecture()
    texts = [helpers.offline_hub_requirements(), str(failed.value), note, *(str(w.message) for w in caught)]
    assert any(isinstance(w.message, helpers.OfflineFallbackWarning) for w in caught)
    for text in texts:
        assert "$TORCH_HOME/hub/checkpoints/resnet50-0676ba61.pth" in text
        for folder in (str(tmp_path), str(Path.home()), str(Path.cwd())):
            assert folder not in text
        assert not re.search(r"(^|[\s(=])(/|~/|[A-Za-z]:\\)\w", text), text  # no absolute path of any machine


# --------------------------------------------------------------------------------------------
# The detail view: classes and scores from one plain 224 view, maps from input_sizes
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def counted_forward_passes(model: nn.Module):
    """Counts the model's forward passes inside the block (a forward pre-hook, removed on exit)."""
    sides: list[int] = []
    handle = model.register_forward_pre_hook(lambda _module, inputs: sides.append(int(inputs[0].shape[-1])))
    try:
        yield sides
    finally:
        handle.remove()


def test_detect_detail_view_keeps_the_224_classes_and_draws_maps_at_320(lite, chihuahua, chihuahua_probabilities):
    with counted_forward_passes(lite.model) as plain_passes:
        plain = helpers.detect(lite, chihuahua, topk=3, input_sizes=(224,), flip=False)
    with counted_forward_passes(lite.model) as detail_passes:
        detail = helpers.detect(lite, chihuahua, topk=3, input_sizes=(320,), flip=False)
    assert plain_passes == [224]  # the sheet's recipe: one pass gives classes and maps
    assert sorted(detail_passes) == [224, 320]  # one pass for the classes, one for the maps
    top3 = chihuahua_probabilities.topk(3).indices.tolist()  # an independent plain 224 forward pass
    assert [d.class_index for d in detail] == [d.class_index for d in plain] == top3
    for d, p in zip(detail, plain, strict=True):
        assert (d.label, d.rank) == (p.label, p.rank)
        assert d.score == pytest.approx(p.score, abs=1e-6)
        assert d.score == pytest.approx(float(chihuahua_probabilities[d.class_index]), abs=1e-6)
        assert tuple(p.cam.shape) == (14, 14) and tuple(d.cam.shape) == (20, 20)  # 224 / 16, 320 / 16 (dilated)
        # The map is the Grad-CAM of one 320 view, computed here with its own forward and backward pass.
        expected = independent_grad_cam(lite, chihuahua, d.class_index, sizes=(320,))
        assert float((torch.tensor(d.heatmap) - expected).abs().max()) < 1e-5
    # Not the 224 maps: the test would catch input_sizes being ignored for the maps.
    assert float(np.abs(detail[0].heatmap - plain[0].heatmap).max()) > 1e-2
    assert no_forward_hooks(lite.model) and all(not m._forward_pre_hooks for m in lite.model.modules())
