"""Speed and memory benchmark of helpers' Grad-CAM / CAM against the usual alternatives.

Run from the repository root (not a pytest test; it defines no test functions)::

    python -m evaluation.benchmark            # full run -> evaluation/results/benchmark.json, and its tables
    python -m evaluation.benchmark --quick    # short run, to check that everything works (--out elsewhere)
    python -m evaluation.benchmark --readme   # no run: the README's Speed rows from the stored record

With the benchmark environment (``pip install -r requirements-bench.txt``) the rows for
pytorch-grad-cam and torchcam are measured; without those packages they read "not installed".

What is measured (on the CPU, or on ``--device``):

- milliseconds per photo (median over timed runs, after warm-up runs) for one photo,
  ``Chihuahua.jpg`` (740x493; the segment rows also on it enlarged to 8000x6000, a large photo),
  on the offline stand-in (EfficientNet-Lite0, ImageNet weights), on a randomly initialised torchvision ResNet-50
  (weights do not change speed) and, for ``detect`` alone, on a randomly initialised ResNet-18 (BasicBlocks). Each
  model is measured against one forward pass of itself as published (last stage at stride 2), the budget's unit.
  The rows run round-robin (one run of every row, then the next round), so machine noise hits all rows alike and
  the ratios stay meaningful;
- forward passes of the model and calls into autograd (``backward``/``autograd.grad``) per top-5;
- throughput (photos per second) for a batch of 16 photos of different sizes;
- photos per second of ``detect`` top-5 called from 1, 2 and 4 Python threads on one shared model, against
  sequential calls, with the calls that raised or differ from the sequential ones counted;
- resident memory growth over repeated ``helpers.detect`` calls, and that no hook or ``.grad``
  is left on any model afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import nn

import helpers
from evaluation import speed
from evaluation.cam_alternatives import (
    PGC_MISSING,
    TORCHCAM_MISSING,
    naive_grad_cams,
    pgc_grad_cams,
    torchcam_grad_cams,
)
from evaluation.data import ROOT, TEST_DATA, find_dataset
from evaluation.speed import (
    BUDGET_X_FORWARD,
    DETECT,
    FORWARD,
    GRAD_CAMS,
    PGC,
    PUBLISHED,
    REFINE,
    SEGMENT,
    TORCHCAM,
)

PHOTO = ROOT / "Chihuahua.jpg"
#: The batch's photos: the harness's imagenet_val, the repository's copy first (the shared set as a fallback).
BATCH_SET = find_dataset("imagenet_val", TEST_DATA) or find_dataset("imagenet_val")
TOPK = 5
SEGMENT_TOPK = 3
BATCH_SIZE = 16
#: The Python thread counts of the thread rows (0 stands for sequential calls in the main thread).
WORKERS = (0, 1, 2, 4)

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

DILATED = helpers.DEFAULT_DILATED
#: The row that is "one forward pass" of the budget: the classifier as published (the same as loaded when undilated).
UNIT = PUBLISHED if DILATED else FORWARD
LARGE_SIZE = (8000, 6000)  # the large photo: the Chihuahua enlarged (width, height)
LARGE = f" ({LARGE_SIZE[0]}x{LARGE_SIZE[1]})"
DETECT_ONE, SEGMENT_ONE, SEGMENT_PLAIN = "detect_224", "segment_224", "segment_plain"
SEGMENT_LARGE, SEGMENT_PLAIN_LARGE, REFINE_LARGE = "segment_large", "segment_plain_large", "refine_large"
NAIVE = "naive"

#: Row key -> the row's title, in table order.
TITLES: dict[str, str] = {
    PUBLISHED: "plain forward pass, the classifier as published",
    FORWARD: "plain forward pass" + (" (last stage dilated, as loaded)" if DILATED else ""),
    GRAD_CAMS: "helpers.grad_cams top-5",
    DETECT: f"helpers.detect top-5, defaults ({DEFAULT_VIEW_TEXT})",
    DETECT_ONE: "helpers.detect top-5, plain 224 view",
    SEGMENT: f"helpers.segment top-3, defaults ({DEFAULT_VIEW_TEXT})",
    SEGMENT_ONE: "helpers.segment top-3, plain 224 view",
    SEGMENT_PLAIN: "helpers.segment top-3, refine=False (plain masks)",
    REFINE: "helpers.refine_label_map top-3 (the dense CRF alone)",
}
TITLES |= {
    SEGMENT_LARGE: TITLES[SEGMENT] + LARGE,
    SEGMENT_PLAIN_LARGE: TITLES[SEGMENT_PLAIN] + LARGE,
    REFINE_LARGE: TITLES[REFINE] + LARGE,
    NAIVE: "naive per-class loop top-5",
    PGC: "pytorch-grad-cam top-5",
    TORCHCAM: "torchcam top-5",
}
if DEFAULTS_ARE_ONE_VIEW:
    del TITLES[DETECT_ONE], TITLES[SEGMENT_ONE]
if not DILATED:
    del TITLES[PUBLISHED]
# Rows costing several forward passes get fewer runs (--slow-warmup, --slow-repeats).
SLOW_ROWS = ((DETECT, SEGMENT) if not DEFAULTS_ARE_ONE_VIEW else ()) + (
    NAIVE,
    PGC,
    SEGMENT_LARGE,
    SEGMENT_PLAIN_LARGE,
    REFINE_LARGE,
)
#: The rows of a variant measured for ``detect`` alone (ResNet-18): against its own published forward pass.
VARIANT_ROWS = (UNIT, DETECT)
STARTED = time.perf_counter()
CPU = torch.device("cpu")

NOTES: dict[str, str] = {
    PUBLISHED: "preprocess (resize to 224x224, normalise) + forward under torch.inference_mode() of the classifier "
    "with its last stage at stride 2, as torch.hub / PyPI give it: the 'one forward pass' of the cost budget.",
    FORWARD: "preprocess (resize to 224x224, normalise) + model forward under torch.inference_mode().",
    GRAD_CAMS: "helpers.grad_cams(loaded, photo, top5) with its defaults (one 224 view): preprocess, one "
    "forward, one batched backward (vmap over 5 seeds, stopping at the target layer), 5 maps upsampled to "
    "the photo. The 5 class indices are computed once beforehand.",
    DETECT: f"helpers.detect(loaded, photo, topk=5) ({VIEWS_TEXT}): one forward at 224 for softmax/top-5 (shared "
    "with the first view when that is 224 unflipped), then per map view a preprocess, one forward and one batched "
    "backward; maps averaged; one box per class (map upsampled to the photo size, thresholded, scipy connected "
    "components). Heatmaps are lazy, not made.",
    DETECT_ONE: f"helpers.detect(loaded, photo, topk=5, input_sizes=224, flip=False): as {TITLES[GRAD_CAMS]!r} "
    "plus softmax/top-5 and the boxes.",
    SEGMENT: f"helpers.segment(loaded, photo, topk=3) ({VIEWS_TEXT}, refine={helpers.DEFAULT_REFINE}): one forward "
    "at 224 for the classes (shared with the first view when that is 224 unflipped), then per map view a "
    "preprocess and one forward under inference_mode (CAM needs no gradient); maps averaged; then (the default) "
    f"the dense CRF of {TITLES[REFINE]!r}, or the plain label map of {TITLES[SEGMENT_PLAIN]!r}.",
    SEGMENT_ONE: "helpers.segment(loaded, photo, topk=3, input_sizes=224, flip=False): one forward, then the "
    "default CRF.",
    SEGMENT_PLAIN: f"helpers.segment(loaded, photo, topk=3, refine=False) ({VIEWS_TEXT}): the sheet's recipe: 3 CAMs "
    "upsampled to the photo, masks, label map by the per-pixel logits.",
    REFINE: "helpers.refine_label_map(photo, seg) with the default CRFSettings, seg from segment(refine=False) "
    "beforehand: the CRF's part of the default segment, no forward pass (working photo of CRFSettings().long_side "
    "px, unaries, permutohedral lattice, mean field, label probabilities upsampled to the photo, argmax).",
    SEGMENT_LARGE: f"as {TITLES[SEGMENT]!r}, on the Chihuahua enlarged to {LARGE_SIZE[0]}x{LARGE_SIZE[1]}.",
    SEGMENT_PLAIN_LARGE: f"as {TITLES[SEGMENT_PLAIN]!r}, on the enlarged Chihuahua.",
    REFINE_LARGE: f"as {TITLES[REFINE]!r}, on the enlarged Chihuahua.",
    NAIVE: "tutorial-style loop: preprocess once, then per class a fresh forward with grad enabled (forward hook "
    "making the target layer's output a leaf, tensor hook saving its gradient), logit[c].backward() stopping "
    "at the target layer, Grad-CAM, upsampled to the photo. The cheapest per-class loop: with trainable "
    "weights a tutorial would also backpropagate through the whole network.",
    PGC: "pytorch-grad-cam GradCAM(model, target_layers=[target_layer]) in a with-block (hooks released), "
    "5 calls with one ClassifierOutputTarget each (how per-class maps are made); its 224x224 maps upsampled "
    "to the photo. The model is frozen, so the input gets requires_grad_() (else its backward fails); "
    "its loss.backward() then runs through the whole network to the input.",
    TORCHCAM: "torchcam GradCAM(model, target_layer=target_layer) in a with-block (hooks removed): one forward "
    "(input requires_grad_(), the model is frozen), then extractor(class_idx=c, scores=scores, "
    "retain_graph=True) per class: class_idx lists are per batch sample, not per class, so one photo needs "
    "5 calls (5 autograd.grad, each stopping at the target layer); its maps upsampled to the photo.",
}
NOTES = {key: NOTES[key] for key in TITLES}


# --------------------------------------------------------------------------------------------
# Small tools
# --------------------------------------------------------------------------------------------


def progress(message: str) -> None:
    """A progress line with the seconds since the start and the load average."""
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"  [{time.perf_counter() - STARTED:5.0f} s{load}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------


def resnet_pair(
    architecture: Callable[[], nn.Module], name: str, dilate: Callable[[nn.Module], nn.Module], device: torch.device
) -> tuple[helpers.LoadedModel, helpers.LoadedModel]:
    """A randomly initialised torchvision ResNet as measured (last stage dilated when helpers' default is) and as
    published (the same weights, stride 2) -> (measured, published), both on ``device``."""
    published_model = architecture().eval().requires_grad_(False)  # frozen in eval mode, as load_model's models
    published = helpers.wrap_resnet(published_model, name, "random init")
    measured = published
    if DILATED:
        model = architecture().eval().requires_grad_(False)
        model.load_state_dict(published_model.state_dict())
        measured = helpers.wrap_resnet(dilate(model), name, "random init, layer4 dilated")
    for loaded in (published, measured):
        loaded.model.to(device)
    return measured, published


# --------------------------------------------------------------------------------------------
# The rows: each function computes one photo's result end to end
# --------------------------------------------------------------------------------------------


def single_photo_rows(
    loaded: helpers.LoadedModel, photo: Image.Image, base: helpers.LoadedModel, keys: Collection[str]
) -> dict[str, Callable[[], object] | str]:
    """Row key -> a function of no argument, or a string saying why the row is missing, for the rows ``keys`` (in
    table order). ``base``: the classifier as published (last stage at stride 2), for the budget's "one forward
    pass"."""
    device = loaded.device
    needs_large = bool({SEGMENT_LARGE, SEGMENT_PLAIN_LARGE, REFINE_LARGE} & set(keys))
    large = photo.resize(LARGE_SIZE, Image.BILINEAR) if needs_large else None
    plain = {}
    if REFINE in keys:
        plain[REFINE] = helpers.segment(loaded, photo, topk=SEGMENT_TOPK, refine=False)
    if REFINE_LARGE in keys:
        plain[REFINE_LARGE] = helpers.segment(loaded, large, topk=SEGMENT_TOPK, refine=False)
    classes: list[int] = []
    if {GRAD_CAMS, NAIVE, PGC, TORCHCAM} & set(keys):
        with torch.inference_mode():
            classes = loaded.model(loaded.preprocess(photo).to(device)).topk(TOPK, dim=1).indices[0].tolist()

    def forward(model: helpers.LoadedModel) -> Callable[[], torch.Tensor]:
        def run():
            with torch.inference_mode():
                return model.model(model.preprocess(photo).to(model.device))

        return run

    rows = {
        PUBLISHED: forward(base),
        FORWARD: forward(loaded),
        GRAD_CAMS: lambda: helpers.grad_cams(loaded, photo, classes),
        DETECT: lambda: helpers.detect(loaded, photo, topk=TOPK),
        DETECT_ONE: lambda: helpers.detect(loaded, photo, topk=TOPK, **ONE_VIEW),
        SEGMENT: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK),
        SEGMENT_ONE: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK, **ONE_VIEW),
        SEGMENT_PLAIN: lambda: helpers.segment(loaded, photo, topk=SEGMENT_TOPK, refine=False),
        REFINE: lambda: helpers.refine_label_map(photo, plain[REFINE]),
        SEGMENT_LARGE: lambda: helpers.segment(loaded, large, topk=SEGMENT_TOPK),
        SEGMENT_PLAIN_LARGE: lambda: helpers.segment(loaded, large, topk=SEGMENT_TOPK, refine=False),
        REFINE_LARGE: lambda: helpers.refine_label_map(large, plain[REFINE_LARGE]),
        NAIVE: lambda: naive_grad_cams(loaded, photo, classes),
        PGC: PGC_MISSING or (lambda: pgc_grad_cams(loaded, photo, classes)),
        TORCHCAM: TORCHCAM_MISSING or (lambda: torchcam_grad_cams(loaded, photo, classes)),
    }
    return {key: rows[key] for key in TITLES if key in keys}


