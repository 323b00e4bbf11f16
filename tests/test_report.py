"""The report and the notebook's tables (evaluation/report.py, evaluation/show.py): the generated
evaluation/results/README.md against the stored records, tables from hand-changed records, and the printed tables
against the records' own numbers."""

import json

import numpy as np
import pytest

from evaluation import metrics, records, report, schema, show, sizes

RESULTS = records.RESULTS


# ---- the generated README ---------------------------------------------------------------------------------------


def test_results_readme_is_the_report_of_the_stored_records():
    assert report.REPORT == RESULTS / "README.md"
    assert report.REPORT.read_text(encoding="utf-8") == report.markdown_report(RESULTS), (
        "evaluation/results/README.md is stale: run `python -m evaluation --markdown`"
    )


def test_report_names_the_model_of_every_table_and_the_deleted_code():
    text = report.markdown_report(RESULTS)
    for record in records.load_all(RESULTS).values():  # every record is a table's source, named with its model
        assert f"`{record.file}`" in text
    for section in text.split("\n## ")[1:]:
        if "|---" in section and "Techniques that lost" not in section and not section.startswith("How"):
            assert "model **" in section, section.splitlines()[0]
    assert f"`{report.LOST_CODE_COMMIT}`" in text
    for name, _, where in report.LOST_TECHNIQUES:
        assert name in text and (RESULTS / where.split(",")[0]).is_file()
    assert report.CHOICES.read_text(encoding="utf-8").strip() in text


def test_report_is_regenerated_from_changed_records(tmp_path):
    # A record changed by hand changes the report: the tables are read from the records, not stored text.
    for path in RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    record = json.loads((tmp_path / "refine.json").read_text())
    record["results"]["refined"]["cv"] = {"mean": 0.999, "low": 0.998, "high": 0.9995}
    record["model"] = "resnet50"
    (tmp_path / "refine.json").write_text(json.dumps(record))
    text = report.markdown_report(tmp_path)
    assert "| refined (CRF) | 0.999 [0.998, 0.999] |" in text or "| refined (CRF) | 0.999 [0.998, 1.000] |" in text
    assert "From `refine.json` (model **resnet50**" in text
    assert text != report.markdown_report(RESULTS)


# ---- the detail table, from hand-changed records ---------------------------------------------------------------


def _interval(mean: float) -> dict:
    return {"mean": mean, "low": mean - 0.01, "high": mean + 0.01}


def _detail_record(name: str, dev_hits: str, pets: list[float], threshold: float) -> schema.DetailRecord:
    """The stored 224 record as candidate ``name``, with dev CV hits ``dev_hits`` and the Pets held-out values
    ``pets`` (plain and refined); without its COCO items, so only those two and the test photos can pair."""
    data = json.loads((RESULTS / "detail_224.json").read_text())
    data["config"]["detail"] = name
    results = data["results"]
    del results["coco_pairs"], results["refine"]["coco_seg_top3"]
    dev_hit_rate = dev_hits.count("1") / len(dev_hits)
    results["boxes_masks"]["imagenet_val_227"]["largest"] |= {
        "gt_known_cv": _interval(dev_hit_rate),
        "threshold": threshold,
        "cv_hits": dev_hits,
    }
    results["boxes_masks"]["imagenet_val"]["largest"] |= {"gt_known": _interval(0.5), "hits": "10"}
    for family in (results["refine"]["plain"], results["refine"]["refined"]):
        family |= {"cv_pets_seg": _interval(float(np.mean(pets))), "held_out_pets_seg": pets}
        del family["held_out_coco_seg_oracle"]
    results["cost"] |= {"detect top-5": 4.0, "segment top-3, refined": 5.25}
    return records.from_json(data, f"detail_{name}.json")


def test_detail_table_rows_and_paired_differences():
    base = _detail_record("224", "1100", [0.5, 0.6, 0.7], 0.25)
    finer = _detail_record("320", "1110", [0.6, 0.6, 0.9], 0.15)
    odd = _detail_record("photo320", "11", [0.5], 0.2)  # other items: no paired difference
    lines = report.detail_tables([odd, finer, base])  # listed in CANDIDATES order, whatever the input order
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith("| **224** (baseline) | 50.0% [49.0%, 51.0%] | 0.25 |")
    assert rows[2].startswith("| 320 | 75.0% [74.0%, 76.0%] | 0.15 |") and rows[2].endswith("| 4.00 | 5.25 |")
    assert rows[3].startswith("| photo320 |")
    difference = next(line for line in rows[4:] if line.startswith("| 320 |")).split(" | ")
    assert difference[1] == report.ci_text(metrics.paired_difference("1100", "1110"), signed=True)  # +25.0%
    d = metrics.interval(np.array([0.1, 0.0, 0.2]))
    assert difference[6] == f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"  # refined Pets (CV), paired per photo
    odd_row = next(line for line in rows[4:] if line.startswith("| photo320 |"))
    assert odd_row.count("–") == len(report.DETAIL_PAIRED) - 1  # only the test photos (the same two) pair


