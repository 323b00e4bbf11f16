"""Every torchvision ImageNet ResNet through torch.hub, any classifier through wrap_model, and faulty checkpoints.

No network is reachable here. The variants come from a stub of ``torch.hub.load`` that accepts only the call
load_model makes and returns torchvision's architecture with random weights (as tests/test_notebook_resnet50.py
does). The checkpoint faults go through the real ``torch.hub.load``: a hub repository folder under a temporary
``$TORCH_HOME`` makes it build the model and read the cached checkpoint. Random weights give arbitrary classes, so
every check is an identity or an independent computation. Maps come from a small 64 view (``SMALL``) to keep the big
variants fast; the classes always come from the 224 view.
"""

import io
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as F_vision
from torch import nn

import helpers

HUB_REPO = f"pytorch/vision:v{torchvision.__version__.split('+')[0]}"
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
           "wide_resnet50_2", "wide_resnet101_2")
WRAPPED = ("mobilenet_v2", "vgg16", "tiny")
SMALL = {"input_sizes": 64}
FLOWERS = ("daisy", "dandelion", "rose", "sunflower", "tulip")
REAL_HUB_LOAD = torch.hub.load


class TinyNet(nn.Module):
    """A user's own CNN with five classes: two strided convolutions, global average pooling, a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(16, len(FLOWERS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(-2, -1)))


def wrap(name: str) -> helpers.LoadedModel:
    """A user's model in eval mode (trainable parameters), wrapped as the README shows."""
    torch.manual_seed(0)
    if name == "mobilenet_v2":
        model = torchvision.models.mobilenet_v2()
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.momentum = None  # statistics of noise photos, as training leaves them; untrained ones vanish
        with torch.no_grad():
            model(torch.rand(8, 3, 64, 64))
        model.eval()
        return helpers.wrap_model(model, model.features, classifier=model.classifier[1], name=name)
    if name == "vgg16":
        return helpers.wrap_model(torchvision.models.vgg16().eval(), "features.29", name=name)  # the last ReLU
    model = TinyNet().eval()
    return helpers.wrap_model(model, model.body, classifier=model.head, categories=FLOWERS, name=name)


@pytest.fixture(scope="module")
def hub_calls():
    """``torch.hub.load`` replaced for this module: only load_model's call is accepted; random weights."""
    calls = []

    def stub(repo_or_dir, model, *args, **kwargs):
        assert (repo_or_dir, args, kwargs.get("weights")) == (HUB_REPO, (), "IMAGENET1K_V1")
        calls.append(model)
        torch.manual_seed(0)
        return torchvision.models.get_model(model)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "load", stub)
        yield calls


@pytest.fixture(scope="module", params=RESNETS + WRAPPED)
def loaded(request, hub_calls) -> helpers.LoadedModel:
    """Each model once: the nine ResNets through load_model (the defaults), the three user models through wrap_model."""
    return helpers.load_model(request.param) if request.param in RESNETS else wrap(request.param)


def no_hooks(model: nn.Module) -> bool:
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return not any(getattr(module, kind) for module in model.modules() for kind in kinds)


def reference_grad_cam(loaded: helpers.LoadedModel, batch: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Grad-CAM ``[h, w]`` of class c with its own hook and one plain backward pass, the activations ``[K, h, w]``)."""
    store = {}
    handle = loaded.target_layer.register_forward_hook(lambda _m, _i, output: store.update(A=output))
    try:
        with torch.enable_grad():
            logits = loaded.model(batch.clone().requires_grad_(True))
            (gradients,) = torch.autograd.grad(logits[0, c], store["A"])
    finally:
        handle.remove()
    activations = store["A"].detach()[0]
    return (gradients[0].mean(dim=(-2, -1))[:, None, None] * activations).sum(dim=0).clamp_min(0), activations


def at_photo_size(low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[h, w]`` -> ``[H, W]``: divided by its maximum, bilinear, divided by its maximum (zeros stay zeros)."""
    full = F.interpolate((low / low.max().clamp_min(1e-30))[None, None], size, mode="bilinear", align_corners=False)
    return full[0, 0] / full.max().clamp_min(1e-30)


