"""examples/notebook.ipynb in a real Jupyter kernel (ipykernel, driven by nbclient), with and without the extension.

One kernel per case, each running the whole notebook and then the cell-to-cell
cells below: every cell must print what the notebook printed
(``NOTEBOOK``, taken from ../shared/notebook-cells.md), and a value set in a
cell must reach the next cell exactly when ``%load_ext ctxloop`` is loaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from test_notebook import NOTEBOOK

MISSING = ""
try:
    with warnings.catch_warnings():
        # As pytest.importorskip does: jupyter_core 5 warns at import that its paths will move.
        warnings.simplefilter("ignore", DeprecationWarning)
        import ipykernel
        import nbclient
        import nbformat
except ImportError as error:
    # The notebook dependency group does not install on PyPy (psutil, pyzmq).
    MISSING = f"{error.name} is not installed for this Python (the notebook dependency group)"
needs_a_kernel = pytest.mark.skipif(bool(MISSING), reason=MISSING)
IPYKERNEL_MAJOR = 0 if MISSING else int(ipykernel.__version__.split(".")[0])

# Starting a kernel takes a few seconds on a loaded machine; one runs per case.
pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
IPYNB = ROOT / "examples" / "notebook.ipynb"
OLD_PYTHON = sys.version_info < (3, 11)  # asyncio.create_task takes no context= there

# ipykernel 7 on Python 3.10 runs each message in a new copy of the kernel's
# context (3.10's create_task takes no context=): values pass from cell to
# cell, but a Token is valid only in the cell that made it, with or without
# the extension.
KERNEL_COPIES_ITS_CONTEXT = OLD_PYTHON and IPYKERNEL_MAJOR >= 7

# Cells run after the notebook's, in the same kernel: (cell id, source).
CELL_TO_CELL: List[Tuple[str, str]] = [
    ("setup", "import asyncio, contextvars\nv = contextvars.ContextVar('v', default='unset')"),
    ("set-plain", "_ = v.set('set in a cell without await')"),
    ("read-awaiting", "await asyncio.sleep(0)\nprint(v.get())"),
    ("set-awaiting", "_ = v.set('set in a cell with await')\nawait asyncio.sleep(0)"),
    ("read-plain", "print(v.get())"),
    ("set-awaiting-2", "_ = v.set('set in another cell with await')\nawait asyncio.sleep(0)"),
    ("read-awaiting-2", "await asyncio.sleep(0)\nprint(v.get())"),
    ("task-copy", "async def child():\n    v.set('set by a task')\nawait asyncio.create_task(child())\nprint(v.get())"),
    (
        "task-context",
        "ctx = contextvars.copy_context()\n"
        "async def child():\n    v.set('set by a task in ctx')\n"
        "await asyncio.create_task(child(), context=ctx)\nprint(v.get(), '/', ctx[v])",
    ),
    ("token", "token = v.set('set with a token')"),
    ("reset-awaiting", "await asyncio.sleep(0)\nv.reset(token)\nprint(v.get())"),
]
# What the cell-to-cell cells print, with the extension loaded: as a script run top to bottom.
LOADED = {
    "read-awaiting": ["set in a cell without await"],
    "read-plain": ["set in a cell with await"],
    "read-awaiting-2": ["set in another cell with await"],
    "task-copy": ["set in another cell with await"],  # the task ran in a copy (N4)
    "task-context": ["set in another cell with await / set by a task in ctx"],  # and this one in ctx (N5b)
    "reset-awaiting": ["ValueError"] if KERNEL_COPIES_ITS_CONTEXT else ["set in another cell with await"],
}
# And without it, as ipykernel runs cells: a cell with await runs in a copy
# of the kernel's context, so what it sets is lost, and a token made in another
# cell's context cannot be reset there.
NATIVE = {
    "read-awaiting": ["set in a cell without await"],
    "read-plain": ["set in a cell without await"],
    "read-awaiting-2": ["set in a cell without await"],
    "task-copy": ["set in a cell without await"],
    "task-context": ["TypeError"] if OLD_PYTHON else ["set in a cell without await / set by a task in ctx"],
    "reset-awaiting": ["ValueError"],
}
# After %unload_ext ctxloop, in the kernel that had it: cells run as ipykernel runs them again.
AFTER_UNLOAD: List[Tuple[str, str]] = [
    ("set-before-unload", "_ = v.set('set in a cell with await, before unloading')\nawait asyncio.sleep(0)"),
    ("unload", "%unload_ext ctxloop"),
    (
        "state-after-unload",
        "import ctxloop._loop\n"
        "loop = asyncio.get_running_loop()\n"
        "print(ctxloop._loop.is_ctxloop_loop(loop), 'create_task' in vars(loop),\n"
        "      'run_cell_async' in vars(get_ipython()))\n"
        "print(asyncio.create_task is asyncio.tasks.create_task)",
    ),
    ("set-awaiting-after-unload", "_ = v.set('set after unloading')\nawait asyncio.sleep(0)"),
    ("read-after-unload", "print(v.get())"),
]


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Dict[str, str]]]:
    """A kernel spec running this Python, and the kernel's environment (no user profile, this ctxloop)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "ctxloop-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "ctxloop", "language": "python"}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), IPYTHONDIR=str(root / "ipython"), JUPYTER_PATH=str(root))
    yield root, env


