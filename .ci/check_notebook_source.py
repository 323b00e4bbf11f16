"""Check that exercise3.ipynb and its jupytext source .ci/exercise3.py hold the same cells.

The notebook's cells are written in `.ci/exercise3.py` (jupytext percent format) and synced into the
notebook, whose stored outputs come from executing it. This check fails when one of the two was edited
without the other: it compares the cells one to one (same count, and for each cell the same type and
the same source) and names the first cell that differs. Outputs and metadata are not compared.

Usage: python .ci/check_notebook_source.py [--notebook exercise3.ipynb] [--script .ci/exercise3.py]
(paths relative to the current directory; the defaults are the repository's pair). Exit status 0 when
they match, 1 when they differ, with the difference and the command that syncs them on stderr.
"""

import argparse
import difflib
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "exercise3.ipynb"
SCRIPT = ROOT / ".ci" / "exercise3.py"
SYNC_HINT = (
    "The script is the notebook's source (README, 'Refreshing the stored outputs').\n"
    "To keep the script's cells: sync them into the notebook, keeping its outputs, then execute it:\n"
    "  jupytext --update --to ipynb .ci/exercise3.py -o exercise3.ipynb\n"
    "  jupyter nbconvert --to notebook --execute --inplace exercise3.ipynb\n"
    "To keep an edit made in the notebook instead, write it back into the script:\n"
    "  jupytext --to py:percent exercise3.ipynb -o .ci/exercise3.py"
)


def read_cells(path: Path, fmt: str) -> list[tuple[str, str]]:
    """The (cell type, source) of each cell of the notebook or script at `path`, in order.

    `fmt` is a jupytext format name: "ipynb" or "py:percent".
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected the {fmt} side of the notebook pair)")
    notebook: nbformat.NotebookNode = jupytext.read(path, fmt=fmt)
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def _source_diff(notebook_source: str, script_source: str, limit: int = 12) -> str:
    """A unified diff of two cell sources, at most `limit` lines."""
    lines = list(
        difflib.unified_diff(
            notebook_source.splitlines(),
            script_source.splitlines(),
            fromfile="notebook",
            tofile="script",
            lineterm="",
        )
    )
    shown = lines[:limit] + ([f"... ({len(lines) - limit} more diff lines)"] if len(lines) > limit else [])
    return "\n".join(shown)


def first_difference(notebook: list[tuple[str, str]], script: list[tuple[str, str]]) -> str | None:
    """A description of the first cell where the two cell lists differ, or None when they are equal.

    Cells are numbered from 0, as in the notebook. A missing or extra cell at the end is reported
    after every shared cell matched.
    """
    for index, ((nb_type, nb_source), (py_type, py_source)) in enumerate(zip(notebook, script, strict=False)):
        if nb_type != py_type:
            return f"cell {index}: the notebook has a {nb_type} cell, the script a {py_type} cell"
        if nb_source != py_source:
            return f"cell {index} ({nb_type}): the sources differ\n{_source_diff(nb_source, py_source)}"
    if len(notebook) != len(script):
        longer, extra = ("notebook", notebook) if len(notebook) > len(script) else ("script", script)
        cell_type, source = extra[min(len(notebook), len(script))]
        first_line = source.splitlines()[0] if source else ""
        return (
            f"the notebook has {len(notebook)} cells, the script {len(script)}; "
            f"the {longer}'s cell {min(len(notebook), len(script))} ({cell_type}) has no counterpart: {first_line!r}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Compare the pair named on the command line; print the result; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help="the .ipynb file (default: %(default)s)")
    parser.add_argument("--script", type=Path, default=SCRIPT, help="its percent script (default: %(default)s)")
    args = parser.parse_args(argv)
    notebook = read_cells(args.notebook, "ipynb")
    script = read_cells(args.script, "py:percent")
    difference = first_difference(notebook, script)
    if difference is not None:
        print(f"{args.notebook} and {args.script} do not match: {difference}\n{SYNC_HINT}", file=sys.stderr)
        return 1
    print(f"{args.notebook.name} and {args.script.name} match: {len(notebook)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