@dataclass
class ModelResult:
    """One model's measurements: median seconds and counts per row key, why rows are missing, the other methods'
    agreement with ``helpers.grad_cams`` and photos per second on the batch."""

    label: str
    keys: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, speed.Counts] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    batch: int = 0

    def median_ms(self, key: str) -> float | None:
        return 1000 * self.seconds[key] if key in self.seconds else None


def benchmark_model(
    label: str,
    loaded: helpers.LoadedModel,
    base: helpers.LoadedModel,
    photo: Image.Image,
    batch: list[Image.Image],
    args: argparse.Namespace,
    keys: Collection[str] = tuple(TITLES),
) -> ModelResult:
    """The rows ``keys`` of one model on ``photo`` (counted once, then timed round-robin), and, with a ``batch``,
    its throughput. A row that raises in its counting run is recorded as failed and not timed."""
    device = loaded.device
    rows = single_photo_rows(loaded, photo, base, keys)
    result = ModelResult(label, keys=list(rows))
    result.missing = {key: why for key, why in rows.items() if isinstance(why, str)}
    runnable = {key: speed.synchronised(fn, device) for key, fn in rows.items() if not isinstance(fn, str)}

    # Forward passes and autograd calls, from one untimed run of each row (which also warms it up).
    progress(f"{label}: counting forward passes and autograd calls, comparing maps")
    outputs = {}
    for key, fn in list(runnable.items()):
        try:
            result.counts[key], outputs[key] = speed.count_passes(base.model if key == PUBLISHED else loaded.model, fn)
        except Exception as err:  # a row that cannot run today is reported as failed, in the table and the record
            result.missing[key] = speed.failure(err)
            del runnable[key]
            print(f"  {label}: {TITLES[key]}: {result.missing[key]}", flush=True)

    # Do the other methods compute the same Grad-CAM? (correlation with helpers.grad_cams, mean over 5 maps)
    for key in (NAIVE, PGC, TORCHCAM):
        if key in outputs and GRAD_CAMS in outputs:
            result.agreement[TITLES[key]] = statistics.fmean(
                helpers.heatmap_correlation(a, b) for a, b in zip(outputs[GRAD_CAMS], outputs[key], strict=True)
            )
    del outputs

    warmup = {key: args.slow_warmup if key in SLOW_ROWS else args.warmup for key in runnable}
    repeats = {key: args.slow_repeats if key in SLOW_ROWS else args.repeats for key in runnable}
    progress(
        f"{label}: timing {len(runnable)} rows ({args.warmup} warm-up + {args.repeats} timed runs; slow rows "
        f"{args.slow_warmup} + {args.slow_repeats})"
    )
    result.seconds = speed.median_seconds(runnable, repeats, warmup)

    if batch:
        progress(f"{label}: throughput on a batch of {len(batch)} photos")

        def batch_forward():
            with torch.inference_mode():
                return loaded.model(torch.cat([loaded.preprocess(p) for p in batch]).to(device))

        batch_rows = {
            "forward only": batch_forward,
            TITLES[DETECT]: lambda: helpers.detect(loaded, batch, topk=TOPK),
            TITLES[SEGMENT]: lambda: helpers.segment(loaded, batch, topk=SEGMENT_TOPK),
            TITLES[SEGMENT_PLAIN]: lambda: helpers.segment(loaded, batch, topk=SEGMENT_TOPK, refine=False),
        }
        batch_rows = {name: speed.synchronised(fn, device) for name, fn in batch_rows.items()}
        seconds = speed.median_seconds(batch_rows, args.batch_repeats, args.batch_warmup)
        result.throughput = {name: len(batch) / s for name, s in seconds.items()}
        result.batch = len(batch)
    return result


