"""Run records: one JSON file per run in ``evaluation/results``, with the model and the versions that made it.

Written by the protocols (:func:`run_record`, :func:`write_run`: plain JSON, replaced atomically); read back as
typed records (:func:`load`, :func:`load_all`): each record is the dataclass of its kind, the config's
``"technique"`` (:data:`RECORD_TYPES`; the file's stem for a record whose config names none). The dataclasses of
:mod:`.schema` are the records' schema: the loader reads every key into a field and rejects a key it does not know,
so a protocol that writes a new key needs a new field there. Another module adds a kind in one line, with
:func:`register`::

    @records.register("my protocol")
    @dataclass(frozen=True, kw_only=True)
    class MyRecord(schema.Record):
        config: MyConfig
        results: MyResults

The speed benchmark's record (``"kind": "benchmark"``, :class:`.speed.BenchmarkRecord`) names its models and machine
in its own fields; the same loader reads it, with the same :func:`parse`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import numbers
import os
import platform
import tempfile
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torchvision
from torch import Tensor

from . import ROOT
from .boxes_masks import TECHNIQUES

if TYPE_CHECKING:
    from .speed import BenchmarkRecord
from .schema import (
    CRFReferenceRecord,
    DetailRecord,
    DetectionRecord,
    LayerScreenRecord,
    Record,
    RefineRecord,
    SizesRecord,
    TechniqueRecord,
)

#: The folder of the stored runs (``--out`` by default) and of the report generated from them.
RESULTS = ROOT / "evaluation" / "results"
#: The keys every record holds at top level beside ``config`` and ``results``: who made the numbers.
PROVENANCE = ("model", "torch", "torchvision")

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def jsonable(value: object, where: str, digits: int = 4) -> object:
    """Plain JSON types with floats rounded to ``digits``; tensors and numpy become lists/numbers, a dataclass (an
    :class:`~.metrics.Interval`) the mapping of its fields."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
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


def write_atomically(path: str | os.PathLike, text: str) -> Path:
    """``text`` written to ``path`` (UTF-8) through a temporary file in the same folder and ``os.replace``: a reader
    sees the old file or the new one, never half of one; nothing is left behind on an error. -> the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def write_run(path: str | os.PathLike, record: Mapping[str, object]) -> Path:
    """Write one run's record as JSON (indent 1, sorted keys, floats rounded to 4 digits; numeric keys become
    strings), atomically (:func:`write_atomically`) -> the path. Parent folders are made; an existing file is
    replaced."""
    path = Path(path)
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    if path.is_dir():
        raise ValueError(f"path must be a file name, {str(path)!r} is a folder")
    text = json.dumps(jsonable(record, "record"), indent=1, sort_keys=True, allow_nan=False)
    return write_atomically(path, text + "\n")


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


# --------------------------------------------------------------------------------------------
# Reading: JSON data as a type
# --------------------------------------------------------------------------------------------


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _key(kind: Any, key: str, where: str) -> object:
    """A JSON object's key (a string) as ``kind``: str, or a number written as a string (``"0.25"``)."""
    if kind in (str, object, Any):
        return key
    if kind in (float, int):
        try:
            return kind(key)
        except ValueError:
            raise ValueError(f"{where}: key {key!r} must be a number") from None
    raise TypeError(f"{where}: keys cannot be read as {kind}")


def _dataclass(kind: type[T], value: object, where: str) -> T:
    mapping = _mapping(value, where)
    hints = _hints(kind)
    values: dict[str, object] = {}
    used: set[str] = set()
    rest = None
    for f in dataclasses.fields(kind):
        if f.metadata.get("other_keys"):
            rest = f
            continue
        key = f.metadata.get("json", f.name)
        if key in mapping:
            values[f.name] = parse(hints[f.name], mapping[key], f"{where}.{key}")
            used.add(key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where} lacks the key {key!r} ({kind.__name__}.{f.name})")
    unknown = {key: item for key, item in mapping.items() if key not in used}
    if rest is not None:
        values[rest.name] = parse(hints[rest.name], unknown, where)
    elif unknown:
        raise ValueError(f"{where} holds keys that {kind.__name__} does not know: {sorted(unknown)}")
    return kind(**values)


