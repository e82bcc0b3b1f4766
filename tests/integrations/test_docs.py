"""Every code block of docs/integrations/*.md runs and prints what the page says.

The pages follow three rules, checked here:

* a ```python block whose first line is ``# NAME.py`` is a file the page's
  other blocks use: it is written to NAME.py, not run;
* any other ```python block is run as a script, and a ```sh block's lines are
  run as commands (``uvicorn ...``: served on 127.0.0.1 and an ephemeral port,
  given three requests with ids req-1, req-2, req-3, then it stops itself);
* an ```output block is what the runnable block before it prints (stdout,
  exactly, less uvicorn's own "INFO:" lines); a runnable block with no output
  block prints nothing.

Each page runs once per loop: ``ctxloop.loop_factory()`` and
``ctxloop.loops:asyncio_loop`` become their uvloop forms for uvloop.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "integrations"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
FRAMEWORKS = {
    "aiohttp.md": ["aiohttp"],
    "anyio.md": ["anyio"],
    "logging.md": ["structlog"],
    "opentelemetry.md": ["opentelemetry.sdk"],
    "pytest-asyncio.md": [],
    "sentry.md": ["sentry_sdk"],
    "uvicorn.md": ["uvicorn", "starlette"],
}
UVLOOP_FORMS = {
    "ctxloop.loop_factory()": 'ctxloop.loop_factory("uvloop")',
    "ctxloop.loops:asyncio_loop": "ctxloop.loops:uvloop_loop",
}
TIMEOUT = 60
# A page's other route, named in a comment on its blocks' last line: the same blocks run that way too.
ALTERNATIVES = {
    "logging.md": (
        "ctxloop.run(serve(), loop_factory=ctxloop.loop_factory())",
        "ctxloop.install()\nasyncio.run(serve())",
    ),
}


class Block:
    def __init__(self, kind: str, code: str) -> None:
        self.kind = kind  # "file", "python" or "sh"
        self.code = code
        self.output: Optional[List[str]] = None
        first = code.splitlines()[0] if code else ""
        found = re.fullmatch(r"# (\w+\.py)", first) if kind == "python" else None
        self.filename = found.group(1) if found else None
        if self.filename:
            self.kind = "file"


def page_blocks(text: str) -> List[Block]:
    """The page's code blocks, each runnable one with the output block that follows it."""
    blocks: List[Block] = []
    fence = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
    for match in fence.finditer(text):
        info, body = match.group(1), match.group(2)
        if info == "output":
            runnable = [b for b in blocks if b.kind in ("python", "sh")]
            assert runnable, "an output block with no runnable block before it"
            assert runnable[-1].output is None, "two output blocks for one runnable block"
            runnable[-1].output = body.splitlines()
        elif info in ("python", "sh"):
            blocks.append(Block(info, body))
        else:
            raise AssertionError(f"code block of unknown kind {info!r}: use python, sh or output")
    return blocks


def run_script(path: Path, cwd: Path) -> List[str]:
    out = subprocess.run(
        [sys.executable, str(path)], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout.splitlines()


def run_uvicorn(line: str, cwd: Path) -> Tuple[List[str], List[str]]:
    """Serve with the documented command line; three requests; it stops itself. (stdout, bodies)"""
    words = shlex.split(line)
    assert words[0] == "uvicorn"
    command = [
        sys.executable,
        "-m",
        *words,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--limit-max-requests",
        "3",
    ]
    stdout_path = cwd / "stdout.txt"
    bodies: List[str] = []
    port: List[int] = []
    port_known = threading.Event()
    stderr_lines: List[str] = []
    with stdout_path.open("w") as stdout:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:

            def read_stderr() -> None:
                assert proc.stderr is not None
                for text in proc.stderr:
                    stderr_lines.append(text)
                    found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", text)
                    if found:
                        port.append(int(found.group(1)))
                        port_known.set()

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            assert port_known.wait(TIMEOUT), "".join(stderr_lines)
            for number in (1, 2, 3):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port[0]}/", headers={"x-request-id": f"req-{number}"}
                )
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    bodies.append(response.read().decode())
            assert proc.wait(timeout=TIMEOUT) == 0, "".join(stderr_lines)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            assert proc.stderr is not None
            proc.stderr.close()
    assert not [t for t in stderr_lines if "Traceback" in t or "ERROR" in t], "".join(stderr_lines)
    printed = [t for t in stdout_path.read_text().splitlines() if not t.startswith("INFO:")]  # uvicorn's access log
    return printed, bodies


def page_text(page: str, loop_name: str) -> str:
    """The page, its loop choices made for *loop_name*; skips what cannot run here."""
    for module in FRAMEWORKS[page]:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"needs {module} (pip install --group integrations)")
    if page == "uvicorn.md":
        import uvicorn

        if tuple(int(p) for p in re.findall(r"\d+", uvicorn.__version__)[:2]) < (0, 36):
            pytest.skip(f"uvicorn {uvicorn.__version__} takes no loop factory on the command line (0.36+ does)")
    text = (DOCS / page).read_text(encoding="utf-8")
    if loop_name == "uvloop":
        if not any(form in text for form in UVLOOP_FORMS):
            pytest.skip("the page has no choice of loop")
        for form, uvloop_form in UVLOOP_FORMS.items():
            text = text.replace(form, uvloop_form)
    return text


def test_every_page_is_known() -> None:
    assert sorted(FRAMEWORKS) == PAGES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("page", PAGES)
def test_page(page: str, loop_name: str, tmp_path: Path) -> None:
    run_page(page, page_text(page, loop_name), tmp_path)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("page", sorted(ALTERNATIVES))
def test_page_other_route(page: str, tmp_path: Path) -> None:
    text = page_text(page, "asyncio")
    old, new = ALTERNATIVES[page]
    # Each runnable block of the page ends with this route, and names the other in a comment.
    assert text.count(old) == len([b for b in page_blocks(text) if b.kind == "python"])
    run_page(page, text.replace(old, new), tmp_path)


def run_page(page: str, text: str, tmp_path: Path) -> None:
    blocks = page_blocks(text)
    for block in blocks:
        if block.kind == "file":
            (tmp_path / block.filename).write_text(block.code, encoding="utf-8")  # type: ignore[operator]
    ran = 0
    for number, block in enumerate(blocks):
        if block.kind == "python":
            script = tmp_path / f"block_{number}.py"
            script.write_text(block.code, encoding="utf-8")
            assert run_script(script, tmp_path) == (block.output or [])
            ran += 1
        elif block.kind == "sh":
            for line in block.code.splitlines():
                printed, bodies = run_uvicorn(line, tmp_path)
                assert printed == (block.output or [])
                assert bodies == [f"req-{n} alice\n" for n in (1, 2, 3)]
                ran += 1
    expected: Dict[str, int] = {"pytest-asyncio.md": 0, "logging.md": 2}
    assert ran == expected.get(page, 1)