def detection_key(detections: list[helpers.Detection]) -> list[tuple[int, object]]:
    """What two ``detect`` results must share to count as the same: each detection's class and box."""
    return [(d.class_index, d.box) for d in detections]


def thread_rows(
    label: str, loaded: helpers.LoadedModel, photo: Image.Image, calls: int, workers: Sequence[int] = WORKERS
) -> list[speed.ThreadRow]:
    """``calls`` calls of ``helpers.detect(loaded, photo, topk=5)`` on the one shared ``loaded``: sequentially in this
    thread (workers 0), then from a ``ThreadPoolExecutor`` of each worker count. A call that raises is counted (with
    the first error), not re-raised; a result whose classes or boxes differ from the sequential calls' is counted."""
    expected = detection_key(helpers.detect(loaded, photo, topk=TOPK))

    def attempt(_call: int) -> list[helpers.Detection] | Exception:
        try:
            return helpers.detect(loaded, photo, topk=TOPK)
        except Exception as err:  # counted in the row, with the first error's text
            return err

    rows = []
    for count in workers:
        start = time.perf_counter()
        if count == 0:
            outcomes = [attempt(i) for i in range(calls)]
        else:
            with ThreadPoolExecutor(max_workers=count) as pool:
                outcomes = list(pool.map(attempt, range(calls)))
        seconds = time.perf_counter() - start
        errors = [o for o in outcomes if isinstance(o, Exception)]
        done = [o for o in outcomes if not isinstance(o, Exception)]
        differing = sum(detection_key(o) != expected for o in done)
        text = "sequential" if count == 0 else f"{count} thread(s)"
        progress(f"{label}: detect top-5 x {calls}, {text}: {len(errors)} failed, {differing} differ")
        first = speed.failure(errors[0]) if errors else ""
        rows.append(
            speed.ThreadRow(
                label, "helpers.detect top-5", count, calls, round(seconds, 4), round(len(done) / seconds, 3),
                len(errors), differing, first,
            )
        )
    return rows


