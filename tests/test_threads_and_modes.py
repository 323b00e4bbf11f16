"""One model in many threads, the torch modes users run in, a user's own model left as it was, and LayerRecorder used
by hand (a second with-block, nested recorders).

Every expected result is the same call made sequentially, in the default mode, or on the frozen eval-mode model.
"""

import dataclasses
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import helpers

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def photos(chihuahua) -> list[Image.Image]:
    """Two small photos (96 x 64): the Chihuahua and the dog and cat."""
    with Image.open(DATA / "dog_and_cat.png") as image:
        return [chihuahua.resize((96, 64)), image.convert("RGB").resize((96, 64))]


def parameters_with_grad(model: torch.nn.Module) -> int:
    return sum(p.grad is not None for p in model.parameters())


def hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def in_threads(call, count: int, threads: int = 4) -> list:
    """``call(i)`` for i in 0..count-1 on a pool of ``threads`` threads, results in order."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(count)))


# --------------------------------------------------------------------------------------------
# Many threads, one model
# --------------------------------------------------------------------------------------------


def test_four_threads_give_the_sequential_results(lite, photos):
    def call(i):
        photo = photos[i % 2]
        return helpers.detect(lite, photo, topk=3), helpers.segment(lite, photo, topk=3)

    sequential = [call(0), call(1)]
    concurrent = in_threads(call, 24)  # 4 threads x 6 calls
    assert all(result == sequential[i % 2] for i, result in enumerate(concurrent))  # bit for bit: maps, boxes
    assert hooks(lite.model) == 0 and parameters_with_grad(lite.model) == 0


def test_grad_cams_and_layer_recorders_by_hand_in_threads(lite, photos):
    batches = [lite.preprocess(photo) for photo in photos]

    def by_hand(i):
        with helpers.LayerRecorder(lite.target_layer) as recorder, torch.enable_grad():
            logits = lite.model(batches[i % 2])
            logits[0, 151].backward()
        recorder.check_single_call()
        return recorder.activations.detach(), recorder.gradients

    def call(i):
        return helpers.grad_cams(lite, photos[i % 2], [151, 281], input_sizes=(224, 256), flip=True), by_hand(i)

    sequential = [call(0), call(1)]
    for i, (maps, (activations, gradients)) in enumerate(in_threads(call, 16)):
        expected_maps, (expected_activations, expected_gradients) = sequential[i % 2]
        assert torch.equal(maps, expected_maps)
        assert torch.equal(activations, expected_activations) and torch.equal(gradients, expected_gradients)
    assert hooks(lite.model) == 0 and parameters_with_grad(lite.model) == 0


def test_a_plain_forward_in_another_thread_is_not_changed(lite, photos):
    batch = lite.preprocess(photos[0])
    with torch.no_grad():
        expected = lite.model(batch)
    stop, plain = threading.Event(), []

    def forward_loop():
        while not stop.is_set():
            logits = lite.model(batch)  # grad mode on: a hooked leaf would make it require grad
            plain.append((logits.requires_grad, torch.equal(logits.detach(), expected)))

    thread = threading.Thread(target=forward_loop)
    thread.start()
    try:
        for _ in range(4):
            helpers.detect(lite, photos[1], topk=3, input_sizes=224)
    finally:
        stop.set()
        thread.join()
    assert plain and all(result == (False, True) for result in plain)


def test_a_layer_that_runs_twice_is_still_refused(lite, photos):
    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.shared(self.shared(x))

    net = Twice()
    with helpers.LayerRecorder(net.shared) as recorder:
        in_threads(lambda _: net(torch.ones(1, 3, 8, 8)), 4)  # other threads' passes are not this recorder's
        net(torch.ones(1, 3, 8, 8))
    assert recorder.calls == 2
    with pytest.raises(RuntimeError, match="ran 2 times in one forward; hook a layer that runs once"):
        recorder.check_single_call()


# --------------------------------------------------------------------------------------------
# The torch modes people run in
# --------------------------------------------------------------------------------------------

MODES = {
    "inference_mode": torch.inference_mode,
    "no_grad": torch.no_grad,
    "autocast bfloat16": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    "autocast float16": lambda: torch.autocast("cpu", dtype=torch.float16),
    "anomaly detection": lambda: torch.autograd.set_detect_anomaly(True),
}


def three_calls(lite, photo):
    return (
        helpers.detect(lite, photo, topk=3),
        helpers.segment(lite, photo, topk=3),
        helpers.grad_cams(lite, photo, [151, 281]),
    )


@pytest.mark.parametrize("mode", MODES)
def test_modes_give_the_default_results(lite, photos, mode):
    expected = three_calls(lite, photos[0])
    with MODES[mode](), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anomaly detection's warning that it is slow
        detections, seg, maps = three_calls(lite, photos[0])
    assert detections == expected[0]  # classes, scores, boxes and maps, bit for bit
    assert seg == expected[1]
    assert torch.equal(maps, expected[2])
    assert detections[0].cam.dtype == seg.cams_low.dtype == maps.dtype == torch.float32
    assert detections[0].heatmap.dtype == np.float32


def test_float64_default_dtype_gives_the_default_classes_and_boxes(lite, photos):
    expected_detections, expected_seg, expected_maps = three_calls(lite, photos[0])
    torch.set_default_dtype(torch.float64)
    try:
        detections, seg, maps = three_calls(lite, photos[0])
    finally:
        torch.set_default_dtype(torch.float32)
    # The photo is made a tensor in float64 before it becomes float32: maps agree to rounding.
    assert [(d.class_index, d.box, d.boxes) for d in detections] == [
        (d.class_index, d.box, d.boxes) for d in expected_detections
    ]
    assert [c for c, _, _ in seg.classes] == [c for c, _, _ in expected_seg.classes]
    assert detections[0].cam.dtype == seg.cams_low.dtype == maps.dtype == torch.float32
    torch.testing.assert_close(maps, expected_maps, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# A user's own model: eval mode for the call, its flags and requires_grad as they were, no .grad
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18() -> helpers.LoadedModel:
    torch.manual_seed(0)
    return helpers.wrap_resnet(torchvision.models.resnet18(), "resnet18", "test")


def training(model: helpers.LoadedModel) -> helpers.LoadedModel:
    """The model as a user training it has it: train mode, every parameter requiring grad, one block in eval mode."""
    model.model.train().requires_grad_(True)
    model.model.layer2.eval()
    return model


def flags(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_a_model_in_training_is_used_in_eval_mode_and_left_as_it_was(resnet18, photos):
    resnet18.model.eval().requires_grad_(False)
    expected = [helpers.detect(resnet18, photo, topk=3) for photo in photos], helpers.segment(resnet18, photos[0])
    before = flags(training(resnet18).model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trainable parameters before the target layer are no reason to warn
        detections = [helpers.detect(resnet18, photo, topk=3) for photo in photos]
        seg = helpers.segment(resnet18, photos[0])
    assert (detections, seg) == expected  # the BatchNorm running statistics were used, and left unchanged
    assert flags(resnet18.model) == before
    assert all(p.requires_grad for p in resnet18.model.parameters())
    assert parameters_with_grad(resnet18.model) == 0
    concurrent = in_threads(lambda i: helpers.detect(resnet18, photos[i % 2], topk=3), 12)
    assert all(result == expected[0][i % 2] for i, result in enumerate(concurrent))
    assert flags(resnet18.model) == before


def test_a_failing_call_restores_the_models_flags(resnet18, photos):
    before = flags(training(resnet18).model)
    broken = dataclasses.replace(resnet18, preprocess=lambda image, size=224: torch.zeros(1, 4, size, size))
    with pytest.raises(RuntimeError, match="channels"):
        helpers.detect(broken, photos[0])
    assert flags(resnet18.model) == before


# --------------------------------------------------------------------------------------------
# LayerRecorder by hand: a second with-block, nested recorders
# --------------------------------------------------------------------------------------------


def test_a_second_with_block_starts_afresh(lite, photos):
    first, second = (lite.preprocess(photo) for photo in photos)
    recorder = helpers.LayerRecorder(lite.target_layer)
    with recorder:
        lite.model(first)[0, 151].backward()
    with recorder:
        lite.model(second)[0, 281].backward()
    with helpers.LayerRecorder(lite.target_layer) as fresh:
        lite.model(second)[0, 281].backward()
    recorder.check_single_call()
    assert torch.equal(recorder.gradients, fresh.gradients)
    assert torch.equal(recorder.activations, fresh.activations)
    with recorder:
        lite.model(first)  # no backward in this block
    assert recorder.calls == 1 and recorder.gradients is None


def test_nested_recorders_warn_that_the_earlier_layer_gets_no_gradient(lite, photos):
    earlier = lite.model.features.blocks[-1]
    cut = r"LayerRecorder\(_LiteFeatures\) stops the backward pass .*earlier LayerRecorder's activation.* no gradient"
    with helpers.LayerRecorder(earlier) as early, helpers.LayerRecorder(lite.target_layer) as late:
        with pytest.warns(UserWarning, match=cut):
            logits = lite.model(lite.preprocess(photos[0]))
        logits[0, 151].backward()
    assert early.gradients is None and late.gradients is not None
    x = lite.preprocess(photos[0]).requires_grad_()  # an input gradient is cut the same way
    with helpers.LayerRecorder(lite.target_layer), pytest.warns(UserWarning, match="an input"):
        lite.model(x)
