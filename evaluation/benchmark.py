"""Speed and memory benchmark of helpers' Grad-CAM / CAM against the usual alternatives.

Run from the repository root (not a pytest test; it defines no test functions)::

    python -m evaluation.benchmark            # full run, a few minutes on 2 CPU cores
    python -m evaluation.benchmark --quick    # short run, to check that everything works

With the benchmark environment (``pip install -r requirements-bench.txt``) the rows for
pytorch-grad-cam and torchcam are measured; without those packages they read "not installed".

What is measured, on the CPU:

- milliseconds per photo (median over timed runs, after warm-up runs) for one photo,
  ``Chihuahua.jpg`` (740x493; the segment rows also on it enlarged to 8000x6000, a large photo),
  on the offline stand-in (EfficientNet-Lite0, ImageNet weights)
  and on a randomly initialised torchvision ResNet-50 (weights do not change speed). The rows
  run round-robin (one run of every row, then the next round), so machine noise hits all rows
  alike and the ratios stay meaningful;
- forward passes of the model and calls into autograd (``backward``/``autograd.grad``) per top-5;
- throughput (photos per second) for a batch of 16 photos of different sizes;
- resident memory growth over repeated ``helpers.detect`` calls, and that no hook or ``.grad``
  is left on either model afterwards.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

import helpers
from evaluation.data import ROOT, TEST_DATA, find_dataset

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

PHOTO = ROOT / "Chihuahua.jpg"
#: The batch's photos: the harness's imagenet_val, the repository's copy first (the harness's one lookup, asked
#: with tests/data as the data folder; the shared set as a fallback when that copy is missing).
BATCH_SET = find_dataset("imagenet_val", TEST_DATA) or find_dataset("imagenet_val")
TOPK = 5
SEGMENT_TOPK = 3
BATCH_SIZE = 16

# detect() and segment() take the classes from one plain 224 view and the maps from the test-time views (input sizes,
# a flip; the detail view); the "224 view" rows ask for the plain 224 view alone (one forward pass for both).
ONE_VIEW = {"input_sizes": 224, "flip": False}
DEFAULT_SIZES = tuple(helpers.DEFAULT_INPUT_SIZES)
DEFAULT_FLIP = helpers.DEFAULT_FLIP
DEFAULT_VIEWS = len(DEFAULT_SIZES) * (2 if DEFAULT_FLIP else 1)
VIEWS_TEXT = f"defaults: input_sizes={DEFAULT_SIZES}, flip={DEFAULT_FLIP}, {DEFAULT_VIEWS} map view(s)"
#: Whether the defaults are the plain 224 view (then the "224 view" rows would repeat the default rows).
DEFAULTS_ARE_ONE_VIEW = DEFAULT_SIZES == (224,) and not DEFAULT_FLIP
DEFAULT_VIEW_TEXT = f"maps at {'+'.join(map(str, DEFAULT_SIZES))}{', flip' if DEFAULT_FLIP else ''}"
#: The budget of detect top-5 and segment top-3 at the defaults, in forward passes of the published classifier.
BUDGET_X_FORWARD = 6.0

DILATED = helpers.DEFAULT_DILATED
FORWARD = "plain forward pass" + (" (last stage dilated, as loaded)" if DILATED else "")
BASE = "plain forward pass, the classifier as published"
GRAD_CAMS = "helpers.grad_cams top-5"
DETECT = f"helpers.detect top-5, defaults ({DEFAULT_VIEW_TEXT})"
DETECT_ONE = "helpers.detect top-5, plain 224 view"
SEGMENT = f"helpers.segment top-3, defaults ({DEFAULT_VIEW_TEXT})"
SEGMENT_ONE = "helpers.segment top-3, plain 224 view"
SEGMENT_PLAIN = "helpers.segment top-3, refine=False (plain masks)"
REFINE = "helpers.refine_label_map top-3 (the dense CRF alone)"
LARGE_SIZE = (8000, 6000)  # the large photo: the Chihuahua enlarged (width, height)
LARGE = f" ({LARGE_SIZE[0]}x{LARGE_SIZE[1]})"
SEGMENT_LARGE, SEGMENT_PLAIN_LARGE, REFINE_LARGE = SEGMENT + LARGE, SEGMENT_PLAIN + LARGE, REFINE + LARGE
NAIVE = "naive per-class loop top-5"
PGC = "pytorch-grad-cam top-5"
TORCHCAM = "torchcam top-5"
# Rows costing several forward passes get fewer runs (--slow-warmup, --slow-repeats).
SLOW_ROWS = ((DETECT, SEGMENT) if not DEFAULTS_ARE_ONE_VIEW else ()) + (
    NAIVE,
    PGC,
    SEGMENT_LARGE,
    SEGMENT_PLAIN_LARGE,
    REFINE_LARGE,
)
STARTED = time.perf_counter()

NOTES: dict[str, str] = {
    BASE: "preprocess (resize to 224x224, normalise) + forward under torch.inference_mode() of the classifier "
    "with its last stage at stride 2, as torch.hub / PyPI give it: the 'one forward pass' of the cost budget.",
    FORWARD: "preprocess (resize to 224x224, normalise) + model forward under torch.inference_mode().",
    GRAD_CAMS: "helpers.grad_cams(loaded, photo, top5) with its defaults (one 224 view): preprocess, one "
    "forward, one batched backward (vmap over 5 seeds, stopping at the target layer), 5 maps upsampled to "
    "740x493. The 5 class indices are computed once beforehand.",
    DETECT: f"helpers.detect(loaded, photo, topk=5) ({VIEWS_TEXT}): one forward at 224 for softmax/top-5 (shared "
    "with the first view when that is 224 unflipped), then per map view a preprocess, one forward and one batched "
    "backward; maps averaged; one box per class (map upsampled to the photo size, thresholded, scipy connected "
    "components). Heatmaps are lazy, not made.",
    DETECT_ONE: f"helpers.detect(loaded, photo, topk=5, input_sizes=224, flip=False): as {GRAD_CAMS!r} plus "
    "softmax/top-5 and the boxes.",
    SEGMENT: f"helpers.segment(loaded, photo, topk=3) ({VIEWS_TEXT}, refine={helpers.DEFAULT_REFINE}): one forward "
    "at 224 for the classes (shared with the first view when that is 224 unflipped), then per map view a "
    "preprocess and one forward under inference_mode (CAM needs no gradient); maps averaged; then (the default) "
    f"the dense CRF of {REFINE!r}, or the plain label map of {SEGMENT_PLAIN!r}.",
    SEGMENT_ONE: "helpers.segment(loaded, photo, topk=3, input_sizes=224, flip=False): one forward, then the "
    "default CRF.",
    SEGMENT_PLAIN: f"helpers.segment(loaded, photo, topk=3, refine=False) ({VIEWS_TEXT}): the sheet's recipe: 3 CAMs "
    "upsampled to the photo, masks, label map by the per-pixel logits.",
    REFINE: "helpers.refine_label_map(photo, seg) with the default CRFSettings, seg from segment(refine=False) "
    "beforehand: the CRF's part of the default segment, no forward pass (working photo of CRFSettings().long_side "
    "px, unaries, permutohedral lattice, mean field, label probabilities upsampled to the photo, argmax).",
    SEGMENT_LARGE: f"as {SEGMENT!r}, on the Chihuahua enlarged to {LARGE_SIZE[0]}x{LARGE_SIZE[1]}.",
    SEGMENT_PLAIN_LARGE: f"as {SEGMENT_PLAIN!r}, on the enlarged Chihuahua.",
    REFINE_LARGE: f"as {REFINE!r}, on the enlarged Chihuahua.",
    NAIVE: "tutorial-style loop: preprocess once, then per class a fresh forward with grad enabled (forward hook "
    "making the target layer's output a leaf, tensor hook saving its gradient), logit[c].backward() stopping "
    "at the target layer, Grad-CAM, upsampled to 740x493. The cheapest per-class loop: with trainable "
    "weights a tutorial would also backpropagate through the whole network.",
    PGC: "pytorch-grad-cam GradCAM(model, target_layers=[target_layer]) in a with-block (hooks released), "
    "5 calls with one ClassifierOutputTarget each (how per-class maps are made); its 224x224 maps upsampled "
    "to 740x493. The model is frozen, so the input gets requires_grad_() (else its backward fails); "
    "its loss.backward() then runs through the whole network to the input.",
    TORCHCAM: "torchcam GradCAM(model, target_layer=target_layer) in a with-block (hooks removed): one forward "
    "(input requires_grad_(), the model is frozen), then extractor(class_idx=c, scores=scores, "
    "retain_graph=True) per class: class_idx lists are per batch sample, not per class, so one photo needs "
    "5 calls (5 autograd.grad, each stopping at the target layer); 7x7 maps upsampled to 740x493.",
}
if DEFAULTS_ARE_ONE_VIEW:
    del NOTES[DETECT_ONE], NOTES[SEGMENT_ONE]
if not DILATED:
    del NOTES[BASE]


# --------------------------------------------------------------------------------------------
# Small tools
# --------------------------------------------------------------------------------------------


def rss_mb() -> tuple[float, str]:
    """Current resident set size in MB, and how it was read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20, "psutil"
    except ImportError:
        pass
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024, "/proc/self/status VmRSS"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "resource ru_maxrss (peak, not current)"


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MB (``resource.getrusage``; kilobytes on Linux), None where the
    module is missing."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def progress(message: str) -> None:
    """A progress line with the seconds since the start and the load average."""
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"  [{time.perf_counter() - STARTED:5.0f} s{load}] {message}", flush=True)


