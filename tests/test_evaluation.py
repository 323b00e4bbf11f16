"""The harness package (evaluation/): its one data lookup, relabel against helpers.segment, box_sweep's typed
result, the techniques' options and the generated report evaluation/results/README.md against the stored records."""

import json

import numpy as np
import pytest
import torch

import helpers
from evaluation import boxes_masks, data, records, report, running

RESULTS = records.RESULTS


# ---- the one data lookup --------------------------------------------------------------------


def test_find_dataset_prefers_the_data_folder_then_tests_data(tmp_path):
    # Nothing under tmp_path: every set the repository holds comes from tests/data, coco_seg (not there) is missing.
    assert data.find_dataset("imagenet_val", tmp_path) == data.TEST_DATA / "imagenet_val"
    assert data.find_dataset("pets_seg", tmp_path) == data.TEST_DATA / "pets_seg"
    assert not (data.TEST_DATA / "coco_seg").exists() and data.find_dataset("coco_seg", tmp_path) is None
    # A folder without the set's marker is not the set; with it, it wins over tests/data.
    (tmp_path / "imagenet_val").mkdir()
    assert data.find_dataset("imagenet_val", tmp_path) == data.TEST_DATA / "imagenet_val"
    (tmp_path / "imagenet_val" / "annotations.json").write_text("[]")
    assert data.find_dataset("imagenet_val", tmp_path) == tmp_path / "imagenet_val"
    with pytest.raises(ValueError, match="name must be one of the data sets"):
        data.find_dataset("imagenet_train", tmp_path)


def test_coco_head_keeps_the_first_photos():
    coco = data.CocoSet(["a", "b", "c"], {}, {}, np.zeros(1000, dtype=np.int64), frozenset())
    assert coco.head(2).photos == ["a", "b"] and coco.head(None) is coco


# ---- relabel: the harness's own plain label map at another threshold ------------------------


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.55])
def test_relabel_is_segment_at_that_threshold(lite, chihuahua, threshold):
    seg = helpers.segment(lite, chihuahua, topk=3, refine=False)  # at helpers' default plain threshold
    expected = helpers.segment(lite, chihuahua, topk=3, refine=False, threshold=threshold).label_map
    relabelled = running.relabel(seg, threshold)
    assert relabelled.dtype == np.int16 and relabelled.shape == (chihuahua.height, chihuahua.width)
    np.testing.assert_array_equal(relabelled, expected)
    if threshold != helpers.DEFAULT_MASK_THRESHOLD:
        assert not np.array_equal(relabelled, seg.label_map)  # the threshold matters: not the stored map


def test_relabel_bad_input(lite, chihuahua):
    seg = helpers.segment(lite, chihuahua, topk=1, refine=False)
    with pytest.raises(TypeError, match=r"seg must be a helpers\.Segmentation"):
        running.relabel(seg.label_map, 0.3)
    with pytest.raises(ValueError, match="threshold"):
        running.relabel(seg, 0.0)


# ---- box_sweep, the forward pass and progress --------------------------------------------------


def test_box_sweep_gives_detects_box_at_every_threshold(lite):
    samples = data.load_box_set(data.TEST_DATA / "imagenet_val")[:2]
    sweep = boxes_masks.box_sweep(lite, samples, {})
    assert isinstance(sweep, boxes_masks.BoxSweep) and sweep.seconds_per_photo > 0
    assert sorted(sweep.boxes) == list(boxes_masks.THRESHOLDS)
    for i, sample in enumerate(samples):
        for t in (0.1, helpers.DEFAULT_BOX_THRESHOLD, 0.6):  # independently: detect at that threshold
            (det,) = helpers.detect(lite, sample.photo, class_indices=[sample.class_index], threshold=t)
            assert sweep.boxes[t][i] == det.box
            assert sweep.top1[i] == (det.rank == 0)


def test_predict_is_the_softmax_of_one_forward_pass(lite, chihuahua, chihuahua_probabilities):
    probabilities = running.predict(lite, chihuahua, helpers.INPUT_SIZE[0])  # the view detect/segment score on
    torch.testing.assert_close(probabilities, chihuahua_probabilities, atol=1e-6, rtol=1e-5)


def test_progress_is_quiet_without_a_terminal(capsys):
    items = [1, 2, 3]
    assert running.progress(items, "test") is items  # pytest captures stderr: not a terminal
    assert capsys.readouterr().err == ""


# ---- techniques ---------------------------------------------------------------------------------


def test_techniques_options_config_and_files_match_the_stored_runs():
    for name, technique in boxes_masks.TECHNIQUES.items():
        assert technique.name == name
        assert set(technique.options()) == {"input_sizes", "flip"}  # keyword arguments of detect and segment
        stored = json.loads((RESULTS / technique.file_name()).read_text())["config"]
        config = json.loads(json.dumps(technique.config()))  # tuples become lists, as in the records
        assert {k: stored[k] for k in config} == config
    assert boxes_masks.TECHNIQUES["dilated, sizes 224+320"].file_name() == "dilated_sizes_224_320.json"


# ---- the records and the report ---------------------------------------------------------------


def test_every_record_names_its_model_and_versions():
    runs = records.load_runs(RESULTS)
    assert len(runs) == len(list(RESULTS.glob("*.json")))
    for run in runs:
        assert run["model"] and run["torch"] and run["torchvision"], run["file"]


def test_load_runs_rejects_a_record_without_its_model(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"config": {}, "results": {}, "torch": "2", "torchvision": "0"}))
    with pytest.raises(ValueError, match=r"a.json lacks the top-level keys \['model'\]"):
        records.load_runs(tmp_path)
    with pytest.raises(FileNotFoundError, match="No"):
        records.load_runs(tmp_path / "empty")


def test_results_readme_is_the_report_of_the_stored_records():
    assert report.REPORT == RESULTS / "README.md"
    assert report.REPORT.read_text(encoding="utf-8") == report.markdown_report(RESULTS), (
        "evaluation/results/README.md is stale: run `python -m evaluation --markdown`"
    )


def test_report_names_the_model_of_every_table_and_the_deleted_code():
    text = report.markdown_report(RESULTS)
    runs = records.load_runs(RESULTS)
    for run in runs:  # every record is a table's source, named with its model
        assert f"`{run['file']}`" in text
    sections = text.split("\n## ")[1:]
    for section in sections:
        if "|---" in section and "Techniques that lost" not in section and not section.startswith("How"):
            assert "model **" in section, section.splitlines()[0]
    assert report.LOST_CODE_COMMIT == "d5e00e9" and "`d5e00e9`" in text
    for name, _, where in report.LOST_TECHNIQUES:
        assert name in text and (RESULTS / where.split(",")[0]).is_file()
    if report.CHOICES.is_file():
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