def memory_check(
    loaded: helpers.LoadedModel, photo: Image.Image, calls: int, start: int, options: dict
) -> speed.Memory:
    """Resident memory after call ``start`` and after call ``calls`` of helpers.detect (MB)."""
    gc.collect()
    before = None
    for i in range(1, calls + 1):
        helpers.detect(loaded, photo, topk=TOPK, **options)
        if i == start:
            gc.collect()
            before, _ = speed.rss_mb()
    gc.collect()
    after, source = speed.rss_mb()
    peak = speed.peak_rss_mb()
    text = "input_sizes=224, flip=False" if options else VIEWS_TEXT
    call = f"helpers.detect(photo, topk=5) ({text}) on {loaded.name}"
    return speed.Memory(call, calls, start, round(before, 2), round(after, 2), source, peak and round(peak, 1), {})


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------

#: The target checks: (what, numerator row, denominator row, the comparison, the bound).
CHECKS = (
    ("grad_cams top-5 / forward", GRAD_CAMS, FORWARD, "<=", 1.3),
    ("pytorch-grad-cam top-5 / grad_cams top-5", PGC, GRAD_CAMS, ">=", 10),
    ("torchcam top-5 / grad_cams top-5", TORCHCAM, GRAD_CAMS, ">=", 1),
    ("budget: detect top-5 (defaults) / one forward pass", DETECT, UNIT, "<=", BUDGET_X_FORWARD),
    ("budget: segment top-3 (defaults) / one forward pass", SEGMENT, UNIT, "<=", BUDGET_X_FORWARD),
    ("refinement: refine_label_map top-3 / one forward pass", REFINE, UNIT, "<=", 1.8),
)


