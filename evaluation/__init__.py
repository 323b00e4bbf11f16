"""The measuring system of the method in ``helpers.py``, one module per concern.

- :mod:`.data`: the data sets (one lookup, :func:`.data.find_dataset`, with one fallback to ``tests/data``);
- :mod:`.metrics`: model-free metrics (IoU, GT-known, MaxBoxAcc, bootstrap intervals, k-fold choice, AP);
- :mod:`.running`: what every protocol shares to run the model (one forward pass, timing, progress bars, relabel);
- the protocols: :mod:`.boxes_masks` (the technique runs), :mod:`.detection` (AP), :mod:`.sizes` (boxes by
  object size), :mod:`.refine` (the CRF refinement), :mod:`.detail` (the detail size), :mod:`.crf_reference` (the
  CRF against ``pydensecrf2``);
- the benchmark: :mod:`.benchmark` (``python -m evaluation.benchmark``, speed against a forward pass and the CAM
  libraries in :mod:`.cam_alternatives`), its record and tables in :mod:`.speed`;
- :mod:`.records` and :mod:`.schema`: the run records in ``evaluation/results``, written as JSON and read back as
  typed dataclasses by one loader (:func:`.records.load`);
- :mod:`.report`: ``--markdown``, the tables of ``evaluation/results/README.md``; :mod:`.show`: the notebook's
  tables and figures;
- :mod:`.cli`: the command line (``python -m evaluation ...``).

Run from the repository root; ``python -m evaluation`` is the entry point.
"""

from pathlib import Path

#: The repository root (helpers.py, tests/data): run from there (``python -m evaluation``), or with it on the path.
ROOT = Path(__file__).resolve().parents[1]
