"""The command line of the harness (``python -m evaluation ...``, run from the repository root)::

python -m evaluation                       # every technique on every data set found
python -m evaluation --technique plain     # one technique
python -m evaluation --summary             # the data sets found, with their counts
python -m evaluation --detection           # AP@0.5 and CorLoc -> results/detection.json
python -m evaluation --sizes               # boxes by object size -> results/sizes.json
python -m evaluation --refine              # the CRF refinement's protocol -> results/refine.json
python -m evaluation --detail 320          # one detail-size candidate -> results/detail_320.json
python -m evaluation --detail 320 --limit 5 --out build/try   # a few photos per set, to try it
python -m evaluation --markdown            # the tables of results/*.json -> results/README.md
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import helpers

from .boxes_masks import TECHNIQUES, evaluate
from .data import ROOT, SHARED_DATA, data_summary
from .detail import CANDIDATES, detail_results, detail_view
from .detection import detection_results
from .records import RESULTS, jsonable, read, run_record, write_run
from .refine import refine_run
from .report import protocol_markdown, summary_line, write_report
from .sizes import sizes_results


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    out = argparse.ArgumentParser(description="Evaluation harness of helpers.py: " + __doc__.split("\n\n")[0])
    out.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA,
        help="folder holding imagenet_val_227, imagenet_val, pets_seg, coco_seg (missing sets are "
        "taken from tests/data where it has them, else skipped)",
    )
    out.add_argument(
        "--technique", action="append", choices=sorted(TECHNIQUES), help="technique(s) to run (default: all)"
    )
    out.add_argument(
        "--model",
        default="efficientnet_lite0",
        choices=helpers.MODEL_NAMES,
        help="the classifier measured (default: the offline stand-in, efficientnet_lite0)",
    )
    out.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON files, one per run")
    out.add_argument(
        "--quick",
        action="store_true",
        help="the first 100 photos of each set only (technique runs; not with --detection, --sizes or --refine)",
    )
    out.add_argument("--summary", action="store_true", help="only print the data sets found")
    out.add_argument(
        "--markdown", action="store_true", help="write the tables of the JSON runs in --out to its README.md; print it"
    )
    out.add_argument("--detection", action="store_true", help="AP@0.5 and CorLoc, one box per class against several")
    out.add_argument("--sizes", action="store_true", help="boxes by object size (-> sizes.json)")
    out.add_argument("--refine", action="store_true", help="the CRF refinement's protocol (-> refine.json)")
    out.add_argument(
        "--detail",
        choices=CANDIDATES,
        help="one detail-size candidate: the maps' input size, or photo320 / photo448 (the photo's short side clamped "
        "to [224, 320] / [224, 448]); classes from the 224 view (-> detail_<name>.json)",
    )
    out.add_argument(
        "--limit",
        type=int,
        default=None,
        help="the first N photos of each set only (--detail, --sizes, --refine; for trying things, not for reporting)",
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"--limit must be >= 1, got {args.limit}")
    if args.sizes or args.refine or args.detail:
        return _protocol_run(args)
    if args.markdown:
        print(write_report(args.out, args.out / "README.md"), end="")
        return 0
    if args.summary:
        print(json.dumps(jsonable(data_summary(args.data), "summary"), indent=1))
        return 0
    if args.detection:
        loaded = helpers.load_model(args.model)
        start = time.perf_counter()
        results = detection_results(loaded, {}, args.data)
        config = {"technique": "defaults", "dilated": helpers.DEFAULT_DILATED}
        record = run_record(config, results, time.perf_counter() - start, model=loaded.name)
        print(json.dumps(jsonable(results, "results"), indent=1))
        print(_shown(write_run(args.out / "detection.json", record)))
        return 0
    models: dict[bool, helpers.LoadedModel] = {}
    for name in args.technique or list(TECHNIQUES):
        technique = TECHNIQUES[name]
        if technique.dilated not in models:
            models[technique.dilated] = helpers.load_model(args.model, dilated=technique.dilated)
        loaded = models[technique.dilated]
        start = time.perf_counter()
        results = evaluate(loaded, technique.options(), args.data, args.quick)
        config = technique.config() | {"quick": args.quick}
        record = run_record(config, results, time.perf_counter() - start, model=loaded.name)
        path = write_run(args.out / technique.file_name(), record)
        print(f"{name}: {summary_line(read(path).results)}  -> {_shown(path)}")
    return 0


def _protocol_run(args: argparse.Namespace) -> int:
    """``--sizes`` / ``--refine`` (at the defaults) / ``--detail NAME``: one run each, single-threaded (the timings
    are ratios within the run)."""
    torch.set_num_threads(1)
    loaded = helpers.load_model(args.model)
    published = helpers.load_model(args.model, dilated=False)  # the cost unit: one forward pass of the classifier
    defaults = {
        "dilated": helpers.DEFAULT_DILATED,
        "input_sizes": helpers.DEFAULT_INPUT_SIZES,
        "flip": helpers.DEFAULT_FLIP,
    }
    runs: list[tuple[str, dict[str, object], Callable[[], dict[str, object]]]] = []
    if args.sizes:
        runs.append(
            (
                "sizes.json",
                {"technique": "sizes"} | defaults,
                lambda: sizes_results(loaded, args.data, limit=args.limit),
            )
        )
    if args.refine:
        runs.append(
            (
                "refine.json",
                {"technique": "refine"} | defaults,
                lambda: refine_run(loaded, args.data, published, args.limit),
            )
        )
    if args.detail:
        view = detail_view(args.detail)
        runs.append(
            (view.file_name(), view.config(), lambda: detail_results(loaded, published, view, args.data, args.limit))
        )
    for file_name, config, run in runs:
        start = time.perf_counter()
        results = run()
        record = run_record(config | {"limit": args.limit}, results, time.perf_counter() - start, loaded.name)
        path = write_run(args.out / file_name, record)
        print(protocol_markdown(read(path)))
        print(_shown(path))
    return 0