def busy_warning() -> None:
    """Say so when other processes compete for the cores: the timings are then noisy."""
    if not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        print(
            f"note: load average {load:.1f} on {cores} cores: other processes compete for the CPU, timings are "
            "noisy (rows run round-robin, so ratios suffer less than absolute times); --threads 1 is steadier"
        )


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@dataclass
class Counts:
    forwards: int = 0
    autograd_calls: int = 0


def count_passes(model: nn.Module, fn: Callable[[], object]) -> tuple[Counts, object]:
    """Run ``fn`` once, counting forward passes of ``model`` (a forward pre-hook) and calls of
    ``torch.autograd.backward`` (what ``Tensor.backward`` calls) and ``torch.autograd.grad``.
    -> (the counts, what ``fn`` returned)."""
    counts = Counts()

    def pre_hook(_module: nn.Module, _inputs: tuple) -> None:
        counts.forwards += 1

    def counting(original: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            counts.autograd_calls += 1
            return original(*args, **kwargs)

        return wrapper

    original_backward, original_grad = torch.autograd.backward, torch.autograd.grad
    handle = model.register_forward_pre_hook(pre_hook)
    torch.autograd.backward, torch.autograd.grad = counting(original_backward), counting(original_grad)
    try:
        value = fn()
    finally:
        torch.autograd.backward, torch.autograd.grad = original_backward, original_grad
        handle.remove()
    return counts, value


def leftovers(model: nn.Module) -> list[str]:
    """Hooks left on any module, and parameters whose ``.grad`` is set."""
    found = []
    for name, module in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            hooks = getattr(module, attr, None)
            if hooks:
                found.append(f"{name or '<model>'}.{attr}: {len(hooks)}")
    found += [f"{name}.grad is set" for name, p in model.named_parameters() if p.grad is not None]
    return found


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[k, h, w]`` -> ``[k, H, W]``, bilinear, each map divided by its maximum."""
    full = F.interpolate(maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return full / full.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


# --------------------------------------------------------------------------------------------
# The rows: each function computes one photo's result end to end
# --------------------------------------------------------------------------------------------


def single_photo_rows(
    loaded: helpers.LoadedModel, photo: Image.Image, classes: list[int], base: helpers.LoadedModel
) -> dict[str, Callable[[], object] | str]:
    """Row name -> a function of no argument, or a string saying why the row is missing. ``base``:
    the classifier as published (last stage at stride 2), for the budget's "one forward pass"."""
    size = (photo.height, photo.width)
    large = photo.resize(LARGE_SIZE, Image.BILINEAR)
    plain, plain_large = (helpers.segment(loaded, p, topk=SEGMENT_TOPK, refine=False) for p in (photo, large))

    def base_forward():
        with torch.inference_mode():
            return base.model(base.preprocess(photo))

    def forward():
        with torch.inference_mode():
            return loaded.model(loaded.preprocess(photo))

    def naive():
        x = loaded.preprocess(photo)
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
            cam = F.relu((weights * store["activation"].detach()).sum(dim=1))  # [1, h, w]
            maps.append(upsample(cam, size)[0])
        return torch.stack(maps)

    def pgc():
        x = loaded.preprocess(photo).requires_grad_()
        with PgcGradCAM(model=loaded.model, target_layers=[loaded.target_layer]) as cam:
            maps = [torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])) for c in classes]
        return upsample(torch.cat(maps), size)

    def torchcam():
        x = loaded.preprocess(photo).requires_grad_()
        with TorchcamGradCAM(loaded.model, target_layer=loaded.target_layer) as extractor:
            scores = loaded.model(x)
            maps = [
                extractor(class_idx=c, scores=scores, retain_graph=i < len(classes) - 1)[0]
                for i, c in enumerate(classes)
            ]
        return upsample(torch.cat(maps), size)

    rows = {
        BASE: base_forward,
        FORWARD: forward,
        GRAD_CAMS: lambda: helpers.grad_cams(loaded, photo, classes),
        DETECT: lambda: helpers.detect(loaded, photo, topk=TOPK),
        DETECT_ONE: lambda: helpers.detect(loaded, photo, topk=TOPK, **ONE_VIEW),
        SEGMENT: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK),
        SEGMENT_ONE: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK, **ONE_VIEW),
        SEGMENT_PLAIN: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK, refine=False),
        REFINE: lambda: helpers.refine_label_map(photo, plain),
        SEGMENT_LARGE: lambda: helpers.segment(loaded, large, topk=SEGMENT_TOPK),
        SEGMENT_PLAIN_LARGE: lambda: helpers.segment(loaded, large, topk=SEGMENT_TOPK, refine=False),
        REFINE_LARGE: lambda: helpers.refine_label_map(large, plain_large),
        NAIVE: naive,
        PGC: PGC_MISSING or pgc,
        TORCHCAM: TORCHCAM_MISSING or torchcam,
    }
    return {name: rows[name] for name in NOTES}  # table order; the one-view rows only where supported


