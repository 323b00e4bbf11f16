"""The notebook and its jupytext source `.ci/exercise3.py` match, and the check of that can fail.

The check (`.ci/check_notebook_source.py`, run by CI) is loaded from its file; the failing cases are copies of
the real pair, edited on one side only, in a temporary folder.
"""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "exercise3.ipynb"
SCRIPT = ROOT / ".ci" / "exercise3.py"


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
