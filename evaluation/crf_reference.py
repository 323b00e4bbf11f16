"""helpers' dense CRF against the pydensecrf2 reference, on the mask sets. Run from the repository root (a benchmark
script, not a pytest test; pydensecrf2 is in requirements-bench.txt only: it builds from source)::

    python -m evaluation.crf_reference                  # -> evaluation/results/crf_reference.json, and a table
    python -m evaluation.crf_reference --limit 3        # a smoke run: the first 3 photos of each set

Every Pets photo (top-3, foreground IoU) and every COCO (photo, class) pair with oracle classes (the mapped IoU,
scored as ``python -m evaluation --refine`` scores them) gets, from ONE plain ``helpers.segment(..., refine=False)``:

- ``plain``: the sheet's plain map at ``helpers.DEFAULT_MASK_THRESHOLD``;
- ``helpers_crf``: ``helpers.refine_label_map(photo, seg)`` (``CRFSettings()``, ``DEFAULT_REFINED_MASK_THRESHOLD``);
- ``pydensecrf2_full``: pydensecrf2's ``DenseCRF2D`` on the full-size photo, with the same unaries (helpers'
  ``crf_unaries`` at the photo's size, ``-log`` as the energy), the same kernels in pixels (Gaussian sxy =
  ``gaussian_sxy`` x long side, compat ``gaussian_weight``; bilateral sxy = ``bilateral_sxy`` x long side,
  ``bilateral_srgb``, compat ``bilateral_weight``), the same iterations and threshold;
- ``pydensecrf2_working`` (unless ``--no-working``): the same at helpers' working resolution (``long_side``),
  upsampled as helpers does, which separates the lattice's approximation from the resolution.

Means with 95% bootstrap intervals, PAIRED differences (same items), and seconds per photo of each CRF.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import helpers
from evaluation import ROOT
from evaluation.boxes_masks import mask_items
from evaluation.data import SHARED_DATA, find_dataset, load_coco, load_pets
from evaluation.metrics import Interval, interval
from evaluation.records import RESULTS, run_record, write_run
from evaluation.report import ci_text

OUT = RESULTS / "crf_reference.json"
SETS = ("pets_seg", "coco_seg_oracle")
#: The compared label maps, in table order.
METHODS = ("plain", "helpers_crf", "pydensecrf2_full", "pydensecrf2_working")
#: The paired differences reported (first minus second).
DIFFERENCES = (
    ("helpers_crf", "pydensecrf2_full"),
    ("helpers_crf", "plain"),
    ("pydensecrf2_full", "plain"),
    ("helpers_crf", "pydensecrf2_working"),
    ("pydensecrf2_working", "pydensecrf2_full"),
)
#: The CRFs whose seconds per photo are measured.
TIMED = ("helpers_crf", "pydensecrf2_full", "pydensecrf2_working")


def pixel_kernels(settings: helpers.CRFSettings, long_side: int) -> dict[str, float]:
    """helpers' kernel widths (fractions of the long side) in pixels of a photo whose long side is ``long_side``,
    with their compatibilities, as pydensecrf2's ``addPairwiseGaussian`` / ``addPairwiseBilateral`` take them."""
    helpers.check_int(long_side, "long_side", meaning="pixels on the photo's long side")
    return {
        "gaussian_sxy": settings.gaussian_sxy * long_side,
        "gaussian_compat": settings.gaussian_weight,
        "bilateral_sxy": settings.bilateral_sxy * long_side,
        "bilateral_srgb": settings.bilateral_srgb,
        "bilateral_compat": settings.bilateral_weight,
    }


def densecrf_q(unaries: Tensor, colours: np.ndarray, settings: helpers.CRFSettings) -> Tensor:
    """pydensecrf2's mean field: label probabilities ``[L, h, w]`` (summing to 1 over L; the energy is
    ``-log max(p, 1e-8)``, as in helpers' ``_mean_field``) and the photo's colours uint8 ``[h, w, 3]`` -> Q
    ``[L, h, w]`` after ``settings.iterations`` steps, kernels from :func:`pixel_kernels` (pydensecrf2's default
    normalisation); a term whose weight is 0 is left out."""
    import pydensecrf.densecrf as dcrf

    labels, height, width = unaries.shape
    if colours.shape != (height, width, 3) or colours.dtype != np.uint8:
        raise ValueError(f"colours must be uint8 [{height}, {width}, 3], got {colours.dtype} {colours.shape}")
    kernels = pixel_kernels(settings, max(height, width))
    crf = dcrf.DenseCRF2D(width, height, labels)
    energy = -unaries.detach().cpu().float().clamp_min(1e-8).log().reshape(labels, -1)  # pydensecrf2 runs on the CPU
    crf.setUnaryEnergy(np.ascontiguousarray(energy.numpy(), dtype=np.float32))
    if settings.gaussian_weight > 0:
        crf.addPairwiseGaussian(sxy=kernels["gaussian_sxy"], compat=kernels["gaussian_compat"])
    if settings.bilateral_weight > 0:
        crf.addPairwiseBilateral(
            sxy=kernels["bilateral_sxy"],
            srgb=kernels["bilateral_srgb"],
            rgbim=np.ascontiguousarray(colours),
            compat=kernels["bilateral_compat"],
        )
    q = np.array(crf.inference(settings.iterations), dtype=np.float32)
    return torch.from_numpy(q).view(labels, height, width)


