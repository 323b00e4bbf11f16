"""Shared fixtures: the offline stand-in model, the Chihuahua photo and a random-init ResNet-50.

Everything expensive is built once per test session (the machine has only two CPU cores).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image

import helpers

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"

# One intra-op thread: on this two-core machine, with other jobs running, torch's default of two
# spinning threads made a forward pass of the stand-in ~50x slower (3.5 s instead of 0.05 s).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lite() -> helpers.LoadedModel:
    """EfficientNet-Lite0 with its genuine ImageNet-1k weights (the offline stand-in for ResNet-50)."""
    return helpers.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def chihuahua() -> Image.Image:
    """The sheet's example photo, 740x493 RGB."""
    with Image.open(ROOT / "Chihuahua.jpg") as image:
        return image.convert("RGB")


@pytest.fixture(scope="session")
def random_resnet() -> helpers.LoadedModel:
    """A randomly initialised torchvision ResNet-50 (seed 0), frozen in eval mode as load_model's, for
    architecture-level tests (wrap_resnet leaves a model as it is)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval().requires_grad_(False)
    return helpers.wrap_resnet(model, "resnet50", "random init")


@pytest.fixture(scope="session")
def chihuahua_probabilities(lite, chihuahua) -> torch.Tensor:
    """Softmax probabilities [1000] of the stand-in on the Chihuahua, from a plain forward pass at
    the input side detect/segment score with (helpers.INPUT_SIZE, whatever the maps' views)."""
    with torch.no_grad():
        return lite.model(lite.preprocess(chihuahua, helpers.INPUT_SIZE[0])).softmax(dim=1)[0]


@pytest.fixture
def two_blobs() -> np.ndarray:
    """A 10 x 12 map: a big plateau of 0.6 (rows 1-5, cols 1-6, 30 px) and a small peak region
    of 1.0 (rows 7-8, cols 9-10, 4 px); everything else 0 (its largest component is not the one with the peak)."""
    heatmap = np.zeros((10, 12))
    heatmap[1:6, 1:7] = 0.6
    heatmap[7:9, 9:11] = 1.0
    return heatmap


class RedChannel(torch.nn.Module):
    """A stand-in "classifier" whose 4 x 4 feature map is the photo's red channel pooled to 4 x 4: every class's
    logit is the map's mean times (class + 1), so Grad-CAM of any class is the pooled red channel and class 999 is
    the top-1 with a probability of about 1."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.AdaptiveAvgPool2d(4)

    def forward(self, x):
        maps = self.features(x)[:, :1]  # [B, 1, 4, 4]
        return maps.mean(dim=(1, 2, 3))[:, None] * torch.arange(1, 1001)[None]


@pytest.fixture(scope="session")
def red_channel() -> helpers.LoadedModel:
    """:class:`RedChannel` as a LoadedModel, photos resized to the view with no normalisation (the protocols' tests
    on hand-built photos, where the right boxes are known)."""
    model = RedChannel()
    return helpers.LoadedModel(
        model=model,
        name="red channel",
        source="test",
        categories=tuple(str(i) for i in range(1000)),
        target_layer=model.features,
        classifier=torch.nn.Linear(1, 1000),  # only its device (and bias, for segment) is read
        preprocess=lambda photo, size=224: TF.to_tensor(photo.resize((size, size)))[None],
    )
