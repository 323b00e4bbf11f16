"""Entry point of the evaluation harness (the package ``tests/evaluation``); run from the repository root::

    python tests/evaluate.py --help

It re-exports the names the notebook uses (``sys.path.insert(0, "tests"); import evaluate as E``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from elsewhere: the package sits beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluation.boxes_masks import BoxSweep, box_sweep
from evaluation.cli import main
from evaluation.data import load_box_set
from evaluation.metrics import gt_known_hits, paired_difference
from evaluation.report import ci_text

__all__ = ["BoxSweep", "box_sweep", "ci_text", "gt_known_hits", "load_box_set", "main", "paired_difference"]

if __name__ == "__main__":
    sys.exit(main())
