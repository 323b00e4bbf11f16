"""Measure training-free techniques for better boxes and masks; writes tests/data/techniques.json.

Run from the repository root: ``python tests/techniques.py`` (a few minutes on 2 CPU cores);
``--timing-only`` re-measures just the cost columns.
Each row: MaxBoxAcc (best GT-known localization over a threshold sweep) on the 60 ImageNet
validation photos, the best mean foreground IoU on the 26 Oxford-IIIT Pet photos, top-1
classification, and the cost: median milliseconds per photo of ``detect(topk=1)`` and
``segment(topk=3)`` with that set-up (run it on an otherwise idle machine).
The notebook's "How good is it?" section shows this table.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers as H  # noqa: E402

THRESHOLDS = [round(0.05 * i, 2) for i in range(2, 17)]
TECHNIQUES = [
    # name, input sizes, flip, box from all components, kept?
    ("plain: one 224 view, largest component", (224,), False, False),
    ("box around all components", (224,), False, True),
    ("horizontal flip (2 views)", (224,), True, False),
    ("one 320 view", (320,), False, False),
    ("two scales 224 + 320", (224, 320), False, False),
    ("two scales 224 + 320 + flip (4 views)", (224, 320), True, False),
    ("three scales 224 + 288 + 352 + flip (6 views)", (224, 288, 352), True, False),
    ("224 + 320 + flip, box around all components", (224, 320), True, True),
]


def median_ms(call, photos, repeats: int = 2, **kwargs) -> float:
    """Median wall time of ``call(photo, **kwargs)`` in milliseconds, after one warm-up call."""
    call(image=photos[0], **kwargs)
    times = []
    for _ in range(repeats):
        for photo in photos:
            start = time.perf_counter()
            call(image=photo, **kwargs)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    loaded = H.load_model("efficientnet_lite0")
    boxes = H.load_imagenet_sample(ROOT / "tests/data/imagenet_val")
    pets = H.load_pets_sample(ROOT / "tests/data/pets_seg")
    gt = [s.boxes for s in boxes]
    rows = []
    for name, sizes, flip, all_components in TECHNIQUES:
        sweep = H.localization_sweep(loaded, boxes, THRESHOLDS, sizes, flip, all_components)
        acc, best = H.max_box_acc(sweep.true_boxes, gt)
        ious, _ = H.segmentation_sweep(loaded, pets, THRESHOLDS, 3, sizes, flip)
        seg_best = max(ious, key=lambda t: (np.mean(ious[t]), -t))
        top1 = np.mean([c == s.class_index for c, s in zip(sweep.top1_classes, boxes, strict=True)])
        some = [s.photo for s in boxes[:20]]
        setup = {"input_sizes": sizes, "flip": flip}
        ms_box = median_ms(H.detect, some, loaded=loaded, topk=1, threshold=best, **setup)
        ms_mask = median_ms(H.segment, some, loaded=loaded, topk=3, threshold=seg_best, **setup)
        row = {
            "technique": name,
            "input_sizes": list(sizes),
            "flip": flip,
            "all_components": all_components,
            "max_box_acc": acc,
            "box_threshold": best,
            "pets_iou": float(np.mean(ious[seg_best])),
            "mask_threshold": seg_best,
            "top1": float(top1),
            "ms_box": ms_box,
            "ms_mask": ms_mask,
        }
        rows.append(row)
        print(
            f"{name:<48} MaxBoxAcc {acc:.1%} @ {best:.2f}   Pets IoU {row['pets_iou']:.3f} @ {seg_best:.2f}   "
            f"top-1 {top1:.1%}   {row['ms_box']:.0f} / {row['ms_mask']:.0f} ms per photo",
            flush=True,
        )
    (ROOT / "tests/data/techniques.json").write_text(json.dumps(rows, indent=1) + "\n")


def retime() -> None:
    """Re-measure only the cost columns of tests/data/techniques.json (accuracy columns kept)."""
    loaded = H.load_model("efficientnet_lite0")
    some = [s.photo for s in H.load_imagenet_sample(ROOT / "tests/data/imagenet_val")[:20]]
    path = ROOT / "tests/data/techniques.json"
    rows = json.loads(path.read_text())
    for row in rows:
        setup = {"input_sizes": tuple(row["input_sizes"]), "flip": row["flip"]}
        row["ms_box"] = median_ms(H.detect, some, loaded=loaded, topk=1, threshold=row["box_threshold"], **setup)
        row["ms_mask"] = median_ms(H.segment, some, loaded=loaded, topk=3, threshold=row["mask_threshold"], **setup)
        print(f"{row['technique']:<48} {row['ms_box']:.0f} / {row['ms_mask']:.0f} ms per photo", flush=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    retime() if "--timing-only" in sys.argv else main()
