"""Every ```python block of README.md and docs/**/*.md runs and prints what the page shows.

The pages follow these rules, checked here:

* a ```python block is run as a script (``python -W error``, on the source
  tree, in an empty directory); its stderr must be empty;
* an ```output block that follows it, with nothing but blank lines between, is
  its stdout, line for line; a ``...`` in an output line stands for any text
  (an object's address, say). A block with no output block prints nothing;
* a block preceded by ``<!-- not-run: REASON -->`` (blank lines between
  allowed) is not run; the reason is required. Use it sparingly: for a
  fragment that cannot run alone;
* blocks that a test elsewhere runs with checks of its own (on several loops,
  under the policy too, as a pytest run, ...) are listed in
  ``CHECKED_ELSEWHERE`` below, by page and heading, each with the test that
  runs it;
* a block that uses ``ctxloop.loop_factory()`` runs once more with
  ``ctxloop.loop_factory("uvloop")`` where uvloop is installed;
* a block whose unconditional ``import X`` names a module this Python lacks
  (uvloop on PyPy) is skipped, with that reason.

docs/integrations/ has rules and tests of its own (tests/integrations/).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None

# Blocks run by another test, which checks more than one run's output:
# (page, heading of its section) -> (test file, test function).
CHECKED_ELSEWHERE: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("README.md", "### A test suite"): ("tests/test_pytest_plugin.py", "test_readme_snippet_runs"),
    ("docs/pytest.md", "# pytest: every async test on every loop"): (
        "tests/test_pytest_plugin.py",
        "test_the_pytest_page_shows_the_readme_snippet",
    ),
    ("docs/taskgroups.md", "# TaskGroups"): ("tests/test_examples.py", "test_taskgroups_page"),
}

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->\s*\Z", re.S)
_HEADING = re.compile(r"^#{1,6} .*$", re.M)


class Block(NamedTuple):
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    heading: str  # the nearest heading above it
    code: str
    output: Optional[List[str]]  # None: no output block follows
    not_run: Optional[str]  # the reason, when marked not-run

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def page_blocks(path: Path) -> List[Block]:
    """The ```python blocks of one page, each with its output block and marker."""
    text = path.read_text(encoding="utf-8")
    page = path.relative_to(ROOT).as_posix()
    fences = list(_FENCE.finditer(text))
    blocks: List[Block] = []
    for index, match in enumerate(fences):
        if match.group(1) != "python":
            continue
        previous_end = fences[index - 1].end() if index else 0
        marker = _NOT_RUN.search(text, previous_end, match.start())
        output = None
        if index + 1 < len(fences) and fences[index + 1].group(1) == "output":
            following = fences[index + 1]
            if not text[match.end() : following.start()].strip():
                output = following.group(2).splitlines()
        headings = _HEADING.findall(_FENCE.sub("", text[: match.start()]))
        blocks.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                heading=headings[-1] if headings else "",
                code=match.group(2),
                output=output,
                not_run=marker.group(1) if marker else None,
            )
        )
    return blocks


def pages() -> List[Path]:
    found = [ROOT / "README.md"]
    found += sorted(p for p in DOCS.rglob("*.md") if "integrations" not in p.relative_to(DOCS).parts)
    return found


ALL_BLOCKS = [block for page in pages() for block in page_blocks(page)]
ELSEWHERE = [b for b in ALL_BLOCKS if (b.page, b.heading) in CHECKED_ELSEWHERE]
RUNNABLE = [b for b in ALL_BLOCKS if b.not_run is None and b not in ELSEWHERE]
LOOP_RUNS = [(b, "asyncio") for b in RUNNABLE] + [(b, "uvloop") for b in RUNNABLE if "ctxloop.loop_factory()" in b.code]


def _output_matches(got: List[str], want: List[str]) -> bool:
    if len(got) != len(want):
        return False
    for line, pattern in zip(got, want):
        parts = [re.escape(part) for part in pattern.split("...")]
        if not re.fullmatch(".*".join(parts), line):
            return False
    return True


def _missing_imports(code: str) -> List[str]:
    """Modules the block imports unconditionally (at its top level) that this Python lacks."""
    names = []
    for node in ast.parse(code).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [name for name in names if importlib.util.find_spec(name.split(".")[0]) is None]


def run_block(code: str, tmp_path: Path) -> List[str]:
    """Run *code* as a script under -W error; its stdout lines (stderr must be empty)."""
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


@pytest.mark.parametrize(("block", "loop"), LOOP_RUNS, ids=[f"{b.id}-{loop}" for b, loop in LOOP_RUNS])
def test_block_prints_what_the_page_shows(block: Block, loop: str, tmp_path: Path) -> None:
    missing = _missing_imports(block.code)
    if missing:
        pytest.skip(f"{block.id} imports {', '.join(missing)}, not installed for this Python")
    code = block.code
    if loop == "uvloop":
        if not HAS_UVLOOP:
            pytest.skip("uvloop is not installed for this Python")
        code = code.replace("ctxloop.loop_factory()", 'ctxloop.loop_factory("uvloop")')
    got = run_block(code, tmp_path)
    want = block.output or []
    assert _output_matches(got, want), "\n".join(["got:", *got, "shown:", *want])


def test_every_block_is_run_or_says_why_not() -> None:
    assert len(RUNNABLE) >= 20  # the pages keep their examples
    for block in ALL_BLOCKS:
        if block.not_run is not None:
            assert block.not_run, f"{block.id}: not-run needs a reason"
    marked = [b.id for b in ALL_BLOCKS if b.not_run is not None]
    assert len(marked) <= 4, f"not-run is for the odd fragment, not for {marked}"


def test_blocks_checked_elsewhere_are_run_there() -> None:
    assert sorted({(b.page, b.heading) for b in ELSEWHERE}) == sorted(CHECKED_ELSEWHERE)
    for (page, heading), (path, test) in CHECKED_ELSEWHERE.items():
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {test}(" in source, f"{path} has no {test}"
        found = Path(page).name in source and heading.lstrip("# ") in source
        assert found, f"{path} does not read the section {heading!r} of {page}"


def test_an_output_block_follows_a_python_block() -> None:
    for page in pages():
        text = page.read_text(encoding="utf-8")
        fences = list(_FENCE.finditer(text))
        for before, block in zip(fences, fences[1:]):
            if block.group(1) == "output":
                assert before.group(1) == "python", f"{page.name}: an output block after a {before.group(1)!r} block"


# The harness itself: a wrong output, stderr, or a missing block is caught.


def test_the_harness_catches_a_wrong_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# T\n\n```python\nprint('a')\n```\n\n```output\nb\n```\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        (block,) = page_blocks(page)
    assert block.output == ["b"]
    assert not _output_matches(run_block(block.code, tmp_path), block.output)
    assert _output_matches(["<Context object at 0x7f>"], ["<...>"])
    assert not _output_matches(["a", "b"], ["a"])


def test_the_harness_catches_stderr(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        run_block("import sys\nsys.stderr.write('warned')\n", tmp_path)


def test_the_harness_reads_not_run_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n<!-- not-run: a fragment -->\n\n```python\nx\n```\n\n```python\nprint(1)\n```\n", encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        first, second = page_blocks(page)
    assert (first.not_run, second.not_run) == ("a fragment", None)
    assert (first.output, second.output) == (None, None)


# The messages docs/troubleshooting.md quotes (the ```text block opening each
# section) are what Python prints: each is produced here, where this Python
# gives it, and matched with the same "..." rule as output blocks.

