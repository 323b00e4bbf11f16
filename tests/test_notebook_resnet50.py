"""The notebook runs end to end with ResNet-50 loaded through `torch.hub` (`EXERCISE3_MODEL=resnet50`).

No network is reachable here, so the kernel starts with a `sitecustomize.py` (on `PYTHONPATH`, in a temporary
folder) that replaces `torch.hub.load` by a stub. The stub accepts only the call the sheet asks for,
`torch.hub.load("pytorch/vision:v<torchvision>", "resnet50", weights="IMAGENET1K_V1", ...)`, logs it, and returns
torchvision's ResNet-50 with random weights: the same module tree the hub builds, so every cell meets the real
architecture, only the numbers differ. Any other call raises, so a changed call fails here instead of silently
falling back to the stand-in. Every cell must run without error (`nbclient` raises at the first failing cell),
and the outputs must say that ResNet-50 computed the maps while the stored numbers are the stand-in's.
"""

import json
import os
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torchvision
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import helpers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "exercise3.ipynb"
HUB_REPO = f"pytorch/vision:v{torchvision.__version__.split('+')[0]}"  # helpers pins the installed torchvision's tag
CELL_TIMEOUT_S = 600

STUB = textwrap.dedent(
    """
    # Started by tests/test_notebook_resnet50.py: torch.hub.load without a network (see that file).
    import json
    import os

    import torch
    import torchvision


    def _stub_hub_load(repo_or_dir, model, *args, **kwargs):
        expected = (os.environ["HUB_STUB_REPO"], "resnet50", (), "IMAGENET1K_V1")
        got = (repo_or_dir, model, args, kwargs.get("weights"))
        if got != expected:
            raise AssertionError(f"torch.hub.load stub: expected {expected}, got {got}")
        with open(os.environ["HUB_STUB_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"repo": repo_or_dir, "model": model, "kwargs": kwargs}) + "\\n")
        return torchvision.models.resnet50()  # random weights: the hub's module tree without the download


    torch.hub.load = _stub_hub_load
    """
)


def _stub_environment(folder: Path) -> dict[str, str]:
    """Environment variables for a kernel whose `torch.hub.load` is the stub; writes the stub into `folder`."""
    (folder / "sitecustomize.py").write_text(STUB, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": path,
        "HUB_STUB_REPO": HUB_REPO,
        "HUB_STUB_LOG": str(folder / "hub_calls.jsonl"),
        "EXERCISE3_MODEL": "resnet50",
        "OMP_NUM_THREADS": "1",
    }


def _execute(notebook: nbformat.NotebookNode, folder: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run every cell of `notebook` in a fresh kernel (working directory: the repository) with the stub."""
    for name, value in _stub_environment(folder).items():
        monkeypatch.setenv(name, value)  # the kernel process inherits this environment
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    return client.execute()


def _text(notebook: nbformat.NotebookNode) -> str:
    """All stream and text/plain outputs of `notebook`, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.skipif(sys.platform == "win32", reason="sitecustomize on PYTHONPATH is tested on POSIX only")
def test_every_cell_runs_with_resnet50_through_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    executed = _execute(notebook, tmp_path, monkeypatch)  # raises CellExecutionError at the first failing cell

    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code_cells)  # every code cell ran
    calls = [json.loads(line) for line in (tmp_path / "hub_calls.jsonl").read_text(encoding="utf-8").splitlines()]
    assert calls and all(call["repo"] == HUB_REPO and call["model"] == "resnet50" for call in calls)

    first = "".join(output.get("text", "") for output in code_cells[0].outputs)
    assert "model:   resnet50\n" in first
    assert f"weights: torch.hub {HUB_REPO} resnet50, weights=IMAGENET1K_V1" in first
    assert "note:" not in first  # no fallback to the stand-in
    text = _text(executed)
    stored_model = json.loads((ROOT / "evaluation" / "results" / "dilated.json").read_text(encoding="utf-8"))["model"]
    assert stored_model != "resnet50"  # the stored records are the stand-in's, so the notebook must say so
    assert "note: the model loaded now is resnet50; the stored numbers below are not its numbers" in text
    chosen = "".join(str(size) for size in helpers.DEFAULT_INPUT_SIZES)  # detail_<size>.json holds the default
    assert f"this notebook (detail {chosen}, {stored_model}):" in text
    assert "live (resnet50, maps from " in text and f"stored run ({stored_model}, detail {chosen}, " in text


def test_a_failing_cell_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner surfaces a cell's error, and the stub refuses a call other than the sheet's."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import torch\nprint('before')"),
            nbformat.v4.new_code_cell(f'torch.hub.load("{HUB_REPO}", "resnet18", weights="IMAGENET1K_V1")'),
            nbformat.v4.new_code_cell("print('never reached')"),
        ]
    )
    with pytest.raises(CellExecutionError, match=r"torch\.hub\.load stub: expected .*'resnet50'.* got .*'resnet18'"):
        _execute(notebook, tmp_path, monkeypatch)
    assert not (tmp_path / "hub_calls.jsonl").exists()
    assert "execution_count" not in notebook.cells[2] or not notebook.cells[2].execution_count