def target_checks(results: Sequence[ModelResult]) -> list[speed.TargetCheck]:
    """Each check of :data:`CHECKS` for each model that has both rows (measured or not)."""
    checks = []
    for r in results:
        for name, numerator, denominator, comparison, bound in CHECKS:
            if numerator not in r.keys or denominator not in r.keys:
                continue
            a, b, target = r.median_ms(numerator), r.median_ms(denominator), f"{comparison} {bound:g}"
            if a is None or b is None:
                checks.append(speed.TargetCheck(r.label, name, None, target, None))
            else:
                met = a / b <= bound if comparison == "<=" else a / b >= bound
                checks.append(speed.TargetCheck(r.label, name, round(a / b, 4), target, met))
    return checks


def speed_rows(result: ModelResult, args: argparse.Namespace) -> list[speed.SpeedRow]:
    """The record's rows of one model, in table order; ratios against its :data:`UNIT` row."""
    unit = result.median_ms(UNIT)
    rows = []
    for key in result.keys:
        ms = result.median_ms(key)
        counts = result.counts.get(key)
        repeats = 0 if ms is None else args.slow_repeats if key in SLOW_ROWS else args.repeats
        rows.append(
            speed.SpeedRow(
                key, TITLES[key], result.label, None if ms is None else round(ms, 3),
                None if ms is None or not unit else round(ms / unit, 4), repeats,
                counts and counts.forwards, counts and counts.autograd_calls, result.missing.get(key, ""),
            )
        )
    return rows