def parse(kind: Any, value: object, where: str = "value") -> Any:
    """``value`` (JSON data: dicts, lists, numbers, strings, None) read as the type ``kind``: a dataclass (each field
    from the key of its name, or of its ``metadata["json"]``; a field with :data:`.schema.OTHER_KEYS` takes the rest;
    a key no field takes is an error), a NamedTuple, ``dict[K, V]`` (number keys from their strings), ``list[T]``, a
    union (its first member that fits; None for an optional), ``float`` (also from an int), ``int``, ``bool``,
    ``str`` or ``object``. An error names ``where`` and the path of keys to the value."""
    origin = typing.get_origin(kind)
    if kind in (object, Any):
        return value
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(kind)
        if value is None and type(None) in members:
            return None
        errors = []
        for member in (m for m in members if m is not type(None)):
            try:
                return parse(member, value, where)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise TypeError(f"{where} fits none of {kind}: {'; '.join(errors)}")
    if origin is dict:
        key_kind, item_kind = typing.get_args(kind)
        mapping = _mapping(value, where)
        return {_key(key_kind, k, where): parse(item_kind, v, f"{where}[{k!r}]") for k, v in mapping.items()}
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where} must be a JSON list, got {type(value).__name__}")
        (item_kind,) = typing.get_args(kind)
        return [parse(item_kind, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):  # a NamedTuple
        mapping = _mapping(value, where)
        unknown = sorted(set(mapping) - set(kind._fields))
        if unknown:
            raise ValueError(f"{where} holds keys that {kind.__name__} does not know: {unknown}")
        return kind(**{k: parse(_hints(kind)[k], v, f"{where}.{k}") for k, v in mapping.items()})
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (int, bool, str) and type(value) is kind:
        return value
    raise TypeError(f"{where} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__} {value!r:.40}")


# --------------------------------------------------------------------------------------------
# The kinds and the loader
# --------------------------------------------------------------------------------------------

#: The record type of each kind (a config's ``"technique"``, or the file stem when the config names none); kinds not
#: here load as :class:`.schema.Record`.
RECORD_TYPES: dict[str, type[Record]] = {
    **dict.fromkeys(TECHNIQUES, TechniqueRecord),
    "defaults": DetectionRecord,
    "sizes": SizesRecord,
    "refine": RefineRecord,
    "detail": DetailRecord,
    "crf reference": CRFReferenceRecord,
    "layer screen": LayerScreenRecord,
}

R = TypeVar("R", bound=type[Record])


def register(*kinds: str) -> Callable[[R], R]:
    """Class decorator: records of the ``kinds`` (their config's ``"technique"``, or the file stem when the config
    names none) load as the decorated :class:`.schema.Record` subclass."""

    def add(cls: R) -> R:
        for kind in kinds:
            RECORD_TYPES[kind] = cls
        return cls

    return add


def from_json(data: Mapping[str, object], name: str) -> Record | BenchmarkRecord:
    """A record's JSON data (``name``: its file name) as the :class:`Record` type of its kind (the benchmark's as a
    :class:`.speed.BenchmarkRecord`); a record without the :data:`PROVENANCE` keys is an error (its numbers could not
    be labelled)."""
    data = _mapping(data, name)
    if data.get("kind") == "benchmark":
        from .speed import BenchmarkRecord

        return BenchmarkRecord.from_json({**data, "file": name})
    missing = [key for key in PROVENANCE if key not in data]
    if missing:
        raise ValueError(f"{name} lacks the top-level keys {missing}: every record names its model")
    config = data.get("config")
    kind = config.get("technique") if isinstance(config, Mapping) else None
    cls = RECORD_TYPES.get(kind if isinstance(kind, str) else Path(name).stem, Record)
    return parse(cls, {**data, "file": name}, name)


def read(path: str | os.PathLike) -> Record | BenchmarkRecord:
    """The record in the JSON file at ``path`` (:func:`from_json`)."""
    path = Path(path)
    return from_json(json.loads(path.read_text(encoding="utf-8")), path.name)


def load(name: str, folder: str | os.PathLike = RESULTS) -> Record | BenchmarkRecord:
    """The record ``<folder>/<name>.json`` (``name``: the file stem, e.g. ``"refine"``; ``folder``: by default
    ``evaluation/results``) as the type of its kind, e.g. :class:`RefineRecord`."""
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        stems = sorted(p.stem for p in Path(folder).glob("*.json"))
        raise FileNotFoundError(f"No record {name!r} in {str(folder)!r}: it holds {stems}")
    return read(path)


def load_all(folder: str | os.PathLike = RESULTS) -> dict[str, Record | BenchmarkRecord]:
    """Every ``*.json`` record of ``folder`` by file stem, in file-name order, each as the type of its kind."""
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"No *.json run records in {str(folder)!r}")
    return {path.stem: read(path) for path in paths}