def top3(loaded: helpers.LoadedModel, photo) -> list[int]:
    with torch.no_grad():
        return loaded.model(loaded.preprocess(photo, 224)).softmax(dim=1)[0].topk(3).indices.tolist()


# --------------------------------------------------------------------------------------------
# Every model: detect and segment top-3, the batched Grad-CAM, CAM against Grad-CAM
# --------------------------------------------------------------------------------------------


def test_detect_and_segment_top3_on_the_chihuahua(loaded, chihuahua):
    expected = top3(loaded, chihuahua)
    detections = helpers.detect(loaded, chihuahua, topk=3, **SMALL)
    assert [d.class_index for d in detections] == expected
    assert [d.label for d in detections] == [loaded.categories[c] for c in expected]
    for d in detections:  # boxes in the photo's pixels: the box of the full-size heatmap
        assert d.heatmap.shape == (493, 740)
        assert d.box == helpers.heatmap_to_bbox(d.heatmap, helpers.DEFAULT_BOX_THRESHOLD)
        assert d.box is None or (0 <= d.box[0] < d.box[2] <= 740 and 0 <= d.box[1] < d.box[3] <= 493)
    if loaded.classifier is None:
        with pytest.raises(ValueError, match=r"segment \(CAM\) needs a classifier.*detect and grad_cams"):
            helpers.segment(loaded, chihuahua, topk=3, refine=False, **SMALL)
    else:
        seg = helpers.segment(loaded, chihuahua, topk=3, refine=False, **SMALL)
        assert [c for c, _, _ in seg.classes] == expected and seg.label_map.shape == (493, 740)
        assert set(np.unique(seg.label_map).tolist()) <= {-1, *expected}
    assert no_hooks(loaded.model)
    assert all(p.grad is None for p in loaded.model.parameters())


def test_batched_grad_cam_is_one_backward_per_class_and_relu_cam_is_proportional(loaded, chihuahua):
    classes = top3(loaded, chihuahua)[::-1]
    maps = helpers.grad_cams(loaded, chihuahua, classes, **SMALL)
    batch = loaded.preprocess(chihuahua, 64)
    for c, got in zip(classes, maps, strict=True):
        low, activations = reference_grad_cam(loaded, batch, c)
        assert low.max() > 0
        assert float((got - at_photo_size(low, (493, 740))).abs().max()) < 1e-4
        if loaded.classifier is not None:  # linear on the pooled map: alpha_k = w_ck / (h w), so Grad-CAM = relu(CAM)
            cam = helpers.calculate_cam(activations, loaded.classifier.weight.detach(), [c])[0].clamp_min(0)
            assert torch.allclose(cam / cam.max(), low / low.max(), atol=1e-4)
    assert no_hooks(loaded.model)
    assert all(p.grad is None for p in loaded.model.parameters())


# --------------------------------------------------------------------------------------------
# The nine ResNets through torch.hub
# --------------------------------------------------------------------------------------------


def test_model_names_are_the_nine_resnets_and_the_stand_in():
    assert helpers.MODEL_NAMES == (*RESNETS, "efficientnet_lite0")


@pytest.mark.parametrize("loaded", RESNETS, indirect=True)
def test_load_model_takes_each_resnet_from_the_hub_with_its_imagenet_preprocessing(loaded, hub_calls):
    assert loaded.name in hub_calls  # through the stub: the pinned tag, IMAGENET1K_V1
    hub = f"torch.hub {HUB_REPO} {loaded.name}, weights=IMAGENET1K_V1"
    assert loaded.source == f"{hub}; last stage at stride 1 (dilated)"
    assert loaded.target_layer is loaded.model.layer4 and loaded.classifier is loaded.model.fc
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
    preset = torchvision.models.get_model_weights(loaded.name).IMAGENET1K_V1.transforms()
    photo = F_vision.to_pil_image(torch.rand(3, 224, 224))  # already 224: no resampling
    expected = F_vision.normalize(F_vision.to_tensor(photo), preset.mean, preset.std)
    assert torch.allclose(loaded.preprocess(photo, 224)[0], expected, atol=1e-6)


