"""Shared fixtures: the offline stand-in model, the Chihuahua photo and a random-init ResNet-50.

Everything expensive is built once per test session (the machine has only two CPU cores).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
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