@dataclass
class ModelResult:
    label: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)

    def median_ms(self, row: str) -> float | None:
        times = self.seconds.get(row)
        return 1000 * statistics.median(times) if times else None


def time_round_robin(
    rows: dict[str, Callable[[], object]], warmup: dict[str, int], repeats: dict[str, int]
) -> dict[str, list[float]]:
    """Warm-up rounds, then timed rounds; in each round every row still due runs once."""
    for r in range(max(warmup.values(), default=0)):
        for name, fn in rows.items():
            if r < warmup[name]:
                fn()
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(max(repeats.values(), default=0)):
        for name, fn in rows.items():
            if r < repeats[name]:
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
    return seconds


def benchmark_model(
    label: str, loaded: helpers.LoadedModel, photo: Image.Image, batch: list[Image.Image], args, base
) -> ModelResult:
    result = ModelResult(label)
    with torch.inference_mode():
        classes = loaded.model(loaded.preprocess(photo)).topk(TOPK, dim=1).indices[0].tolist()
    rows = single_photo_rows(loaded, photo, classes, base)
    result.missing = {name: why for name, why in rows.items() if isinstance(why, str)}
    runnable = {name: fn for name, fn in rows.items() if not isinstance(fn, str)}

    # Forward passes and autograd calls, from one untimed run of each row (which also warms it up).
    progress(f"{label}: counting forward passes and autograd calls, comparing maps")
    outputs = {}
    for name, fn in runnable.items():
        result.counts[name], outputs[name] = count_passes(base.model if name == BASE else loaded.model, fn)

    # Do the other methods compute the same Grad-CAM? (correlation with helpers.grad_cams, mean over 5 maps)
    for name in (NAIVE, PGC, TORCHCAM):
        if name in outputs:
            result.agreement[name] = statistics.fmean(
                helpers.heatmap_correlation(a, b) for a, b in zip(outputs[GRAD_CAMS], outputs[name], strict=True)
            )
    del outputs

    slow = {name: name in SLOW_ROWS for name in runnable}
    warmup = {name: args.slow_warmup if slow[name] else args.warmup for name in runnable}
    repeats = {name: args.slow_repeats if slow[name] else args.repeats for name in runnable}
    progress(
        f"{label}: timing {len(runnable)} rows ({args.warmup} warm-up + {args.repeats} timed runs; slow rows "
        f"{args.slow_warmup} + {args.slow_repeats})"
    )
    result.seconds = time_round_robin(runnable, warmup, repeats)

    # Throughput on a batch of photos of different sizes.
    if batch:
        progress(f"{label}: throughput on a batch of {len(batch)} photos")

        def batch_forward():
            with torch.inference_mode():
                return loaded.model(torch.cat([loaded.preprocess(p) for p in batch]))

        batch_rows = {
            "forward": batch_forward,
            "detect": lambda: helpers.detect(loaded, batch, topk=TOPK),
            "segment": lambda: helpers.segment(loaded, batch, topk=SEGMENT_TOPK),
            "segment_plain": lambda: helpers.segment(loaded, batch, topk=SEGMENT_TOPK, refine=False),
        }
        batch_seconds = time_round_robin(
            batch_rows, dict.fromkeys(batch_rows, args.batch_warmup), dict.fromkeys(batch_rows, args.batch_repeats)
        )
        result.throughput = {name: len(batch) / statistics.median(s) for name, s in batch_seconds.items()}
    return result


