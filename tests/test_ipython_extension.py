"""The IPython extension (``%load_ext ctxloop``) in IPython's own shell, as terminal IPython runs cells.

Each test runs an IPython shell in a subprocess (IPython's shell is a
process-wide singleton that replaces display and exception hooks): a script
creates the shell, runs cells with ``shell.run_cell`` as the terminal does
(a cell with ``await`` through IPython's asyncio loop runner, one without it
inline) and prints what the test checks. The last tests run the real
``ipython`` command. The kernel (ipykernel) is tested in test_kernel.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Tuple

import pytest
from test_notebook import NOTEBOOK

pytest.importorskip("IPython", reason="IPython is not installed for this Python (the notebook dependency group)")

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
OLD_PYTHON = sys.version_info < (3, 11)
# The main thread's own context can be named on CPython only: elsewhere the
# extension keeps the cells' values in a context of its own while loaded.
NAMES_MAIN_CONTEXT = sys.implementation.name == "cpython"

PRELUDE = """
import asyncio, contextvars, io, sys, warnings
from contextlib import redirect_stderr, redirect_stdout
from traitlets.config import Config
from IPython.core.interactiveshell import InteractiveShell

config = Config()
config.HistoryManager.enabled = False
config.InteractiveShell.colors = "NoColor"
shell = InteractiveShell.instance(config=config)

def cell(source):
    # Run a cell as IPython's terminal does; return what it printed, or its error's name.
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        result = shell.run_cell(source)
    error = result.error_before_exec or result.error_in_exec
    return f"{type(error).__name__}: {error}" if error is not None else out.getvalue().strip()

def get_asyncio_loop():
    # The loop IPython runs cells with await on (IPython 7: asyncio's current loop).
    from IPython.core import async_helpers
    return getattr(async_helpers, "get_asyncio_loop", asyncio.get_event_loop)()
