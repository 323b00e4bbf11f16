"""Run records (evaluation/records.py): JSON written atomically with the same layout as the stored records, and read
back as the typed record of each kind by one loader that rejects what its types do not know."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers
from evaluation import records, schema
from evaluation.metrics import Interval
from evaluation.refine import MaskKey
from evaluation.speed import BenchmarkRecord

RESULTS = records.RESULTS

# ---- writing --------------------------------------------------------------------------------------------------------


def test_write_run_rounds_sorts_and_converts(tmp_path):
    record = {
        "zeta": 1 / 3,  # -> 0.3333
        "alpha": {"hits": torch.tensor([True, False]), "iou": np.float32(0.123456), "n": np.int64(7)},
        "by_threshold": {0.4: 2 / 3, 0.35: 0.5},  # float keys -> "0.4", "0.35"
        "boxes": [(1.23456, 2.0, 3.0, 4.0)],
        "path": Path("a/b"),
        "none": None,
        "interval": Interval(0.123456, 0.1, 0.2),  # a dataclass: its fields
    }
    path = records.write_run(tmp_path / "runs" / "one.json", record)
    text = path.read_text()
    assert json.loads(text) == {
        "alpha": {"hits": [True, False], "iou": 0.1235, "n": 7},
        "boxes": [[1.2346, 2.0, 3.0, 4.0]],
        "by_threshold": {"0.35": 0.5, "0.4": 0.6667},
        "interval": {"high": 0.2, "low": 0.1, "mean": 0.1235},
        "none": None,
        "path": "a/b",
        "zeta": 0.3333,
    }
    assert text.startswith('{\n "alpha": {\n  "hits": [\n   true,')  # indent 1, sorted keys


def test_write_run_bad_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        records.write_run(tmp_path / "x.json", {"results": {"iou": float("nan")}})
    with pytest.raises(TypeError, match="cannot be written as JSON"):
        records.write_run(tmp_path / "x.json", {"model": object()})
    with pytest.raises(ValueError, match="folder"):
        records.write_run(tmp_path, {"a": 1})
    with pytest.raises(TypeError, match="record must be a dict"):
        records.write_run(tmp_path / "x.json", [1, 2])
    assert not (tmp_path / "x.json").exists()  # nothing half-written


def test_run_record(tmp_path):
    record = records.run_record({"model": "resnet50", "threshold": 0.4}, {"gt_known": 0.6}, 12.5)
    assert record["config"] == {"model": "resnet50", "threshold": 0.4}
    assert record["results"] == {"gt_known": 0.6}
    assert record["seconds"] == 12.5 and record["model"] == "resnet50"
    assert record["torch"] == torch.__version__ and record["threads"] == torch.get_num_threads()
    assert record["date"][:2] == "20"
    assert records.run_record({}, {}, 1.0, model="lite")["model"] == "lite"
    with pytest.raises(ValueError, match="model name"):
        records.run_record({}, {}, 1.0)
    with pytest.raises(ValueError, match="seconds"):
        records.run_record({"model": "x"}, {}, -1.0)
    json.loads(records.write_run(tmp_path / "r.json", record).read_text())  # writable as it is


def test_write_run_replaces_a_record_atomically(tmp_path, monkeypatch):
    path = records.write_run(tmp_path / "r.json", {"a": 1})
    records.write_run(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}

    def interrupted(source, target):  # the process dies between writing the new file and renaming it
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="disk gone"):
        records.write_run(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 2}  # the old record, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left behind


def test_stored_records_are_written_byte_for_byte_as_they_are(tmp_path):
    # The writer keeps the stored records' layout: each one's data written again gives the same bytes.
    for path in sorted(RESULTS.glob("*.json")):
        copy = records.write_run(tmp_path / path.name, json.loads(path.read_text()))
        assert copy.read_bytes() == path.read_bytes(), path.name


# ---- reading --------------------------------------------------------------------------------------------------------

KINDS = {
    "crf_reference": schema.CRFReferenceRecord,
    "detection": schema.DetectionRecord,
    "layer_screen": schema.LayerScreenRecord,
    "benchmark": BenchmarkRecord,
    "refine": schema.RefineRecord,
    "refine_224": schema.RefineRecord,
    "sizes": schema.SizesRecord,
    "sizes_224": schema.SizesRecord,
}


def test_every_stored_record_loads_as_the_type_of_its_kind_with_its_model():
    stored = records.load_all()
    assert list(stored) == sorted(p.stem for p in RESULTS.glob("*.json"))
    for stem, record in stored.items():
        expected = KINDS.get(stem, schema.DetailRecord if stem.startswith("detail_") else schema.TechniqueRecord)
        assert type(record) is expected, stem
        made_by = [m.name for m in record.models] if isinstance(record, BenchmarkRecord) else [record.model]
        assert record.file == f"{stem}.json" and all(made_by) and record.torch and record.torchvision
    assert stored["refine"].results.decision.chosen_crf == helpers.CRFSettings()
    assert stored["refine"].results.refined.chosen == MaskKey("wb80 sxy0.08 ls128", 0.25, 0.0)
    assert stored["detail_320"].results.cost.detect_top5 == pytest.approx(4.71, abs=0.005)  # "detect top-5" in JSON
    dilated = stored["dilated"].results.imagenet_val_227
    assert dilated.largest is dilated.rules["largest"] and set(dilated.rules) == {
        "largest",
        "peak",
        "union",
        "mass",
        "otsu",
    }
    assert isinstance(dilated.largest.gt_known, Interval) and 0.25 in dilated.largest.gt_known_by_threshold
    assert set(stored["detection"].results.coco_oracle.by_key) == {"one", "peaks 0.25", "peaks 0.35", "peaks 0.45"}


def test_load_reads_one_record_by_name_and_names_those_there(tmp_path):
    assert records.load("refine") == records.read(RESULTS / "refine.json")
    (tmp_path / "a.json").write_text((RESULTS / "plain.json").read_text())
    assert records.load("a", tmp_path).config.technique == "plain"
    with pytest.raises(FileNotFoundError, match=r"No record 'b' in .*: it holds \['a'\]"):
        records.load("b", tmp_path)


def test_a_record_without_its_model_or_with_an_unknown_key_is_rejected(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"config": {}, "results": {}, "torch": "2", "torchvision": "0"}))
    with pytest.raises(ValueError, match=r"a.json lacks the top-level keys \['model'\]"):
        records.load_all(tmp_path)
    with pytest.raises(FileNotFoundError, match="No"):
        records.load_all(tmp_path / "empty")
    record = json.loads((RESULTS / "refine.json").read_text())
    record["results"]["refined"]["cv"]["median"] = 0.5
    with pytest.raises(ValueError, match=r"refine.json.results.refined.cv holds keys that Interval does not know"):
        records.from_json(record, "refine.json")
    del record["results"]["refined"]["cv"]
    with pytest.raises(ValueError, match=r"refine.json.results.refined lacks the key 'cv' \(Family.cv\)"):
        records.from_json(record, "refine.json")


def test_parse_reads_json_data_as_types():
    assert records.parse(dict[float, int], {"0.25": 3}) == {0.25: 3}
    assert records.parse(list[int] | str, "short side") == "short side"
    assert records.parse(list[int] | str, [320]) == [320]
    assert records.parse(float | None, None) is None and records.parse(float, 3) == 3.0
    assert records.parse(MaskKey, {"setting": "plain", "threshold": 0.3}) == MaskKey("plain", 0.3, 0.0)
    cost = records.parse(
        schema.Cost, {"forward (published)": 1.0, "segment top-3, plain": 4.0, "segment top-3, refined": 8.0}
    )
    assert (cost.forward, cost.segment_plain, cost.segment_refined, cost.detect_top5) == (1.0, 4.0, 8.0, None)
    with pytest.raises(TypeError, match=r"x\[1\] must be int, got str"):
        records.parse(list[int], [1, "2"], "x")
    with pytest.raises(TypeError, match="must be int, got bool"):
        records.parse(int, True)
    with pytest.raises(ValueError, match="key 'a' must be a number"):
        records.parse(dict[float, int], {"a": 1})


def test_a_kind_registers_its_record_type_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RECORD_TYPES", dict(records.RECORD_TYPES))

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Speed:
        rows: dict[str, float]

    @records.register("speed")  # the one line; the type's fields are the schema
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class SpeedRecord(schema.Record):
        config: dict[str, object]
        results: Speed

    made = records.run_record({"threads": 1}, {"rows": {"detect top-5": 4.9}}, 1.0, model="m")
    records.write_run(tmp_path / "speed.json", made)  # no "technique" in the config: the file stem is the kind
    records.write_run(tmp_path / "other.json", made)
    loaded = records.load_all(tmp_path)
    assert isinstance(loaded["speed"], SpeedRecord) and loaded["speed"].results.rows == {"detect top-5": 4.9}
    assert type(loaded["other"]) is schema.Record and loaded["other"].results == {"rows": {"detect top-5": 4.9}}