def memory_check(
    loaded: helpers.LoadedModel, photo: Image.Image, calls: int, start: int, options: dict
) -> tuple[float, float, str]:
    """RSS after call ``start`` and after call ``calls`` of helpers.detect (MB), and the RSS source."""
    gc.collect()
    before = None
    for i in range(1, calls + 1):
        helpers.detect(loaded, photo, topk=TOPK, **options)
        if i == start:
            gc.collect()
            before, _ = rss_mb()
    gc.collect()
    after, source = rss_mb()
    return before, after, source


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def render(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> tuple[str, str]:
    """The same table as aligned plain text and as Markdown."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            f"{c:>{w}}" if r else f"{c:<{w}}" for c, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    plain = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    markdown = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if r else "---" for r in right) + " |",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]
    return "\n".join(plain), "\n".join(markdown)


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}x"


def single_photo_table(results: list[ModelResult], args) -> tuple[str, str]:
    header = ["row"]
    for r in results:
        header += [f"{r.label} ms", "x forward"] + (["x published"] if DILATED else [])
    header += ["forward passes", "autograd calls", "timed runs"]
    rows = []
    for name in NOTES:
        cells = [name]
        for r in results:
            if name in r.missing:
                cells += ["not installed", "-"] + (["-"] if DILATED else [])
            else:
                cells += [fmt_ms(r.median_ms(name)), fmt_ratio(r.median_ms(name), r.median_ms(FORWARD))]
                if DILATED:  # ratio to one forward pass of the classifier as published (the budgets' unit)
                    cells.append(fmt_ratio(r.median_ms(name), r.median_ms(BASE)))
        for attr in ("forwards", "autograd_calls"):
            values = [str(getattr(r.counts[name], attr)) for r in results if name in r.counts]
            cells.append(" / ".join(dict.fromkeys(values)) or "-")  # one number when the models agree
        measured = any(name in r.seconds for r in results)
        cells.append(str(args.slow_repeats if name in SLOW_ROWS else args.repeats) if measured else "-")
        rows.append(cells)
    return render(header, rows, [False] + [True] * (len(header) - 1))


def throughput_table(results: list[ModelResult]) -> tuple[str, str]:
    header = ["batch of 16 photos", *(f"{r.label} photos/s" for r in results)]
    names = {"forward": "forward only", "detect": DETECT, "segment": SEGMENT, "segment_plain": SEGMENT_PLAIN}
    rows = [
        [label, *(f"{r.throughput[key]:.1f}" if key in r.throughput else "-" for r in results)]
        for key, label in names.items()
    ]
    return render(header, rows, [False] + [True] * len(results))


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: overrides the counts below with 1+3 runs per row (0+2 for the slow rows), 60 detect calls",
    )
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs per row (default 3)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per row (default 15)")
    parser.add_argument(
        "--slow-repeats",
        type=int,
        default=7,
        help="timed runs of the rows costing several forward passes (naive loop, pytorch-grad-cam, detect and "
        "segment with test-time augmentation; default 7)",
    )
    parser.add_argument("--slow-warmup", type=int, default=1, help="warm-up runs of those rows (default 1)")
    parser.add_argument(
        "--batch-warmup",
        type=int,
        default=0,
        help="warm-up runs per throughput row (default 0: the single-photo rows warmed up the same code)",
    )
    parser.add_argument(
        "--batch-repeats", type=int, default=1, help="timed runs per throughput row (default 1; each covers 16 photos)"
    )
    parser.add_argument("--memory-calls", type=int, default=500, help="helpers.detect calls for the memory check")
    parser.add_argument("--memory-start", type=int, default=50, help="RSS growth is measured from this call on")
    parser.add_argument(
        "--memory-defaults",
        action="store_true",
        help="memory check with detect's default test-time augmentation (default: one 224 view, ~3x faster)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--no-resnet", action="store_true", help="only the stand-in (EfficientNet-Lite0)")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats, args.slow_warmup, args.slow_repeats = 1, 3, 0, 2
        args.batch_warmup, args.batch_repeats = 0, 1
        args.memory_calls, args.memory_start = 60, 10
    for name in ("repeats", "slow_repeats", "batch_repeats", "memory_calls", "memory_start"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("warmup", "slow_warmup", "batch_warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.memory_start >= args.memory_calls:
        parser.error("--memory-start must be smaller than --memory-calls")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)

    print("Benchmark: helpers Grad-CAM / CAM vs. per-class loops, pytorch-grad-cam and torchcam")
    print(f"device: CPU ({cpu_name()}, {os.cpu_count()} logical cores visible); no GPU used")
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), Python {platform.python_version()}"
    )
    print(f"pytorch-grad-cam (grad-cam) {package_version('grad-cam')}, torchcam {package_version('torchcam')}")
    busy_warning()

    photo = helpers.load_image(PHOTO)
    batch_dir = None if BATCH_SET is None else BATCH_SET / "images"
    batch = []
    if batch_dir is not None:
        files = sorted(p for p in batch_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        batch = [helpers.load_image(p) for p in files[:BATCH_SIZE]]
    sizes = sorted({f"{p.width}x{p.height}" for p in batch})
    print(
        f"photo: {PHOTO.name} {photo.width}x{photo.height}; batch: {len(batch)} photos from {batch_dir} "
        f"({len(sizes)} distinct sizes)"
    )

    models = [("stand-in", helpers.load_model("efficientnet_lite0"))]
    bases = [helpers.load_model("efficientnet_lite0", dilated=False)]
    if not args.no_resnet:
        resnet = torchvision.models.resnet50().eval().requires_grad_(False)  # frozen in eval mode, as load_model's
        published = helpers.wrap_resnet(resnet, "resnet50", "random init")
        if DILATED:
            dilated = helpers.dilate_resnet_layer4(torchvision.models.resnet50().eval().requires_grad_(False))
            dilated.load_state_dict(resnet.state_dict())
            models.append(("ResNet-50", helpers.wrap_resnet(dilated, "resnet50", "random init, layer4 dilated")))
        else:
            models.append(("ResNet-50", published))
        bases.append(published)
    print("models: " + "; ".join(f"{label} = {m.name} ({m.source})" for label, m in models), flush=True)

    results = [
        benchmark_model(label, loaded, photo, batch, args, base)
        for (label, loaded), base in zip(models, bases, strict=True)
    ]

    # One view by default: the same hooks and backward per call as the default test-time augmentation
    # (which runs that code once per view), at a fraction of the time.
    memory_options = ONE_VIEW if not args.memory_defaults else {}
    memory_text = "input_sizes=224, flip=False" if memory_options else VIEWS_TEXT
    progress(f"stand-in: memory check, {args.memory_calls} helpers.detect calls ({memory_text})")
    before, after, rss_source = memory_check(models[0][1], photo, args.memory_calls, args.memory_start, memory_options)

    # ---- report ----
    plain, markdown = single_photo_table(results, args)
    print("\n## One photo (Chihuahua.jpg, 740x493): median ms per photo\n")
    print(plain)
    print("\nMarkdown:\n")
    print(markdown)
    print("\nWhat each row includes (the photo is decoded once, outside the timing; every row preprocesses):")
    for name, note in NOTES.items():
        print(f"- {name}: {note}")
    print(
        f"- forward passes / autograd calls: counted in one untimed run (forward pre-hook on the model; calls of "
        f"torch.autograd.backward and torch.autograd.grad); 'a / b' when the models differ. "
        f"Timed runs: {args.repeats} per row after {args.warmup} warm-up runs (and the untimed counting run); "
        f"the rows costing several forward passes ({', '.join(SLOW_ROWS)}) {args.slow_repeats} after "
        f"{args.slow_warmup}; rows run round-robin."
    )
    for name, why in results[0].missing.items():
        print(f"- {name}: {why}")
    for r in results:
        if r.agreement:
            agreement = ", ".join(f"{name}: {value:.3f}" for name, value in r.agreement.items())
            print(f"- {r.label}: mean correlation of the top-5 maps with helpers.grad_cams: {agreement}")

    print("\n## Target checks (ratios of medians from this run)\n")
    checks_ok = True
    check_rows = []
    for r in results:
        for name, num, den, target, ok in (
            ("grad_cams top-5 / forward", GRAD_CAMS, FORWARD, "<= 1.3", lambda x: x <= 1.3),
            ("pytorch-grad-cam top-5 / grad_cams top-5", PGC, GRAD_CAMS, ">= 10", lambda x: x >= 10),
            ("torchcam top-5 / grad_cams top-5", TORCHCAM, GRAD_CAMS, ">= 1", lambda x: x >= 1),
            (
                "budget: detect top-5 (defaults) / one forward pass",
                DETECT,
                BASE if DILATED else FORWARD,
                f"<= {BUDGET_X_FORWARD:g}",
                lambda x: x <= BUDGET_X_FORWARD,
            ),
            (
                "budget: segment top-3 (defaults) / one forward pass",
                SEGMENT,
                BASE if DILATED else FORWARD,
                f"<= {BUDGET_X_FORWARD:g}",
                lambda x: x <= BUDGET_X_FORWARD,
            ),
            (
                "refinement: refine_label_map top-3 / one forward pass",
                REFINE,
                BASE if DILATED else FORWARD,
                "<= 1.8",
                lambda x: x <= 1.8,
            ),
        ):
            a, b = r.median_ms(num), r.median_ms(den)
            if a is None or b is None:
                check_rows.append([r.label, name, "-", target, "not measured"])
                continue
            met = ok(a / b)
            checks_ok &= met
            check_rows.append([r.label, name, f"{a / b:.2f}", target, "met" if met else "NOT MET"])
    plain, markdown = render(
        ["model", "ratio", "value", "target", "result"], check_rows, [False, False, True, False, False]
    )
    print(plain)
    print("\nMarkdown:\n")
    print(markdown)

    if batch:
        plain, markdown = throughput_table(results)
        print(
            f"\n## Throughput: a batch of {len(batch)} photos of different sizes "
            f"(median of {args.batch_repeats} run(s) of the whole batch after {args.batch_warmup} warm-up; "
            "photos per second)\n"
        )
        print(plain)
        print("\nMarkdown:\n")
        print(markdown)
        print(
            "(forward only = preprocess 16 photos + one batched forward under inference_mode; detect and segment "
            f"take the list of photos, with their {VIEWS_TEXT}: one batched forward per view; maps and boxes at "
            "each photo's own size)"
        )
    else:
        print("\n## Throughput: skipped, no imagenet_val photos in tests/data or the shared data")

    print(
        f"\n## Memory and hygiene (stand-in, {args.memory_calls} helpers.detect(photo, topk=5) calls, {memory_text})\n"
    )
    growth = after - before
    print(
        f"RSS after call {args.memory_start}: {before:.1f} MB; after call {args.memory_calls}: {after:.1f} MB; "
        f"growth {growth:+.1f} MB ({1024 * growth / (args.memory_calls - args.memory_start):+.2f} KB per call; "
        f"read with {rss_source})"
    )
    peak = peak_rss_mb()
    print(
        f"peak RSS of the whole run (all rows, both models, the {LARGE_SIZE[0]}x{LARGE_SIZE[1]} photo): "
        + ("not available" if peak is None else f"{peak:.0f} MB")
    )
    hygiene_ok = True
    for label, loaded in models:
        left = leftovers(loaded.model)
        hygiene_ok &= not left
        print(
            f"{label}: "
            + (
                "no hook left on any module, every parameter's .grad is None"
                if not left
                else "LEFT OVER: " + "; ".join(left)
            )
        )

    busy_warning()
    print(
        f"\nTotal time {time.perf_counter() - STARTED:.0f} s. Targets {'all met' if checks_ok else 'NOT all met'}; "
        f"hygiene {'ok' if hygiene_ok else 'FAILED'}."
    )
    return 0 if hygiene_ok else 1


if __name__ == "__main__":
    sys.exit(main())
