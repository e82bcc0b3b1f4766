"""Every example in examples/, and the docs snippets that need checks of their own, run and print what they say."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
HAS_TRIO = importlib.util.find_spec("trio") is not None


def run_python(path: Path, *args: str) -> List[str]:
    """Run a script on the source tree under -W error; its stdout lines (stderr must be empty)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-W", "error", str(path), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == ""
    return out.stdout.splitlines()


# The request id log, identical under the policy and under the loop factory.
_REQUEST_LOG = [
    "req-1 anonymous GET /orders",
    "req-2 anonymous GET /profile",
    "req-1 alice     authenticated",
    "req-2 bob       authenticated",
    "req-1 alice     fetched cache",
    "req-2 bob       fetched cache",
    "req-1 alice     fetched db",
    "req-2 bob       fetched db",
    "req-1 alice     200 OK",
    "req-2 bob       200 OK",
    "req-1 alice     access log: req-1 done",  # the user the handler set, read back from ctx
    "req-2 bob       access log: req-2 done",
    "-     anonymous served 2 requests",
]

EXPECTED: Dict[str, List[str]] = {
    "request_id.py": [
        "== under the policy: ctxloop.install(); asyncio.run(serve())",
        *_REQUEST_LOG,
        "== with a loop factory: ctxloop.run(serve(), loop_factory=ctxloop.loop_factory())",
        *_REQUEST_LOG,
    ],
    "taskgroup_context.py": [
        "one context shared by three tasks: a0 b0 c0 a1 b1 a2",
        "a context per task: users: fetched after 1 steps",
        "a context per task: orders: fetched after 2 steps",
        "main's own context: () not run",
    ],
}


def _anyio_app(backend: str) -> List[str]:
    lines = [
        f"== {backend}",
        "  start_soon(login): main sees user=anonymous",
        "  start_soon + run_in_context(session, ...): session has user=alice",
    ]
    if backend != "trio":
        lines.append("  loop.create_task(..., context=other): other has user=bob")
    return [*lines, "  main's own context: user=anonymous"]


# notebook.py is run and compared line by line in test_notebook.py;
# pytest_demo/ is a test module, run by test_pytest_plugin.py.
TESTED_ELSEWHERE = {"notebook.py", "pytest_demo"}
ANYIO_BACKENDS = ["asyncio"] + (["uvloop"] if HAS_UVLOOP else []) + (["trio"] if HAS_TRIO else [])


def test_every_example_is_tested() -> None:
    present = {p.name for p in EXAMPLES.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}
    assert present - TESTED_ELSEWHERE == set(EXPECTED) | {"anyio_app.py"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_output(name: str) -> None:
    if name == "taskgroup_context.py" and sys.version_info < (3, 11) and not importlib.util.find_spec("taskgroup"):
        pytest.skip("Python < 3.11 needs the taskgroup backport (in the test dependency group)")
    assert run_python(EXAMPLES / name) == EXPECTED[name]


@pytest.mark.parametrize("backend", ANYIO_BACKENDS)
def test_anyio_app(backend: str) -> None:
    pytest.importorskip("anyio")
    assert run_python(EXAMPLES / "anyio_app.py", backend) == _anyio_app(backend)


def test_anyio_app_defaults_to_asyncio() -> None:
    pytest.importorskip("anyio")
    assert run_python(EXAMPLES / "anyio_app.py") == _anyio_app("asyncio")


# Snippets of docs pages run here with checks of their own (under -W error, on
# each loop, under the policy too); tests/test_doc_snippets.py lists those of
# the pages it reads in CHECKED_ELSEWHERE, and tests/integrations/test_docs.py
# runs the integration pages as well.

ANYIO_PAGE = ("docs/integrations/anyio.md", "# anyio")
TASKGROUPS_PAGE = ("docs/taskgroups.md", "# TaskGroups")
REQUEST_IDS_PAGE = ("docs/integrations/logging.md", "## Request ids with the standard library alone")


def doc_snippet(page: str, heading: str) -> Tuple[str, List[str]]:
    """The first ```python block after the line *heading* in *page*, before the next heading, and its output block."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    rest = lines[lines.index(heading) + 1 :]
    block: List[str] = []
    inside = False
    for number, line in enumerate(rest):
        if not inside and line.startswith("#"):
            break
        if not inside and line == "```python":
            inside = True
        elif inside and line == "```":
            after = [following for following in rest[number + 1 :] if following.strip()]
            output: List[str] = []
            if after and after[0] == "```output":
                output = after[1 : after.index("```", 1)]
            return "\n".join(block) + "\n", output
        elif inside:
            block.append(line)
    raise AssertionError(f"no ```python block under {heading!r} in {page}")


def run_snippet(tmp_path: Path, code: str) -> List[str]:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return run_python(script)


def _on_loop(code: str, loop: str) -> str:
    if loop == "uvloop":
        if not HAS_UVLOOP:
            pytest.skip("uvloop is not installed for this Python")
        assert code.count("ctxloop.loop_factory()") == 1
        code = code.replace("ctxloop.loop_factory()", 'ctxloop.loop_factory("uvloop")')
    return code


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_anyio_page(tmp_path: Path, loop: str) -> None:
    pytest.importorskip("anyio")
    code, shown = doc_snippet(*ANYIO_PAGE)
    assert shown == ["alice True", "bob anonymous"]
    assert run_snippet(tmp_path, _on_loop(code, loop)) == shown


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_taskgroups_page(tmp_path: Path, loop: str) -> None:
    if sys.version_info < (3, 11) and not importlib.util.find_spec("taskgroup"):
        pytest.skip("Python < 3.11 needs the taskgroup backport (in the test dependency group)")
    code, shown = doc_snippet(*TASKGROUPS_PAGE)
    assert shown == ["['users fetched', 'orders fetched'] not run"]
    assert run_snippet(tmp_path, _on_loop(code, loop)) == shown


REQUEST_ID_SNIPPET = [
    "req-1 GET /users",
    "req-2 GET /orders",
    "req-1 SELECT * FROM users",
    "req-2 SELECT * FROM orders",
    "req-1 access log: 200",
    "req-2 access log: 200",
]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_logging_page_request_ids(tmp_path: Path, loop: str) -> None:
    code, shown = doc_snippet(*REQUEST_IDS_PAGE)
    assert shown == REQUEST_ID_SNIPPET
    assert run_snippet(tmp_path, _on_loop(code, loop)) == shown


def test_logging_page_request_ids_under_the_policy(tmp_path: Path) -> None:
    # The alternative its last line names: ctxloop.install(); asyncio.run(serve()).
    code, shown = doc_snippet(*REQUEST_IDS_PAGE)
    last = "ctxloop.run(serve(), loop_factory=ctxloop.loop_factory())"
    assert code.count(last) == 1
    # From Python 3.14 policies are deprecated: install() warns as asyncio's
    # set_event_loop_policy() does, once, and nothing else warns.
    install = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    ctxloop.install()\n"
        "assert [w.category for w in caught] == ([DeprecationWarning] if sys.version_info >= (3, 14) else [])\n"
        "asyncio.run(serve())"
    )
    code = code.replace(last, install)
    assert run_snippet(tmp_path, code) == shown == REQUEST_ID_SNIPPET


def test_doc_snippet_reads_the_output_block() -> None:
    # The helper itself: the block under the heading asked for (not the page's next one), and its output block.
    code, shown = doc_snippet("docs/integrations/logging.md", "# Logging: structlog and the standard library")
    assert "structlog" in code and shown[-1] == "event='served'"
    assert "structlog" not in doc_snippet(*REQUEST_IDS_PAGE)[0]
