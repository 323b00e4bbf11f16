"""The notebook and its jupytext source `.ci/exercise3.py` match, and the check of that can fail; the stored
notebook stays light and names no machine's paths.

The check (`.ci/check_notebook_source.py`, run by CI) is loaded from its file; the failing cases are copies of
the real pair, edited on one side only, in a temporary folder.
"""

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "exercise3.ipynb"
SCRIPT = ROOT / ".ci" / "exercise3.py"
MAX_NOTEBOOK_BYTES = 3_000_000
# An absolute path on a POSIX or Windows machine: /root/..., /home/..., C:\Users\... (not $TORCH_HOME/... or ~/...).
MACHINE_PATH = re.compile(r"(?<![\w.~$})])/(?:root|home|tmp|work|Users|usr|var|opt|mnt|srv)/|\b[A-Za-z]:\\")


@pytest.fixture(scope="module")
def check() -> ModuleType:
    """The module `.ci/check_notebook_source.py`."""
    spec = importlib.util.spec_from_file_location("check_notebook_source", ROOT / ".ci" / "check_notebook_source.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell_count(notebook: Path) -> int:
    """The number of cells of an .ipynb file, read as plain JSON (independently of jupytext)."""
    return len(json.loads(notebook.read_text(encoding="utf-8"))["cells"])


def test_the_real_pair_matches(check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["--notebook", str(NOTEBOOK), "--script", str(SCRIPT)]) == 0
    assert f"match: {_cell_count(NOTEBOOK)} cells" in capsys.readouterr().out


def test_the_script_has_one_cell_marker_per_notebook_cell() -> None:
    markers = [line for line in SCRIPT.read_text(encoding="utf-8").splitlines() if line.startswith("# %%")]
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    kinds = ["markdown" if marker.startswith("# %% [markdown]") else "code" for marker in markers]
    assert kinds == [cell["cell_type"] for cell in cells]


def test_a_notebook_cell_edited_alone_fails(
    check: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    index = next(i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code")
    source = notebook["cells"][index]["source"]  # a list of lines or one string, both valid nbformat
    notebook["cells"][index]["source"] = "".join(source) + '\nprint("edited in the notebook only")'
    edited = tmp_path / "exercise3.ipynb"
    edited.write_text(json.dumps(notebook), encoding="utf-8")

    assert check.main(["--notebook", str(edited), "--script", str(SCRIPT)]) == 1
    message = capsys.readouterr().err
    assert f"cell {index} (code): the sources differ" in message
    assert '-print("edited in the notebook only")' in message  # the diff shows the line the script lacks


def test_a_cell_added_to_the_script_alone_fails(
    check: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "exercise3.py"
    script.write_text(SCRIPT.read_text(encoding="utf-8") + '\n# %%\nprint("a new cell")\n', encoding="utf-8")
    cells = _cell_count(NOTEBOOK)

    assert check.main(["--notebook", str(NOTEBOOK), "--script", str(script)]) == 1
    message = capsys.readouterr().err
    assert f"the notebook has {cells} cells, the script {cells + 1}" in message
    assert f"the script's cell {cells} (code) has no counterpart: 'print(\"a new cell\")'" in message


def test_first_difference_on_hand_built_cells(check: ModuleType) -> None:
    cells = [("markdown", "# Title"), ("code", "x = 1")]
    assert check.first_difference(cells, list(cells)) is None
    assert check.first_difference(cells, [("markdown", "# Title"), ("markdown", "x = 1")]) == (
        "cell 1: the notebook has a code cell, the script a markdown cell"
    )
    assert check.first_difference(cells, [("markdown", "# Title"), ("code", "x = 2")]).startswith(
        "cell 1 (code): the sources differ"
    )
    assert check.first_difference(cells, cells[:1]) == (
        "the notebook has 2 cells, the script 1; the notebook's cell 1 (code) has no counterpart: 'x = 1'"
    )


def test_a_missing_file_is_named(check: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.py: no such file \(expected the py:percent side"):
        check.read_cells(tmp_path / "nothing.py", "py:percent")


def _stored_texts(notebook: dict) -> list[tuple[int, str]]:
    """(cell index, text) of every stored stream, error and text/plain output of a notebook read as plain JSON."""
    texts = []
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            parts = [output.get("text", ""), output.get("data", {}).get("text/plain", ""), output.get("traceback", [])]
            texts.append((index, "".join("".join(p) if isinstance(p, list) else p for p in parts)))
    return texts


def machine_paths(notebook: dict) -> list[str]:
    """'cell N: <the path and what follows>' for each stored output that names an absolute path."""
    found = []
    for index, text in _stored_texts(notebook):
        for match in MACHINE_PATH.finditer(text):
            found.append(f"cell {index}: {text[match.start() : match.start() + 60]!r}")
    return found


def test_no_stored_output_names_a_machine_path() -> None:
    assert machine_paths(json.loads(NOTEBOOK.read_text(encoding="utf-8"))) == []


def test_machine_paths_are_found_on_hand_built_outputs() -> None:
    def notebook(text: str) -> dict:
        return {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": [text]}]}]}

    assert machine_paths(notebook("unpacked as /root/.cache/torch/hub/pytorch_vision_v0.29.1")) == [
        "cell 0: '/root/.cache/torch/hub/pytorch_vision_v0.29.1'"
    ]
    assert machine_paths(notebook("see C:\\Users\\me\\x.png")) == ["cell 0: 'C:\\\\Users\\\\me\\\\x.png'"]
    assert machine_paths(notebook("under $TORCH_HOME/hub or ~/.cache/torch/hub; tests/data/imagenet_val")) == []


def test_the_notebook_is_light() -> None:
    assert NOTEBOOK.stat().st_size <= MAX_NOTEBOOK_BYTES
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    formats = {key for cell in notebook["cells"] for o in cell.get("outputs", []) for key in o.get("data", {})}
    assert "image/png" not in formats and "image/jpeg" in formats  # photos and heatmaps: JPEG, a fifth of PNG's bytes


def test_every_nbval_marker_is_one_nbval_reads() -> None:
    # nbval reads a marker only when the comment is exactly its name: "# NBVAL_IGNORE_OUTPUT (why)" is compared.
    from nbval.plugin import comment_markers

    lines = (ROOT / ".ci" / "exercise3.py").read_text(encoding="utf-8").splitlines()
    markers = [line for line in lines if "NBVAL_" in line or "PYTEST_VALIDATE" in line]
    assert markers, "the notebook has cells whose output depends on the machine: they need a marker"
    assert all(line.lstrip("#").strip() in comment_markers for line in markers), markers