def test_stored_detail_runs_pair_on_every_column():
    details = [r for r in records.load_all().values() if isinstance(r, schema.DetailRecord)]
    lines = report.detail_tables(details)
    paired = lines[lines.index(next(line for line in lines if line.startswith("Paired differences"))) + 4 :]
    assert len(paired) == len(details) - 1 and not any("–" in line for line in paired)  # every column reads a value


# ---- the sizes table ---------------------------------------------------------------------------------------------


def test_sizes_table_shows_before_and_the_paired_difference():
    before = records.load("sizes_224").results
    s = before.sets["imagenet_val"]
    buckets = np.array([{"s": "small", "m": "medium", "l": "large"}[b] for b in s.buckets])
    hits = np.array([c == "1" for c in s.hits_at_default])
    after = ~hits  # every photo flips
    stored = json.loads((RESULTS / "sizes_224.json").read_text())["results"]["sets"]["imagenet_val"]
    entry = {k: v for k, v in stored.items() if k not in ("zoom", "refined_box", "zoom_hits_at_default")}
    entry = {k: v for k, v in entry.items() if k != "refined_box_hits"}
    entry["before"] = sizes.before_after(s.buckets, s.hits_at_default, after, buckets)
    results = {
        "thresholds": before.thresholds,
        "default_threshold": 0.15,
        "size_buckets": before.size_buckets,
        "size_edges": before.size_edges,
        "sets": {"imagenet_val": entry},
        "before": {"file": "sizes_224.json", "default_threshold": before.default_threshold},
    }
    table = report.sizes_markdown(records.parse(schema.SizesResults, records.jsonable(results, "results")))
    assert "before (`sizes_224.json`, at 0.25) | after - before (paired) |" in table
    (row,) = [line for line in table.splitlines() if line.startswith("| all |")]
    expected = report.ci_text(metrics.interval(after.astype(float) - hits), signed=True)
    assert row.endswith(f"| {expected} |")


# ---- the notebook's tables ---------------------------------------------------------------------------------------


def test_notebook_tables_print_the_records_numbers(capsys):
    stored = records.load_all()
    show.technique_table(stored.values())
    table = capsys.readouterr().out
    for name in ("plain", "dilated", "dilated, flip"):
        record = next(
            r for r in stored.values() if isinstance(r, schema.TechniqueRecord) and r.config.technique == name
        )
        gt_known = report.ci_text(record.results.imagenet_val_227.largest.gt_known_cv)
        (row,) = [line for line in table.splitlines() if line.startswith(f"  {name} ")]
        assert gt_known in row and row.endswith(record.model)
    show.detection_tables(stored["detection"])
    table = capsys.readouterr().out
    one = stored["detection"].results.coco_oracle.by_key["one"].ap50
    assert "COCO, oracle classes" in table and report.ci_text(one) in table
    show.detail_tables(stored.values())
    table = capsys.readouterr().out
    default = show.default_detail(stored.values())
    boxes, masks = [line for line in table.splitlines() if line.startswith(f"* {default.config.detail} ")]
    assert report.ci_text(default.results.boxes_masks.imagenet_val_227.largest.gt_known_cv) in boxes
    assert report.ci_text(default.results.refine.refined.cv_pets_seg, False) in masks


def test_plain_curves_are_the_plain_mask_sweep():
    # The figure reads the plain masks of the refine entry; the stored detail runs also hold the boxes-and-masks
    # protocol's own plain sweep, the same maps at the same thresholds.
    for record in (records.load("detail_224"), records.load("detail_320")):
        plain = record.results.refine.plain.mean_by_key
        for name in ("pets_seg", "coco_seg_oracle"):
            sweep = getattr(record.results.boxes_masks, name).mean_by_threshold
            assert show.plain_curve(plain[name]) == pytest.approx(sweep, abs=1e-4)