"""


def run_script(tmp_path: Path, body: str) -> List[str]:
    """Run PRELUDE + *body* in a fresh interpreter; its stdout lines (stderr must be empty)."""
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), IPYTHONDIR=str(tmp_path / "ipython"))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


CELL_TO_CELL = """
cell("import asyncio, contextvars")
print(cell("v = contextvars.ContextVar('v', default='unset')"))
print(cell("_ = v.set('set in a cell without await')"))
print(cell("await asyncio.sleep(0); print(v.get())"))
print(cell("_ = v.set('set in a cell with await'); await asyncio.sleep(0)"))
print(cell("print(v.get())"))
print(cell("_ = v.set('set in another cell with await'); await asyncio.sleep(0)"))
print(cell("await asyncio.sleep(0); print(v.get())"))
print(cell("token = v.set('set with a token')"))
print(cell("await asyncio.sleep(0); v.reset(token); print(v.get())"))
print(cell("async def child(): v.set('set by a task')"))
print(cell("await asyncio.create_task(child()); print(v.get())"))
"""


def test_cell_to_cell_with_the_extension(tmp_path: Path) -> None:
    lines = run_script(tmp_path, 'print(cell("%load_ext ctxloop") or "-")' + CELL_TO_CELL)
    assert lines == [
        "-",
        "",
        "",
        "set in a cell without await",
        "",
        "set in a cell with await",
        "",
        "set in another cell with await",
        "",
        "set in another cell with await",
        "",
        "set in another cell with await",  # the task ran in a copy (N4)
    ]


def test_cell_to_cell_without_the_extension(tmp_path: Path) -> None:
    # What IPython does: a cell with await runs as a task, in a copy of the
    # context, so what it sets is lost, and a token from another cell is foreign to it.
    lines = run_script(tmp_path, CELL_TO_CELL)
    assert lines[2:] == [
        "set in a cell without await",
        "",
        "set in a cell without await",
        "",
        "set in a cell without await",
        "",
        "ValueError: " + lines[8].split(": ", 1)[-1],
        "",
        "set with a token",
    ]
    assert "was created in a different Context" in lines[8]


def test_cell_to_cell_in_a_shell_running_inside_context_run(tmp_path: Path) -> None:
    # IPython embedded in a Context.run: the context cells run in is entered,
    # so no task can run in it; the extension keeps the cells' values in a
    # context of its own instead, and no cell fails.
    body = 'print(cell("%load_ext ctxloop") or "-")' + CELL_TO_CELL
    lines = run_script(tmp_path, f"contextvars.copy_context().run(exec, {textwrap.dedent(body)!r}, globals())\n")
    assert lines[3:] == [
        "set in a cell without await",
        "",
        "set in a cell with await",
        "",
        "set in another cell with await",
        "",
        "set in another cell with await",
        "",
        "set in another cell with await",
    ]


def test_the_notebook_in_the_shell(tmp_path: Path) -> None:
    # Every cell of examples/notebook.ipynb, run as cells, after %load_ext ctxloop.
    body = """
    import nbformat
    for c in nbformat.read(NOTEBOOK, as_version=4).cells:
        if c.cell_type == "code":
            print("#", c.id)
            print(cell(c.source))
    """
    pytest.importorskip("nbformat", reason="nbformat is not installed (the notebook dependency group)")
    lines = run_script(tmp_path, f"NOTEBOOK = {str(ROOT / 'examples' / 'notebook.ipynb')!r}\n" + textwrap.dedent(body))
    printed = {}
    for line in lines:
        if line.startswith("# "):
            current = printed[line[2:]] = []
        elif line:
            current.append(line)
    for number, expected in NOTEBOOK.items():
        assert printed[f"cell-{number}"] == expected, number
    assert printed["load-ext"] == []
    assert printed["read-in-the-next-cell"] == ["the next cell: user = alice"]


def test_what_loading_changes_and_unloading_restores(tmp_path: Path) -> None:
    lines = run_script(
        tmp_path,
        """
        import asyncio.events
        import ctxloop
        from ctxloop._loop import is_ctxloop_loop

        loop = get_asyncio_loop()
        policy = asyncio.events._event_loop_policy
        create_task = asyncio.create_task
        def state():
            return (
                is_ctxloop_loop(loop),
                "run_cell_async" in vars(shell),
                asyncio.create_task is create_task,
                asyncio.events._event_loop_policy is policy,
            )
        print(state())
        print(repr(cell("%load_ext ctxloop")))
        print(state())
        ctxloop.load_ipython_extension(shell)  # loading again: a no-op
        print(cell("%load_ext ctxloop"))
        print(state())
        print(repr(cell("%unload_ext ctxloop")))
        print(state())
        ctxloop.unload_ipython_extension(shell)  # unloading again: a no-op
        print(state())
        print(repr(cell("%reload_ext ctxloop")))
        print(state())
        """,
    )
    patched = not OLD_PYTHON  # asyncio.create_task unchanged on 3.11+
    assert lines == [
        "(False, False, True, True)",
        "''",
        f"(True, True, {patched}, True)",
        "The ctxloop extension is already loaded. To reload it, use:\n  %reload_ext ctxloop".splitlines()[0],
        "  %reload_ext ctxloop",
        f"(True, True, {patched}, True)",
        "''",
        "(False, False, True, True)",
        "(False, False, True, True)",
        "''",
        f"(True, True, {patched}, True)",
    ]


def test_unloading_leaves_what_was_there_before(tmp_path: Path) -> None:
    # A loop that was a ctxloop loop before stays one; a run_cell_async of
    # someone else's is put back; install()'s patch of asyncio.create_task stays
    # while install() holds it, and the extension's stays while it is loaded.
    lines = run_script(
        tmp_path,
        """
        import ctxloop
        from ctxloop._loop import is_ctxloop_loop

        loop = ctxloop.enable(get_asyncio_loop())
        theirs = shell.run_cell_async
        shell.run_cell_async = theirs
        original = asyncio.create_task
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # policies, 3.14+
            ctxloop.install()
            cell("%load_ext ctxloop")
            ctxloop.uninstall()
            print(asyncio.create_task is original)
            cell("%unload_ext ctxloop")
            print(is_ctxloop_loop(loop), vars(shell)["run_cell_async"] is theirs, asyncio.create_task is original)
            cell("%load_ext ctxloop")
            ctxloop.install()
            cell("%unload_ext ctxloop")
            print(asyncio.create_task is original)
            ctxloop.uninstall()
            print(asyncio.create_task is original)
        """,
    )
    assert lines == [str(not OLD_PYTHON), "True True True", str(not OLD_PYTHON), "True"]


def test_a_shell_whose_cells_no_asyncio_loop_runs(tmp_path: Path) -> None:
    lines = run_script(
        tmp_path,
        """
        from ctxloop._loop import is_ctxloop_loop
        create_task = asyncio.create_task
        def unchanged():
            return (
                not is_ctxloop_loop(get_asyncio_loop()),
                "run_cell_async" not in vars(shell),
                asyncio.create_task is create_task,
                "ctxloop" not in shell.extension_manager.loaded,
            )
        cell("%autoawait off")
        print(cell("%load_ext ctxloop"))
        print(unchanged())
        cell("%autoawait trio")
        print(cell("%load_ext ctxloop"))
        print(unchanged())
        """,
    )
    assert lines[0] == (
        "UsageError: %load_ext ctxloop applies to an IPython whose cells run on an asyncio event loop (a "
        "Jupyter kernel, or terminal IPython with %autoawait asyncio); here no asyncio loop runs this shell's "
        "cells (autoawait: off), so nothing was changed"
    )
    assert lines[1] == "(True, True, True, True)"
    assert lines[2].endswith("(its loop runner: _trio_runner), so nothing was changed")
    assert lines[3] == "(True, True, True, True)"


def test_outside_ipython(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            import ctxloop
            create_task = asyncio.create_task
            sys.modules["IPython"] = None  # as if IPython were not installed
            try:
                ctxloop.load_ipython_extension(None)
            except RuntimeError as error:
                print(error)
            del sys.modules["IPython"]
            for shell in (None, object()):
                try:
                    ctxloop.load_ipython_extension(shell)
                except TypeError as error:
                    print(error)
            ctxloop.unload_ipython_extension(None)  # never loaded: a no-op
            print(asyncio.create_task is create_task)
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "ctxloop.load_ipython_extension() is IPython's hook for %load_ext ctxloop, and IPython is not installed "
        "for this Python: nothing was changed. In a script, use ctxloop.run() or ctxloop.loop_factory()",
        "ctxloop.load_ipython_extension() is IPython's hook for %load_ext ctxloop and takes the running IPython "
        "shell, not NoneType: nothing was changed. Write %load_ext ctxloop in a notebook cell or at an IPython "
        "prompt",
        "ctxloop.load_ipython_extension() is IPython's hook for %load_ext ctxloop and takes the running IPython "
        "shell, not object: nothing was changed. Write %load_ext ctxloop in a notebook cell or at an IPython "
        "prompt",
        "True",
    ]


def test_install_in_ipython_says_what_to_do(tmp_path: Path) -> None:
    # install() with the shell's loop running (as in a kernel): on 3.8-3.10 it
    # points to %load_ext ctxloop; on 3.11+, where the running loop already
    # takes context=, it changes nothing that matters and says nothing.
    lines = run_script(
        tmp_path,
        """
        import ctxloop

        async def main():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ctxloop.install()
            ctxloop.uninstall()
            return [str(w.message) for w in caught if w.category is RuntimeWarning]

        for message in asyncio.new_event_loop().run_until_complete(main()):
            print(message)
        """,
    )
    if OLD_PYTHON:
        (message,) = lines
        assert message.startswith("ctxloop.install() was called in IPython, whose loop <_UnixSelectorEventLoop")
        assert message.endswith(
            "is already running and is not changed: asyncio.create_task now takes context=, but that loop's own "
            "create_task() still does not on this Python. Write %load_ext ctxloop instead: it makes the running "
            "loop a ctxloop loop and keeps contextvars from cell to cell"
        )
    else:
        assert lines == []


def test_run_in_a_cell_says_to_await(tmp_path: Path) -> None:
    lines = run_script(
        tmp_path,
        """
        cell("import asyncio, ctxloop")
        print(cell("async def main(): pass"))
        print(cell("coro = main(); await asyncio.sleep(0); ctxloop.run(coro)"))
        cell("coro.close()")  # never awaited, as with asyncio.run: closed, so that nothing warns
        """,
    )
    assert lines == [
        "",
        "RuntimeError: ctxloop.run() cannot be called from a running event loop: await the coroutine instead "
        "(in a Jupyter or IPython cell, write await main(...) rather than ctxloop.run(main(...)))",
    ]


# The real ipython command, at its prompt (as a user types) and on the notebook file.


def _ipython(tmp_path: Path, *args: str, stdin: str = "") -> List[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), IPYTHONDIR=str(tmp_path / "ipython"))
    command = [
        sys.executable,
        "-m",
        "IPython",
        "--no-banner",
        "--quick",
        "--colors=NoColor",
        "--TerminalInteractiveShell.term_title=False",
        "--HistoryManager.enabled=False",
        *args,
    ]
    done = subprocess.run(
        command, input=stdin, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_terminal_ipython_prompt(tmp_path: Path) -> None:
    typed = (
        "import asyncio, contextvars\n"
        "v = contextvars.ContextVar('v', default='unset')\n"
        "%load_ext ctxloop\n"
        "v.set('set in a cell with await'); await asyncio.sleep(0)\n"
        "print('next cell:', v.get())\n"
        "%unload_ext ctxloop\n"
        "v.set('set after unloading'); await asyncio.sleep(0)\n"
        "print('after unloading:', v.get())\n"
    )
    lines = [line.split(": ", 1)[-1] for line in _ipython(tmp_path, "--simple-prompt", stdin=typed) if ": " in line]
    after = "set in a cell with await" if NAMES_MAIN_CONTEXT else "unset"
    assert [line for line in lines if line.startswith(("next cell", "after unloading"))] == [
        "next cell: set in a cell with await",
        f"after unloading: {after}",
    ]


def test_terminal_ipython_runs_the_notebook(tmp_path: Path) -> None:
    pytest.importorskip("nbformat", reason="nbformat is not installed (the notebook dependency group)")
    lines = _ipython(tmp_path, str(ROOT / "examples" / "notebook.ipynb"))
    expected = [line for number in ["4", "13", "21", "22", "23", "23b", "25"] for line in NOTEBOOK[number]]
    assert lines == [*expected, "this cell: user = alice", "the next cell: user = alice"]


# docs/notebooks.md and README.md: their ```ipython blocks are cells, run in
# order in one shell; a ```text block right after one is what that cell prints.

_CELL = re.compile(r"^```ipython\n(.*?)^```\n(?:\s*^```text\n(.*?)^```\n)?", re.S | re.M)


def _page_cells(page: str = "docs/notebooks.md") -> List[Tuple[str, List[str]]]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(m.group(1), (m.group(2) or "").splitlines()) for m in _CELL.finditer(text)]


def test_the_notebooks_page_cells_print_what_it_shows(tmp_path: Path) -> None:
    cells = _page_cells()
    assert cells[0] == ("%load_ext ctxloop\n", [])
    body = "".join(f"print(cell({source!r}))\nprint('---')\n" for source, _ in cells)
    got = "\n".join(run_script(tmp_path, body)).split("---")
    assert [part.strip("\n").splitlines() for part in got[:-1]] == [shown for _, shown in cells]


def test_the_readme_cells_print_what_it_shows(tmp_path: Path) -> None:
    cells = _page_cells("README.md")
    assert cells[0] == ("%load_ext ctxloop\n", []) and cells[-1][1]
    body = "".join(f"print(cell({source!r}))\nprint('---')\n" for source, _ in cells)
    got = "\n".join(run_script(tmp_path, body)).split("---")
    assert [part.strip("\n").splitlines() for part in got[:-1]] == [shown for _, shown in cells]


def test_the_readme_cells_without_the_extension(tmp_path: Path) -> None:
    # The last cell's comment: "without the extension: anonymous".
    cells = _page_cells("README.md")[1:]
    without = re.search(r"# without the extension: (\S+)$", cells[-1][0], re.M)
    assert without is not None
    lines = run_script(tmp_path, "".join(f"print(cell({source!r}))\n" for source, _ in cells))
    assert lines[-1] == without.group(1) != cells[-1][1][-1]


def test_the_notebooks_page_without_the_extension(tmp_path: Path) -> None:
    # "Without the extension ... the next cell prints user = anonymous".
    (first, _), (second, _), *_ = _page_cells()[1:]
    lines = run_script(tmp_path, f"print(cell({first!r}))\nprint(cell({second!r}))\n")
    assert lines[:2] == ["this cell: user = alice", "the next cell: user = anonymous"]
    page = " ".join((ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8").split())
    assert "prints `alice`, but the next cell prints `user = anonymous`" in page