def make_record(
    args: argparse.Namespace,
    models: Sequence[speed.ModelInfo],
    results: Sequence[ModelResult],
    threads: Sequence[speed.ThreadRow] = (),
    memory: speed.Memory | None = None,
    device: torch.device = CPU,
    photo: Image.Image | None = None,
) -> speed.BenchmarkRecord:
    """The run's :class:`~evaluation.speed.BenchmarkRecord`: every model's rows, the target checks, throughput,
    thread rows, memory, with the date, versions, threads and machine."""
    shown = "" if photo is None else f"{PHOTO.name} {photo.width}x{photo.height}"
    return speed.BenchmarkRecord(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - STARTED, 1),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        python=platform.python_version(),
        machine=speed.machine(device),
        photo=shown,
        models=list(models),
        rows=[row for r in results for row in speed_rows(r, args)],
        checks=target_checks(results),
        budget=BUDGET_X_FORWARD,
        throughput=[
            speed.Throughput(r.label, name, r.batch, round(value, 3))
            for r in results
            for name, value in r.throughput.items()
        ],
        threads=list(threads),
        memory=memory,
        agreement={r.label: {k: round(v, 4) for k, v in r.agreement.items()} for r in results if r.agreement},
        descriptions={TITLES[key]: NOTES[key] for key in TITLES if any(key in r.keys for r in results)},
        settings={key: value for key, value in vars(args).items() if key not in ("out", "readme")},
    )


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


