"""The command line of the measuring system (python -m evaluation, evaluation/cli.py): the help of every option, the
report regenerated, the data summary, bad input, and one tiny real run on the test data."""

import json
import subprocess
import sys

import pytest

import helpers
from evaluation import cli, records, schema

OPTIONS = ["--data", "--technique", "--model", "--out", "--quick", "--summary", "--markdown", "--detection", "--sizes"]
OPTIONS += ["--refine", "--detail", "--limit"]


def test_python_m_evaluation_help_from_the_root():
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", "--help"], cwd=records.ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    for option in OPTIONS:
        assert option in done.stdout, option


@pytest.mark.parametrize(
    "argv", [["--detection"], ["--sizes"], ["--refine"], ["--detail", "320"], ["--markdown"], ["--summary"], []]
)
def test_every_option_has_its_help(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])  # the help, whatever else is asked: nothing runs
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for action in cli.parser()._actions:
        assert action.help and " ".join(action.help.split()[:3]) in " ".join(text.split()), action.dest


def test_the_choices_come_from_the_package():
    actions = {action.dest: action for action in cli.parser()._actions}
    assert tuple(actions["model"].choices) == helpers.MODEL_NAMES
    assert actions["detail"].choices == ("224", "288", "320", "384", "448", "photo320", "photo448")


def test_markdown_regenerates_the_results_readme(tmp_path, capsys):
    for path in records.RESULTS.glob("*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert cli.main(["--markdown", "--out", str(tmp_path)]) == 0
    stored = (records.RESULTS / "README.md").read_text(encoding="utf-8")
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == stored
    assert capsys.readouterr().out == stored


def test_summary_counts_the_test_data(tmp_path, capsys):
    assert cli.main(["--summary", "--data", str(tmp_path)]) == 0  # nothing there: the repository's copies
    summary = json.loads(capsys.readouterr().out)
    assert summary["imagenet_val"]["photos"] == 60 and summary["imagenet_val"]["boxes"] == 103
    assert summary["pets_seg"]["photos"] == 26 and "coco_seg" not in summary


def test_bad_input_is_named(capsys):
    with pytest.raises(SystemExit, match="--limit must be >= 1, got 0"):
        cli.main(["--sizes", "--limit", "0"])
    for argv, named in ((["--model", "vgg16"], "--model"), (["--detail", "512"], "--detail")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2 and f"argument {named}: invalid choice" in capsys.readouterr().err


def test_a_tiny_sizes_run_on_the_test_data(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main(["--sizes", "--limit", "2", "--data", str(tmp_path / "none"), "--out", str(out)]) == 0
    record = records.load("sizes", out)
    assert isinstance(record, schema.SizesRecord) and record.model == "efficientnet_lite0"
    assert record.config.limit == 2 and record.config.input_sizes == list(helpers.DEFAULT_INPUT_SIZES)
    assert list(record.results.sets) == ["imagenet_val"]  # the only box set in tests/data
    entry = record.results.sets["imagenet_val"]
    assert entry.photos == 2 and len(entry.hits_at_default) == 2
    printed = capsys.readouterr().out
    assert f"imagenet_val ({entry.role}, 2 photos)" in printed and printed.rstrip().endswith("sizes.json")
