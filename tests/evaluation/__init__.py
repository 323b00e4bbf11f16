"""The evaluation harness of the method in ``helpers.py``, one module per concern.

- :mod:`.data`: the data sets (one lookup, :func:`.data.find_dataset`, with one fallback to ``tests/data``);
- :mod:`.metrics`: model-free metrics (IoU, GT-known, MaxBoxAcc, bootstrap intervals, k-fold choice, AP);
- :mod:`.records`: run records written as JSON to ``tests/results``;
- :mod:`.running`: what every protocol shares to run the model (one forward pass, timing, progress bars, relabel);
- the protocols: :mod:`.boxes_masks` (the technique runs), :mod:`.detection` (AP), :mod:`.sizes` (boxes by
  object size), :mod:`.refine` (the CRF refinement);
- :mod:`.report`: ``--markdown``, the tables of ``tests/results/README.md``;
- :mod:`.cli`: the command line (``python tests/evaluate.py ...``).

Run from the repository root; ``tests/evaluate.py`` is the entry point.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # helpers.py sits in the repository root
    sys.path.insert(0, str(ROOT))