@pytest.mark.parametrize("loaded", RESNETS, indirect=True)
def test_describe_model_of_each_resnet(loaded):
    rows = {line.split()[0]: line.split() for line in helpers.describe_model(loaded.model).splitlines()[2:]}
    assert rows["layer4"][2] == f"1x{loaded.classifier.in_features}x14x14"  # dilated: 14 x 14 at 224
    meta = torchvision.models.get_model_weights(loaded.name).IMAGENET1K_V1.meta
    assert int(rows["total"][-1].replace(",", "")) == meta["num_params"]


def test_offline_each_resnet_falls_back_naming_itself_and_its_checkpoint(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in the test")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.warns(helpers.OfflineFallbackWarning, match=r"resnet101.*checkpoints/resnet101-63fe2227\.pth"):
        loaded = helpers.load_model("resnet101")
    assert loaded.name == "efficientnet_lite0" and "offline fallback for resnet101" in loaded.source
    with pytest.raises(RuntimeError, match=r"Could not load resnet18 .*checkpoints/resnet18-f37072fd\.pth"):
        helpers.load_model("resnet18", allow_offline_fallback=False)
    model, note = helpers.resnet50_architecture("resnext50_32x4d")
    assert repr(model) == repr(torchvision.models.resnext50_32x4d()) and not model.training
    assert "resnext50_32x4d() without weights" in note and "resnext50_32x4d-7cdf4587.pth" in note


def test_resnet50_architecture_refuses_other_names():
    with pytest.raises(ValueError, match=r"name must be one of \('resnet18'"):
        helpers.resnet50_architecture("vgg16")


# --------------------------------------------------------------------------------------------
# The dilated layer4 of BasicBlock and Bottleneck ResNets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnext50_32x4d"])
def test_dilated_layer4_holds_the_plain_map_at_even_positions(name):
    """Output stride 16 with the same weights: the 14x14 map at 224, whose even positions are the plain 7x7 map."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name).eval()
    trunk = nn.Sequential(*list(model.children())[:-2])  # up to layer4
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        plain = trunk(x)
        helpers.dilate_resnet_layer4(model)
        dilated = trunk(x)
    assert tuple(plain.shape[-2:]) == (7, 7) and tuple(dilated.shape[-2:]) == (14, 14)
    assert torch.allclose(dilated[..., ::2, ::2], plain, atol=1e-5 * float(plain.abs().max()))


def test_dilated_basic_blocks_are_the_hand_listed_convolutions():
    model = helpers.dilate_resnet_layer4(torchvision.models.resnet34())
    convs = [(n, m) for n, m in model.layer4.named_modules() if isinstance(m, nn.Conv2d)]
    settings = {n: (m.stride, m.dilation, m.padding) for n, m in convs}
    expected = {"0.conv1": ((1, 1), (1, 1), (1, 1)), "0.downsample.0": ((1, 1), (1, 1), (0, 0))}
    expected |= {f"{b}.conv{i}": ((1, 1), (2, 2), (2, 2)) for b in range(3) for i in (1, 2) if (b, i) != (0, 1)}
    assert settings == expected
    with pytest.raises(NotImplementedError):  # torchvision itself refuses dilated BasicBlocks
        torchvision.models.resnet34(replace_stride_with_dilation=[False, False, True])


# --------------------------------------------------------------------------------------------
# wrap_model: the user's model is left as it was; clear errors
# --------------------------------------------------------------------------------------------


def test_wrap_model_and_describe_model_leave_the_users_model_as_it_was():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2()  # train mode, trainable, as a user in the middle of training has it
    model.features[3].eval()
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = helpers.wrap_model(model, "features", classifier=model.classifier[1])
    assert loaded.model is model and loaded.target_layer is model.features
    assert "1x1280x7x7" in helpers.describe_model(model, max_depth=1)
    assert [m.training for m in model.modules()] == modes
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # batch-norm statistics untouched
    assert no_hooks(model)


def test_wrap_model_with_another_number_of_classes_needs_its_categories():
    model = TinyNet()
    with pytest.raises(ValueError, match="categories must name the model's 5 classes, got 1000 names"):
        helpers.wrap_model(model, model.body, classifier=model.head)
    with pytest.raises(ValueError, match="categories must name the model's 5 classes, got 2 names"):
        helpers.wrap_model(model, model.body, classifier=model.head, categories=["cat", "dog"])


@pytest.mark.parametrize(
    ("target_layer", "classifier", "message"),
    [
        ("bodyy", None, r"target_layer 'bodyy' is not a layer of the model"),
        (nn.Conv2d(3, 8, 3), None, r"target_layer must run once .* it ran 0 times"),
        ("body", nn.Linear(16, 5), r"classifier must be the nn.Linear\(16, 5\) that gives the logits"),
        ("body.0", "head", r"classifier must be the nn.Linear\(8, 5\)"),
        ("body", nn.Sequential(), r"classifier must be .*got Sequential\(\).*leave it None for Grad-CAM only"),
    ],
)
def test_wrap_model_errors_name_the_argument(target_layer, classifier, message):
    model = TinyNet()
    classifier = model.head if classifier == "head" else classifier
    with pytest.raises(ValueError, match=message):
        helpers.wrap_model(model, target_layer, classifier=classifier, categories=FLOWERS)


def test_a_layer_name_is_the_layer():
    model = torchvision.models.resnet18()
    assert helpers.wrap_model(model, "layer4", classifier=model.fc).target_layer is model.layer4


# --------------------------------------------------------------------------------------------
# A corrupt or foreign checkpoint in the hub cache, through the real torch.hub.load
# --------------------------------------------------------------------------------------------

CHECKPOINT = "resnet18-f37072fd.pth"  # where torchvision's ResNet18_Weights.IMAGENET1K_V1 is cached


@pytest.fixture(scope="module")
def resnet18_checkpoint() -> bytes:
    torch.manual_seed(1)
    return saved(torchvision.models.resnet18().state_dict())


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """``$TORCH_HOME`` with the hub repository at the pinned tag (a hubconf as torchvision's: the model builders), so
    ``torch.hub.load(HUB_REPO, "resnet18", weights=...)`` runs offline up to reading the cached checkpoint."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load", REAL_HUB_LOAD)  # the module's stub may be active
    repo = tmp_path / "hub" / f"pytorch_vision_{HUB_REPO.split(':')[1]}"
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text("dependencies = ['torch']\nfrom torchvision.models.resnet import resnet18\n")
    (tmp_path / "hub" / "checkpoints").mkdir()
    return tmp_path / "hub" / "checkpoints"


def test_a_valid_cached_checkpoint_is_what_load_model_reads(hub_cache, resnet18_checkpoint):
    (hub_cache / CHECKPOINT).write_bytes(resnet18_checkpoint)
    loaded = helpers.load_model("resnet18", allow_offline_fallback=False, dilated=False)
    expected = torch.load(io.BytesIO(resnet18_checkpoint), weights_only=True)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.model.state_dict().items())


def saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


FAULTS = {
    "zeros": lambda valid: bytes(4096),
    "random bytes": lambda valid: np.random.default_rng(0).bytes(4096),
    "a truncated file": lambda valid: valid[: len(valid) // 2],
    "another architecture": lambda valid: saved(torchvision.models.squeezenet1_1().state_dict()),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulty_cached_checkpoint_falls_back_naming_the_file(fault, hub_cache, resnet18_checkpoint):
    (hub_cache / CHECKPOINT).write_bytes(FAULTS[fault](resnet18_checkpoint))
    named = rf"the cached checkpoint \$TORCH_HOME/hub/checkpoints/{CHECKPOINT} cannot be loaded into resnet18 .*delete"
    with pytest.warns(helpers.OfflineFallbackWarning, match=named):
        loaded = helpers.load_model("resnet18", dilated=False)
    assert loaded.name == "efficientnet_lite0" and "offline fallback for resnet18" in loaded.source
    with pytest.raises(RuntimeError, match=named) as failed:
        helpers.load_model("resnet18", allow_offline_fallback=False)
    # The hub itself failed on the file: its error is the one the message names.
    assert f"({type(failed.value.__cause__).__name__}: " in str(failed.value)