#: The counting options: (flag, default, smallest value, --quick's value, help).
COUNTS = (
    ("--warmup", 3, 0, 1, "warm-up runs per row"),
    ("--repeats", 15, 1, 3, "timed runs per row"),
    ("--slow-warmup", 1, 0, 0, "warm-up runs of the rows costing several forward passes"),
    ("--slow-repeats", 7, 1, 2, "timed runs of the rows costing several forward passes (naive loop, "
     "pytorch-grad-cam, detect and segment with test-time views, the large photo)"),
    ("--batch-warmup", 0, 0, 0, "warm-up runs per throughput row (the single-photo rows warmed up the same code)"),
    ("--batch-photos", BATCH_SIZE, 0, 4, "photos of different sizes in the throughput batch (0: no throughput rows)"),
    ("--batch-repeats", 1, 1, 1, "timed runs per throughput row (each covers the whole batch)"),
    ("--thread-calls", 16, 0, 4, "detect calls per thread row (0: no thread rows)"),
    ("--memory-calls", 500, 1, 60, "helpers.detect calls for the memory check"),
    ("--memory-start", 50, 1, 10, "RSS growth is measured from this call on"),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run, to check that everything works: the counts below as noted"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=speed.RECORD,
        help=f"the record to write (default evaluation/results/{speed.RECORD.name}); with --readme, the one to read",
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="no run: write the README's Speed rows from the record at --out and print its speed tables",
    )
    for flag, default, _, quick, text in COUNTS:
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default {default}; {quick} with --quick)")
    parser.add_argument(
        "--memory-defaults",
        action="store_true",
        help="memory check with detect's default test-time views (default: one 224 view, faster)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="where the models run: cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--no-resnet", action="store_true", help="only the stand-in (EfficientNet-Lite0)")
    args = parser.parse_args(argv)
    for flag, _, least, quick, _ in COUNTS:
        name = flag[2:].replace("-", "_")
        if args.quick:
            setattr(args, name, quick)
        if getattr(args, name) < least:
            parser.error(f"{flag} must be >= {least}, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.memory_start >= args.memory_calls:
        parser.error("--memory-start must be smaller than --memory-calls")
    try:
        torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device must name a torch device such as cpu or cuda, got {args.device!r}")
    if args.out.is_dir():
        parser.error(f"--out must be a file name, {str(args.out)!r} is a folder")
    return args


def load_batch(count: int) -> list[Image.Image]:
    """The first ``count`` photos of :data:`BATCH_SET` (none when the set is missing)."""
    if BATCH_SET is None or count == 0:
        return []
    files = sorted(p for p in (BATCH_SET / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [helpers.load_image(p) for p in files[:count]]


def shown(path: Path) -> str:
    """``path`` relative to the repository root when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path)


def readme_only(args: argparse.Namespace) -> int:
    """``--readme``: the README's Speed rows from the stored record; its speed tables printed."""
    if not args.out.is_file():
        print(f"No record at {shown(args.out)}: run python -m evaluation.benchmark first.", file=sys.stderr)
        return 1
    record = speed.load_benchmark(args.out)
    readme = speed.write_readme_speed_rows(record)
    print(speed.speed_table_markdown(record))
    print(f"{shown(readme)}: Speed rows written from {shown(args.out)}:\n{speed.readme_speed_rows(record)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.readme:
        return readme_only(args)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print("Benchmark: helpers Grad-CAM / CAM vs. per-class loops, pytorch-grad-cam and torchcam")
    where = speed.machine(device)
    print(f"device: {where.gpu or 'CPU'} ({where.processor}, {where.cpu_count} logical cores visible)")
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), Python {platform.python_version()}"
    )
    versions = {name: speed.package_version(name) for name in ("grad-cam", "torchcam")}
    print(f"pytorch-grad-cam (grad-cam) {versions['grad-cam']}, torchcam {versions['torchcam']}")
    speed.busy_warning()

    photo = helpers.load_image(PHOTO)
    batch = load_batch(args.batch_photos)
    sizes = sorted({f"{p.width}x{p.height}" for p in batch})
    print(f"photo: {PHOTO.name} {photo.width}x{photo.height}; batch: {len(batch)} photos ({len(sizes)} distinct sizes)")

    # (label, measured, published, rows): the stand-in and ResNet-50 get every row, ResNet-18 the variant's rows.
    lite = [helpers.load_model("efficientnet_lite0", dilated=d, device=device) for d in (DILATED, False)]
    models = [("stand-in", *lite, tuple(TITLES))]
    if not args.no_resnet:
        resnet50 = resnet_pair(torchvision.models.resnet50, "resnet50", helpers.dilate_resnet_layer4, device)
        resnet18 = resnet_pair(torchvision.models.resnet18, "resnet18", helpers.dilate_resnet_layer4, device)
        models += [("ResNet-50", *resnet50, tuple(TITLES)), ("ResNet-18", *resnet18, VARIANT_ROWS)]
    infos = [speed.ModelInfo(label, loaded.name, loaded.source) for label, loaded, _, _ in models]
    print("models: " + "; ".join(f"{i.label} = {i.name} ({i.source})" for i in infos), flush=True)

    results = [
        benchmark_model(label, loaded, base, photo, batch if keys == tuple(TITLES) else [], args, keys)
        for label, loaded, base, keys in models
    ]
    stand_in = models[0][1]
    threads = thread_rows("stand-in", stand_in, photo, args.thread_calls) if args.thread_calls else []

    # One view by default: the same hooks and backward per call as the default test-time augmentation
    # (which runs that code once per view), at a fraction of the time.
    options = ONE_VIEW if not args.memory_defaults else {}
    progress(f"stand-in: memory check, {args.memory_calls} helpers.detect calls")
    memory = memory_check(stand_in, photo, args.memory_calls, args.memory_start, options)
    for label, loaded, base, _ in models:
        memory.leftovers[label] = speed.leftovers(loaded.model) + speed.leftovers(base.model)

    record = make_record(args, infos, results, threads, memory, device, photo)
    path = speed.write_benchmark(record, args.out)
    print()
    print(speed.speed_table_markdown(record))
    print("README rows (python -m evaluation.benchmark --readme writes them):\n")
    print(speed.readme_speed_rows(record))
    for r in results:
        for name, value in r.agreement.items():
            print(f"- {r.label}: mean correlation of {name}'s top-5 maps with helpers.grad_cams: {value:.3f}")
    speed.busy_warning()
    met = all(c.met is not False for c in record.checks)
    hygiene = not any(memory.leftovers.values())
    print(
        f"\nRecord: {shown(path)}. Total time {time.perf_counter() - STARTED:.0f} s. "
        f"Targets {'all met' if met else 'NOT all met'}; hygiene {'ok' if hygiene else 'FAILED'}."
    )
    return 0 if hygiene else 1


if __name__ == "__main__":
    sys.exit(main())