def _class_lut(seg: helpers.Segmentation) -> Tensor:
    """Label index (0 background, then the k classes) -> the label map's value (-1, ImageNet indices)."""
    return torch.tensor([-1, *(c for c, _, _ in seg.classes)], dtype=torch.int64)


def reference_full(
    photo: Image.Image, seg: helpers.Segmentation, threshold: float, settings: helpers.CRFSettings
) -> np.ndarray:
    """(c) pydensecrf2 on the full-size photo with helpers' unaries at the photo's size -> label map int64
    ``[H, W]`` (-1 background, else the ImageNet class)."""
    size = (photo.height, photo.width)
    unaries = helpers.crf_unaries(seg.cams_low.cpu(), seg.logits_low.cpu(), size, threshold, settings.temperature)
    colours = np.array(helpers.to_rgb(photo), dtype=np.uint8)
    q = densecrf_q(unaries, colours, settings)
    return _class_lut(seg)[q.argmax(dim=0)].numpy()


def reference_working(
    photo: Image.Image, seg: helpers.Segmentation, threshold: float, settings: helpers.CRFSettings
) -> np.ndarray:
    """(d) pydensecrf2 at helpers' working resolution (its unaries and colours at ``settings.long_side``), the
    probabilities upsampled and argmaxed as helpers does -> label map int64 ``[H, W]``."""
    size = helpers.crf_working_size(photo.height, photo.width, settings.long_side)
    unaries = helpers.crf_unaries(seg.cams_low.cpu(), seg.logits_low.cpu(), size, threshold, settings.temperature)
    colours = helpers.crf_colours(photo, size).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    q = densecrf_q(unaries, colours, settings)
    return _class_lut(seg)[helpers.upsampled_argmax(q, (photo.height, photo.width))].numpy()


def label_maps(
    photo: Image.Image, seg: helpers.Segmentation, working: bool
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every method's label map ``[H, W]`` of one photo, from its plain segmentation -> (maps, seconds per CRF)."""
    settings = helpers.CRFSettings()
    threshold = helpers.DEFAULT_REFINED_MASK_THRESHOLD
    runs: dict[str, Callable[[], np.ndarray]] = {
        "helpers_crf": lambda: helpers.refine_label_map(photo, seg),
        "pydensecrf2_full": lambda: reference_full(photo, seg, threshold, settings),
    }
    if working:
        runs["pydensecrf2_working"] = lambda: reference_working(photo, seg, threshold, settings)
    maps = {"plain": seg.label_map}
    seconds = {}
    for name, run in runs.items():
        start = time.perf_counter()
        maps[name] = run()
        seconds[name] = time.perf_counter() - start
    return maps, seconds


def measure(
    loaded: helpers.LoadedModel, data: Path, limit: int | None, working: bool
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]]]:
    """Per set, the per-item values of every method and the per-photo seconds of every CRF -> (values, seconds),
    each ``{set: {method: [...]}}``; the items of ``python -m evaluation --refine`` (one plain segment each)."""
    pets_root, coco_root = find_dataset("pets_seg", data), find_dataset("coco_seg", data)
    if pets_root is None or coco_root is None:
        raise FileNotFoundError(f"pets_seg and coco_seg are needed: not found under {str(data)!r} or tests/data")
    pets, coco = load_pets(pets_root), load_coco(coco_root)
    if limit is not None:
        pets, coco = pets[:limit], coco.head(limit)
    values: dict[str, dict[str, list[float]]] = {name: {} for name in SETS}
    seconds: dict[str, dict[str, list[float]]] = {name: {} for name in SETS}
    for name, photo, seg, score in mask_items(loaded, pets, coco, oracle=True):
        maps, spent = label_maps(photo, seg, working)
        for method, labels in maps.items():
            values[name].setdefault(method, []).extend(score(labels))
        for method, s in spent.items():
            seconds[name].setdefault(method, []).append(s)
        if len(seconds[name]["helpers_crf"]) % 25 == 0:
            print(f"{name}: {len(seconds[name]['helpers_crf'])} photos", flush=True)
    return values, seconds


def _block(values: dict[str, np.ndarray]) -> dict[str, object]:
    """One set's (or the pooled) means, paired differences and whether helpers' CRF matches the reference."""
    out: dict[str, object] = {"items": len(values["plain"])}
    out |= {method: interval(v) for method, v in values.items()}
    for a, b in DIFFERENCES:
        if a in values and b in values:
            out[f"{a}_minus_{b}"] = interval(values[a] - values[b])
    out["helpers_crf_vs_pydensecrf2_full"] = verdict(out["helpers_crf_minus_pydensecrf2_full"])
    return out