_QUOTE_SCRIPTS: Dict[str, Tuple[bool, str]] = {
    "## `RuntimeError: ... is entered beneath the current context`": (
        sys.version_info >= (3, 12),  # the Context repr shown is 3.12's
        """
import contextvars, ctxloop
async def child(): pass
async def main():
    coro = child()
    try:
        ctxloop.create_task(coro, context=outer)
    except RuntimeError as error:
        coro.close()
        print(f"RuntimeError: {error}")
outer = contextvars.copy_context()
outer.run(ctxloop.run, main())
""",
    ),
    "## uvloop: `TypeError: Task() takes exactly 1 positional argument (2 given)`": (
        sys.version_info < (3, 11) and HAS_UVLOOP,
        """
import asyncio, contextvars, uvloop
async def child(): pass
async def main():
    coro = child()
    try:
        asyncio.get_running_loop().create_task(coro, context=contextvars.copy_context())
    except TypeError as error:
        coro.close()
        print(f"TypeError: {error}")
uvloop.new_event_loop().run_until_complete(main())
""",
    ),
    "## `RuntimeWarning: coroutine '...' was never awaited` after a refusal": (
        True,
        """
import gc, warnings
async def login(): pass
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    login()
    gc.collect()
print(f"RuntimeWarning: {caught[0].message}")
""",
    ),
    "## `RuntimeWarning: ctxloop.install() was called while ... is running`": (
        sys.platform != "win32",
        """
import asyncio, warnings, ctxloop
async def app():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctxloop.install()
    ctxloop.uninstall()
    print(f"RuntimeWarning: {[w.message for w in caught if w.category is RuntimeWarning][0]}")
loop = asyncio.new_event_loop()
loop.run_until_complete(app())
loop.close()
""",
    ),
    "## `DeprecationWarning` from `install()` on Python 3.14+": (
        sys.version_info >= (3, 14),
        """
import warnings, ctxloop
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ctxloop.install()
ctxloop.uninstall()
print(f"DeprecationWarning: {caught[0].message}")
""",
    ),
}


def _quoted_messages() -> Dict[str, str]:
    """Section heading -> the message its first ```text block quotes (one line)."""
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    quoted = {}
    for section in re.split(r"^(?=## )", text, flags=re.M)[1:]:
        heading = section.splitlines()[0]
        found = re.search(r"^```text\n(.*?)\n```", section, re.S | re.M)
        if found:
            quoted[heading] = found.group(1)
    return quoted


def test_every_quoted_message_is_checked() -> None:
    assert sorted(_quoted_messages()) == sorted(_QUOTE_SCRIPTS)


@pytest.mark.parametrize("heading", sorted(_QUOTE_SCRIPTS))
def test_quoted_message_is_what_python_prints(heading: str, tmp_path: Path) -> None:
    applies, script = _QUOTE_SCRIPTS[heading]
    if not applies:
        pytest.skip(f"this Python does not print the message of {heading!r}")
    got = run_block(script, tmp_path)
    quoted = _quoted_messages()[heading]
    # A quote ending in "..." shows the message's beginning.
    assert _output_matches(got, [quoted]), f"Python prints {got!r}"
