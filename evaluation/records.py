"""Run records: one JSON file per run in ``evaluation/results``, with the model and the versions that made it."""

from __future__ import annotations

import datetime
import json
import math
import numbers
import os
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor

from . import ROOT

#: The folder of the stored runs (``--out`` by default) and of the report generated from them.
RESULTS = ROOT / "evaluation" / "results"
#: The keys every record holds at top level beside ``config`` and ``results``: who made the numbers.
PROVENANCE = ("model", "torch", "torchvision")


def jsonable(value: object, where: str, digits: int = 4) -> object:
    """Plain JSON types with floats rounded to ``digits``; tensors and numpy become lists/numbers."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON has no NaN or infinity")
        return round(float(value), digits)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, numbers.Real)):
                raise TypeError(f"{where}: keys must be strings or numbers, got {type(key).__name__}")
            name = key if isinstance(key, str) else str(jsonable(key, where, digits))
            if name in out:
                raise ValueError(f"{where}: two keys give the same JSON key {name!r}")
            out[name] = jsonable(item, f"{where}[{name!r}]", digits)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(item, f"{where}[{i}]", digits) for i, item in enumerate(value)]
    raise TypeError(f"{where} has type {type(value).__name__}, which cannot be written as JSON")


def write_run(path: str | os.PathLike, record: Mapping[str, object]) -> Path:
    """Write one run's record as JSON (indent 1, sorted keys, floats rounded to 4 digits; numeric
    keys become strings) -> the path. Parent folders are made; an existing file is replaced."""
    path = Path(path)
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    if path.is_dir():
        raise ValueError(f"path must be a file name, {str(path)!r} is a folder")
    text = json.dumps(jsonable(record, "record"), indent=1, sort_keys=True, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def run_record(
    config: Mapping[str, object], results: Mapping[str, object], seconds: float, model: str | None = None
) -> dict[str, object]:
    """One run's record: ``config`` and ``results`` with the date (UTC), the duration, the model name
    (``model``, else ``config["model"]``), torch/torchvision/Python versions and torch's thread count."""
    if not isinstance(config, Mapping) or not isinstance(results, Mapping):
        raise TypeError("config and results must be dicts")
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds >= 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    if model is None:
        if "model" not in config:
            raise ValueError('the model name is needed: pass model=... or put it in config["model"]')
        model = str(config["model"])
    return {
        "config": dict(config),
        "results": dict(results),
        "seconds": float(seconds),
        "model": model,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }



def load_runs(folder: str | os.PathLike = RESULTS) -> list[dict[str, object]]:
    """Every ``*.json`` record of ``folder``, sorted by file name, each with its file name under ``"file"``; a
    record without the :data:`PROVENANCE` keys is an error (its numbers could not be labelled)."""
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"No *.json run records in {str(folder)!r}")
    runs = []
    for path in paths:
        record = json.loads(path.read_text())
        missing = [key for key in PROVENANCE if key not in record]
        if missing:
            raise ValueError(f"{path.name} lacks the top-level keys {missing}: every record names its model")
        runs.append(record | {"file": path.name})
    return runs