def _execute(cells: List[Any], kernel_dirs: Tuple[Path, Dict[str, str]]) -> Dict[str, Any]:
    """Run *cells* in one new kernel, in order; each cell by id."""
    root, env = kernel_dirs
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="ctxloop-test",
        timeout=60,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(root)}},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))  # where the client finds the kernel spec
        # On a loop of its own, closed afterwards (nbclient's execute() keeps one open).
        asyncio.run(client.async_execute(env=env, cwd=str(root)))
    return {cell.id: cell for cell in notebook.cells}


def _code_cells(*, extension: bool) -> List[Any]:
    cells = [cell for cell in nbformat.read(str(IPYNB), as_version=4).cells if cell.cell_type == "code"]
    if not extension:
        cells = [cell for cell in cells if cell.id != "load-ext"]
    extra = CELL_TO_CELL + (AFTER_UNLOAD if extension else [])
    for cell_id, source in extra:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = cell_id
        cells.append(cell)
    return cells


@pytest.fixture(scope="module")
def loaded(kernel_dirs: Tuple[Path, Dict[str, str]]) -> Dict[str, Any]:
    return _execute(_code_cells(extension=True), kernel_dirs)


@pytest.fixture(scope="module")
def native(kernel_dirs: Tuple[Path, Dict[str, str]]) -> Dict[str, Any]:
    return _execute(_code_cells(extension=False), kernel_dirs)


def printed(cell: Any) -> List[str]:
    """What a cell printed (stdout), then the name of the error it raised, if any."""
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return text.splitlines() + [o.ename for o in cell.outputs if o.output_type == "error"]


def stderr(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")


NOTEBOOK_CELLS = ["4", "13", "21", "22", "23", "23b", "25"]


@needs_a_kernel
@pytest.mark.parametrize("number", NOTEBOOK_CELLS)
def test_loaded_cell_prints_the_notebook(loaded: Dict[str, Any], number: str) -> None:
    cell = loaded[f"cell-{number}"]
    assert printed(cell) == NOTEBOOK[number]
    assert stderr(cell) == ""


@needs_a_kernel
def test_load_ext_prints_nothing(loaded: Dict[str, Any]) -> None:
    assert loaded["load-ext"].outputs == []


@needs_a_kernel
@pytest.mark.parametrize("number", NOTEBOOK_CELLS)
def test_native_cell(native: Dict[str, Any], number: str) -> None:
    if number == "23b" and OLD_PYTHON:
        # The line the notebook had to comment out: it needs 3.11 (or the extension).
        assert printed(native["cell-23b"]) == ["level = 2, var.get() = 2", "TypeError"]
        assert "got an unexpected keyword argument 'context'" in native["cell-23b"].outputs[-1].evalue
    else:
        assert printed(native[f"cell-{number}"]) == NOTEBOOK[number]


@needs_a_kernel
def test_the_notebooks_own_cell_to_cell_pair(loaded: Dict[str, Any], native: Dict[str, Any]) -> None:
    assert printed(loaded["set-in-an-awaiting-cell"]) == ["this cell: user = alice"]
    assert printed(loaded["read-in-the-next-cell"]) == ["the next cell: user = alice"]
    assert printed(native["read-in-the-next-cell"]) == ["the next cell: user = anonymous"]


@needs_a_kernel
@pytest.mark.parametrize("cell_id", sorted(LOADED))
def test_cell_to_cell_loaded(loaded: Dict[str, Any], cell_id: str) -> None:
    assert printed(loaded[cell_id]) == LOADED[cell_id]


@needs_a_kernel
@pytest.mark.parametrize("cell_id", sorted(NATIVE))
def test_cell_to_cell_native(native: Dict[str, Any], cell_id: str) -> None:
    # What ipykernel does without the extension (docs/notebooks.md describes it).
    assert printed(native[cell_id]) == NATIVE[cell_id]


@needs_a_kernel
def test_unload_restores_the_kernel(loaded: Dict[str, Any]) -> None:
    assert loaded["unload"].outputs == []
    assert printed(loaded["state-after-unload"]) == ["False False False", "True"]
    # Cells run as ipykernel runs them again: what a cell with await sets is lost;
    # what the cells set while the extension was loaded is still there.
    assert printed(loaded["read-after-unload"]) == ["set in a cell with await, before unloading"]


def test_the_notebook_file_shows_the_notebooks_outputs() -> None:
    # What examples/notebook.ipynb shows before anyone runs it: each cell's
    # stored output is the notebook's, and no cell shows an error.
    cells = {cell["id"]: cell for cell in json.loads(IPYNB.read_text(encoding="utf-8"))["cells"]}
    for number, lines in NOTEBOOK.items():
        (output,) = cells[f"cell-{number}"]["outputs"]
        assert (output["output_type"], output["name"]) == ("stream", "stdout")
        assert "".join(output["text"]).splitlines() == lines, number
    assert cells["load-ext"]["outputs"] == []
    (output,) = cells["read-in-the-next-cell"]["outputs"]
    assert "".join(output["text"]) == "the next cell: user = alice\n"