def verdict(difference: Interval) -> str:
    """A paired difference's interval (helpers minus the reference) in words: "same" when it holds 0, else
    "better" / "worse" beyond the interval."""
    if difference.low > 0:
        return "better"
    return "worse" if difference.high < 0 else "same"


def summarise(
    values: dict[str, dict[str, list[float]]], seconds: dict[str, dict[str, list[float]]]
) -> dict[str, object]:
    """The run's results: per set and pooled (Pets items, then COCO pairs) blocks of :func:`_block`, and the mean
    seconds per photo of each CRF with the ratio pydensecrf2 full / helpers."""
    present = [name for name in SETS if values[name]]
    if not present:
        raise ValueError("no items were measured: are pets_seg and coco_seg in the data folder?")
    arrays = {name: {m: np.asarray(v, dtype=np.float64) for m, v in values[name].items()} for name in present}
    results: dict[str, object] = {name: _block(arrays[name]) for name in present}
    results["pooled"] = _block({m: np.concatenate([arrays[name][m] for name in present]) for m in arrays[present[0]]})
    per_set = {name: seconds[name] for name in present}
    per_set["pooled"] = {m: [s for name in present for s in seconds[name][m]] for m in seconds[present[0]]}
    timing: dict[str, dict[str, float]] = {}
    for name, per in per_set.items():
        timing[name] = {m: float(np.mean(s)) for m, s in per.items()}
        timing[name]["photos"] = len(per["helpers_crf"])
        timing[name]["full_over_helpers"] = timing[name]["pydensecrf2_full"] / timing[name]["helpers_crf"]
    results["seconds_per_photo"] = timing
    return results


def table(results: dict[str, object]) -> str:
    """A plain-text table of the means, the paired differences and the seconds per photo."""
    columns = [name for name in (*SETS, "pooled") if name in results]
    rows = [m for m in METHODS if m in results[columns[0]]]
    diffs = [f"{a}_minus_{b}" for a, b in DIFFERENCES if f"{a}_minus_{b}" in results[columns[0]]]
    width = max(len(r) for r in rows + diffs) + 2
    lines = [" " * width + "".join(f"{c:>28}" for c in columns)]
    lines.append(" " * width + "".join(f"{'(items ' + str(results[c]['items']) + ')':>28}" for c in columns))
    for key in rows + diffs:
        signed = key in diffs
        lines.append(f"{key:<{width}}" + "".join(f"{ci_text(results[c][key], False, signed):>28}" for c in columns))
    verdicts = "".join(f"{results[c]['helpers_crf_vs_pydensecrf2_full']:>28}" for c in columns)
    lines.append(f"{'helpers_crf vs pydensecrf2_full':<{width}}{verdicts}")
    timing = results["seconds_per_photo"]
    for m in (*TIMED, "full_over_helpers"):
        if m in timing["pooled"]:
            label = "s/photo " + m if m != "full_over_helpers" else "ratio full / helpers"
            lines.append(f"{label:<{width}}" + "".join(f"{timing[c][m]:>28.3f}" for c in columns))
    return "\n".join(lines)


def reference_missing() -> str | None:
    """Why pydensecrf2 cannot be used (it is not installed, or does not load), None when it can."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError as err:
        return (
            f"pydensecrf2 is needed for the reference run and cannot be imported ({type(err).__name__}: {err}). It has "
            "no wheel: pip install -r requirements-bench.txt builds it from source (a C++ compiler is needed)."
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding pets_seg and coco_seg")
    parser.add_argument("--model", default="efficientnet_lite0", choices=helpers.MODEL_NAMES)
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON file to write")
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT photos of each set (smoke run)")
    parser.add_argument("--no-working", action="store_true", help="skip pydensecrf2 at helpers' working resolution")
    args = parser.parse_args(argv)
    if args.limit is not None:
        helpers.check_int(args.limit, "--limit", meaning="photos per set")
    if (missing := reference_missing()) is not None:
        print(missing, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    loaded = helpers.load_model(args.model)
    start = time.perf_counter()
    values, seconds = measure(loaded, args.data, args.limit, working=not args.no_working)
    results = summarise(values, seconds)
    config = {
        "technique": "crf reference",
        "dilated": helpers.DEFAULT_DILATED,
        "input_sizes": helpers.DEFAULT_INPUT_SIZES,
        "flip": helpers.DEFAULT_FLIP,
        "crf_settings": dataclasses.asdict(helpers.CRFSettings()),
        "plain_threshold": helpers.DEFAULT_MASK_THRESHOLD,
        "refined_threshold": helpers.DEFAULT_REFINED_MASK_THRESHOLD,
        "pydensecrf2": importlib.metadata.version("pydensecrf2"),
        "reference": "DenseCRF2D, the same unaries (-log) and kernels in pixels of the photo's long side, "
        "pydensecrf2's default normalisation (symmetric); helpers normalises each pixel's filter by its sum",
        "limit": args.limit,
    }
    record = run_record(config, results, time.perf_counter() - start, loaded.name)
    path = write_run(args.out, record)
    print(table(results))
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
