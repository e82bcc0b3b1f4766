"""The test matrix: every Python ctxloop supports, each with every loop it can install.

python -m nox                 # every default session: what CI runs (.ci/run)
python -m nox -s tests-3.10   # one cell
python -m nox -l              # the sessions
python -m nox -s docs         # the documentation site, into site/

The test suite always runs against an installed ctxloop: each session builds
the sdist, then the wheel from the sdist (as pip does from an index), installs
the wheel, and runs the tests of the unpacked sdist, whose ctxloop/ directory
is removed, so nothing can import the source tree by accident.

A Python this machine lacks is skipped, and nox's summary names it; with the
environment variable CI set, a missing Python is an error instead.
CPython 3.8-3.13 are found in pyenv's versions, 3.14 and 3.15 also where the
Debian builds of them are put on this machine (``DEBIAN_PYTHONS_ROOT``, by
default ``$TMPDIR/debian-sid``; see CONTRIBUTING.md), else on PATH.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from typing import List, Optional, Tuple

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
nox.options.reuse_existing_virtualenvs = True

ROOT = os.path.dirname(os.path.abspath(__file__))
PYPROJECT = nox.project.load_toml(os.path.join(ROOT, "pyproject.toml"))


def _expose_pyenv_pythons() -> None:
    """Put each pyenv CPython's bin/ on PATH, so that python3.X is found without shims."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    bins = [d for d in glob.glob(os.path.join(root, "versions", "*", "bin")) if re.search(r"/\d+\.\d+\.\d+/bin$", d)]
    bins.sort(key=lambda d: [int(x) for x in d.split(os.sep)[-2].split(".")], reverse=True)
    os.environ["PATH"] = os.pathsep.join([*bins, os.environ.get("PATH", "")])


def _expose_debian_pythons() -> None:
    """Put the patched Debian builds of CPython 3.14/3.15 on PATH, where they exist."""
    root = os.environ.get("DEBIAN_PYTHONS_ROOT") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "debian-sid")
    host_bin = os.path.join(root, "usr", "host-bin")
    if os.path.isdir(host_bin):
        os.environ["PATH"] = os.pathsep.join([host_bin, os.environ.get("PATH", "")])


def _expose_free_threaded_python() -> None:
    """Put the free-threaded CPython 3.13t (../shared/tools/free-threaded-python.sh) on PATH, where it exists."""
    root = os.environ.get("FREE_THREADED_ROOT") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "free-threaded")
    bin_dir = os.path.join(root, "bin")
    if os.path.isdir(bin_dir):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


_expose_pyenv_pythons()
_expose_debian_pythons()
_expose_free_threaded_python()

CPYTHONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
FREE_THREADED = ["3.13t"]  # CPython without the GIL
PYPYS = ["pypy3.9"]
# No wheel of hypothesis after 6.155 is pure Python, and none is built for cp313t.
FREE_THREADED_CONSTRAINTS = ["hypothesis<6.156"]
OLDEST_NEWEST = [CPYTHONS[0], CPYTHONS[-1]]

# The tests that check what is installed read this (tests/test_installed.py).
INSTALLED_ENV = {"CTXLOOP_TEST_INSTALLED": "1"}
# A hang outside any test (at interpreter exit, say) is beyond pytest-timeout:
# each pytest run is bounded as a whole, so CI fails fast instead. The tests
# run in one worker process per CPU (pytest-xdist): each test is independent
# (no fixed port, no shared file), and the suite's wall time is then about
# halved on a 2-core machine.
PYTEST = ["timeout", "-k", "30", "1200", "python", "-m", "pytest", "--numprocesses", "auto"]
# The second run of a session, with the pure-Python implementation, and the
# sdist's own run leave out what runs the same code either way (servers,
# kernels, the pytest plugin's inner sessions, the docs' and examples' scripts,
# CPython's suite, the benchmarks): every test of ctxloop's own behaviour runs.
CORE_ONLY = [
    "--ignore=tests/integrations", "--ignore=tests/cpython", "--ignore=tests/test_pytest_plugin.py",
    "--ignore=tests/test_kernel.py", "--ignore=tests/test_ipython_extension.py", "--ignore=tests/test_notebook.py",
    "--ignore=tests/test_doc_snippets.py", "--ignore=tests/test_examples.py", "--ignore=tests/test_leaks.py",
    "--ignore=tests/test_benchmarks_smoke.py", "--ignore=tests/test_benchmarks_instructions.py",
]  # fmt: skip
PURE = {**INSTALLED_ENV, "CTXLOOP_NO_SPEEDUPS": "1"}


def _group(name: str) -> List[str]:
    """The requirements of a dependency group of pyproject.toml (PEP 735)."""
    return list(nox.project.dependency_groups(PYPROJECT, name))


def _tmp(session: nox.Session) -> str:
    """The session's temporary directory, as an absolute path (the sessions change directory)."""
    return os.path.abspath(session.create_tmp())


def _uv(session: nox.Session) -> bool:
    return session.venv_backend == "uv"


def _python(session: nox.Session) -> str:
    """The session's interpreter (its virtual environment's python)."""
    return str(session.run_install("python", "-c", "import sys; print(sys.executable)", silent=True)).strip()


def _build(session: nox.Session, *, wheel: bool = True) -> Tuple[str, Optional[str]]:
    """Build the sdist, then the wheel from the sdist, with the session's Python; return their paths.

    Building the wheel from the sdist, as pip does with a package from an index,
    proves the sdist complete. The wheel is compiled for this Python when the
    optional C accelerator builds here (hatch_build.py), else it is pure Python.
    """
    out = os.path.join(_tmp(session), "dist")
    new = out + ".new"
    shutil.rmtree(new, ignore_errors=True)
    python = _python(session)
    if _uv(session):
        command = ["uv", "build", "--python", python, "--out-dir", new]
        session.run_install(*command, *([] if wheel else ["--sdist"]), external=True)
    else:
        session.install("build")
        session.run_install("python", "-m", "build", "--outdir", new, *([] if wheel else ["--sdist"]))
    if os.path.isdir(new):  # else skipped (--no-install): the previous build stands
        shutil.rmtree(out, ignore_errors=True)
        os.rename(new, out)
    sdist = glob.glob(os.path.join(out, "*.tar.gz"))
    wheels = glob.glob(os.path.join(out, "*.whl"))
    if len(sdist) != 1 or len(wheels) != int(wheel):
        found = os.listdir(out) if os.path.isdir(out) else []
        session.error(f"expected one sdist{' and one wheel' if wheel else ''} in {out}, found {found}")
    return sdist[0], wheels[0] if wheel else None


def _install_ctxloop(session: nox.Session, requirement: str, *others: str, resolution: Optional[str] = None) -> None:
    """Install ctxloop from a built distribution (replacing any earlier build of the same version)."""
    if _uv(session):
        options = ["--reinstall-package", "ctxloop"] + ([f"--resolution={resolution}"] if resolution else [])
        session.install(*options, requirement, *others)
    else:
        if resolution:
            session.error("the lowest-direct resolution needs uv (python3 -m pip install uv)")
        session.install("--force-reinstall", "--no-deps", requirement)
        session.install(requirement, *others)


def _unpacked_tree(session: nox.Session, sdist: str) -> str:
    """The sdist unpacked in the session's temporary directory, without its ctxloop/ package.

    The tests run there: ROOT in the tests, PYTHONPATH=ROOT in their
    subprocesses and the working directory then name a tree with no ctxloop in
    it, so every import of ctxloop is the installed one.
    """
    parent = os.path.join(_tmp(session), "unpacked")
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(parent)
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(parent, filter="data")
        else:  # pragma: no cover - Pythons without extraction filters
            archive.extractall(parent)
    (tree,) = glob.glob(os.path.join(parent, "ctxloop-*"))
    shutil.rmtree(os.path.join(tree, "ctxloop"))
    # tests/test_notebook.py compares with ../shared/notebook-cells.md where a
    # checkout has it beside itself: give the unpacked tree the same neighbour.
    shared = os.path.join(os.path.dirname(ROOT), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(parent, "shared"))
    return tree


def _run_suite(session: nox.Session, tree: str, *options: str) -> None:
    session.chdir(tree)
    session.run(*PYTEST, *options, *session.posargs, env=INSTALLED_ENV, external=True)


@nox.session(python=CPYTHONS + FREE_THREADED + PYPYS)
def tests(session: nox.Session) -> None:
    """The test suite on one Python, on asyncio's loop, uvloop and rloop (where they install), against the built wheel.

    On free-threaded CPython the servers of the integrations group are left
    out, and tests/test_free_threading.py checks that importing ctxloop (the
    compiled accelerator included) leaves the GIL off.
    """
    sdist, wheel = _build(session)
    assert wheel is not None
    if session.python in FREE_THREADED:
        constraints = os.path.join(_tmp(session), "constraints.txt")
        with open(constraints, "w", encoding="utf-8") as f:
            f.write("\n".join(FREE_THREADED_CONSTRAINTS) + "\n")
        # rloop has no cp313t wheel (it would build from its Rust source).
        _install_ctxloop(session, f"{wheel}[uvloop]", *_group("test"), "-c", constraints)
        env = INSTALLED_ENV
        tree = _unpacked_tree(session, sdist)
        session.chdir(tree)
        session.run(*PYTEST, *session.posargs, env=env, external=True)
        session.log("ctxloop's own tests with the pure-Python implementation (CTXLOOP_NO_SPEEDUPS=1)")
        session.run(*PYTEST, *CORE_ONLY, *session.posargs, env=PURE, external=True)
        return
    _install_ctxloop(session, f"{wheel}[uvloop,rloop]", *_group("test"), *_group("integrations"), *_group("notebook"))
    tree = _unpacked_tree(session, sdist)
    _run_suite(session, tree)
    if session.python in CPYTHONS:
        # The wheel carries the C accelerator here; the pure-Python
        # implementation must pass the same suite.
        session.log("ctxloop's own tests with the pure-Python implementation (CTXLOOP_NO_SPEEDUPS=1)")
        session.run(*PYTEST, *CORE_ONLY, *session.posargs, env=PURE, external=True)


@nox.session(python=OLDEST_NEWEST)
def sdist(session: nox.Session) -> None:
    """The sdist as a packager gets it: installed from the .tar.gz, its own core tests run in it, unpacked."""
    sdist, _ = _build(session, wheel=False)
    _install_ctxloop(session, f"ctxloop[uvloop] @ {_file_uri(sdist)}", *_group("test"))
    _run_suite(session, _unpacked_tree(session, sdist), *CORE_ONLY)


@nox.session(name="lowest-bounds", python=OLDEST_NEWEST)
def lowest_bounds(session: nox.Session) -> None:
    """The suite with the lowest versions the uvloop extra and the test and notebook groups allow (uv's lowest-direct).

    Without the integrations group: its tests are skipped here.
    """
    sdist, wheel = _build(session)
    # The extra's requirements are given directly, so that lowest-direct applies to them too.
    uvloop = PYPROJECT["project"]["optional-dependencies"]["uvloop"]
    assert wheel is not None
    _install_ctxloop(session, wheel, *uvloop, *_group("test"), *_group("notebook"), resolution="lowest-direct")
    session.run("uv", "pip", "list", "--python", _python(session), external=True)  # the versions tested
    _run_suite(session, _unpacked_tree(session, sdist))


# Does this Python get the C accelerator (CPython, free-threaded builds included)?
CPYTHON = "import sys; print(sys.implementation.name == 'cpython')"


@nox.session(python=CPYTHONS + FREE_THREADED + PYPYS)
def wheels(session: nox.Session) -> None:
    """What cibuildwheel does for one Python, here: build, install in a fresh venv, import, check.

    The wheel (and then the sdist) is installed in a new virtual environment
    with nothing else, and ``python -m ctxloop`` runs there, outside the
    checkout. The C accelerator must be in the wheel when ctxloop/_speedups.c
    exists and this is CPython (free-threaded too), and absent otherwise.
    """
    sdist, wheel = _build(session)
    assert wheel is not None
    python = _python(session)
    probe = session.run("python", "-c", CPYTHON, silent=True)
    if probe is None:  # --install-only
        return
    cpython = str(probe).strip() == "True"
    compiled = cpython and os.path.isfile(os.path.join(ROOT, "ctxloop", "_speedups.c"))
    _check_wheel_tag(session, wheel, compiled)
    for name, requirement in (("wheel", f"{wheel}[uvloop]"), ("sdist", f"ctxloop[uvloop] @ {_file_uri(sdist)}")):
        venv = os.path.join(_tmp(session), f"fresh-{name}")
        shutil.rmtree(venv, ignore_errors=True)
        fresh = os.path.join(venv, "Scripts" if sys.platform == "win32" else "bin", "python")
        if _uv(session):
            session.run("uv", "venv", "--quiet", "--python", python, venv, external=True)
            session.run("uv", "pip", "install", "--quiet", "--python", fresh, requirement, external=True)
        else:
            session.run("python", "-m", "venv", venv)
            session.run(fresh, "-m", "pip", "install", "--quiet", requirement, external=True)
        check = (
            "import importlib.util, os, sys, ctxloop;"
            "where = os.path.dirname(ctxloop.__file__);"
            f"assert where.startswith({venv!r}), where;"
            "found = importlib.util.find_spec('ctxloop._speedups') is not None;"
            f"assert found is {compiled}, ('ctxloop._speedups importable:', found);"
            "print('ctxloop', ctxloop.__version__, 'from', where, '(C accelerator)' if found else '(pure Python)')"
        )
        session.chdir(venv)  # not the checkout: the installed package only
        session.run(fresh, "-c", check, external=True)
        session.run(fresh, "-W", "error", "-m", "ctxloop", external=True, silent=True)
        session.chdir(ROOT)


def _check_wheel_tag(session: nox.Session, wheel: str, compiled: bool) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    has_extension = any(re.match(r"ctxloop/_speedups\..*(so|pyd)$", n) for n in names)
    pure = wheel.endswith("-py3-none-any.whl")
    if has_extension == pure or has_extension != compiled:
        session.error(f"{os.path.basename(wheel)}: C accelerator in it: {has_extension}, expected {compiled}")
    session.log(f"{os.path.basename(wheel)}: {'compiled' if compiled else 'pure Python'}, as expected")


# CPython's suite where ctxloop's code differs: 3.8 (the oldest, the backport
# and the child watcher), 3.10 (the backport, on uvloop, in pure Python too),
# 3.11, 3.12, 3.14 (uvloop) and 3.15 (the native connections); 3.9 and 3.13
# run the same branches as their neighbours (python -m nox -s cpython-suite-3.9).
CPYTHON_SUITE = ["3.8", "3.10", "3.11", "3.12", "3.14", "3.15"]


@nox.session(name="cpython-suite", python=CPYTHON_SUITE)
def cpython_suite(session: nox.Session) -> None:
    """CPython's own asyncio tests, natively and with ctxloop substituted; fails on a divergence.

    python -m nox -s cpython-suite-3.12 -- --modules test_runners   # arguments go to tests/cpython/run_suite.py

    The installed ctxloop (the C accelerator where it builds), on asyncio's
    loop; on 3.10 (the backport) and 3.14 also on uvloop, and on 3.10 once more
    with the pure-Python implementation; on 3.8 and 3.14 with the transport,
    server, stream and subprocess modules too (``--connections``). Every Python with every mode
    (``-- --uvloop``, ``CTXLOOP_NO_SPEEDUPS=1``) is a run by hand: CI keeps to
    this to stay well within its time.
    """
    session.install(".[uvloop]")
    # Each test is bounded by the runner (a hung test is recorded and the rest
    # goes on); the whole run is bounded here too.
    command = ["timeout", "-k", "30", "900", "python", "tests/cpython/run_suite.py", "--installed", "--jobs", "2"]
    command += session.posargs
    uvloop = ["--uvloop"] if session.python in ("3.10", "3.14") and "--uvloop" not in session.posargs else []
    # The connection modules where a ctxloop loop's transports differ most: 3.8
    # also wraps the child watcher, 3.14 the transports only (3.15 adds nothing).
    connections = ["--connections"] if session.python in ("3.8", "3.14") else []
    session.run(*command, *uvloop, *connections, external=True)
    if session.python == "3.10":
        session.log("Once more with the pure-Python implementation (CTXLOOP_NO_SPEEDUPS=1)")
        session.run(*command, env={"CTXLOOP_NO_SPEEDUPS": "1"}, external=True)


@nox.session(python="3.12")
def benchmarks(session: nox.Session) -> None:
    """The benchmarks' own tests, those under valgrind included (slow: once, on one Python)."""
    session.install(".[uvloop,rloop]", *_group("test"))
    session.run(
        *PYTEST, "tests/test_benchmarks_instructions.py", "tests/test_benchmarks_smoke.py", *session.posargs,
        env={"CTXLOOP_VALGRIND_TESTS": "1"}, external=True,
    )  # fmt: skip


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict on the package."""
    session.install("-e", ".[uvloop]", *_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    for version in ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15"):
        session.run("mypy", "--strict", "--no-warn-unused-ignores", "--python-version", version, "ctxloop")


# Pinned: with warnings as errors, a new release of a tool must not fail the build.
DOCS_TOOLS = [
    "mkdocs==1.6.1",
    "mkdocs-material==9.8.2",
    "mkdocstrings==1.0.8",
    "mkdocstrings-python==2.0.11",
    "ruff==0.17.6",  # formats the API reference's signatures
]


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs, API reference by mkdocstrings), any warning an error."""
    session.install(*DOCS_TOOLS)
    # Material for MkDocs prints a banner about its successor on every build.
    session.run("mkdocs", "build", "--strict", "--clean", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


# The sdist must ship these (a packager runs the tests from it).
SDIST_REQUIRED = [
    "LICENSE", "README.md", "CHANGES.md", "pyproject.toml", "hatch_build.py", "noxfile.py",
    "ctxloop/__init__.py", "ctxloop/py.typed",
    "tests/conftest.py", "tests/programs.py", "tests/golden/programs.jsonl",
    "docs/rules.md", "examples/notebook.py", "scripts/regen_golden.py",
]  # fmt: skip
# Tracked files the sdist leaves out on purpose.
SDIST_LEFT_OUT = re.compile(r"^(\.ci/|\.github/)")


def _check_dists(session: nox.Session, sdist: str, wheel: str) -> None:
    """twine check --strict and check-wheel-contents, plus what each archive must and must not hold."""
    session.run("twine", "check", "--strict", sdist, wheel)
    session.run("check-wheel-contents", wheel)
    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0] + "/"
        in_sdist = {name[len(prefix) :] for name in archive.getnames() if name.startswith(prefix)}
    missing = [name for name in SDIST_REQUIRED if name not in in_sdist]
    tracked = _git_files()
    missing += sorted(name for name in tracked if not SDIST_LEFT_OUT.match(name) and name not in in_sdist)
    if missing:
        session.error(f"the sdist lacks {missing}")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = archive.namelist()
    stray = [n for n in in_wheel if not n.startswith(("ctxloop/", "ctxloop-")) or n.endswith(".c")]
    if stray or "ctxloop/py.typed" not in in_wheel:
        session.error(f"the wheel holds {stray} outside the package, or lacks ctxloop/py.typed")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in in_wheel if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        licenses = [n for n in in_wheel if ".dist-info/licenses/" in n]
    fields = text.split("\n\n", 1)[0].splitlines()
    metadata_version = tuple(int(x) for x in fields[0].partition(": ")[2].split("."))
    if not fields[0].startswith("Metadata-Version: ") or metadata_version < (2, 4):
        session.error(f"the wheel's METADATA is {fields[0]!r}: license fields (PEP 639) need 2.4 or later")
    for field in ("License-Expression: MIT", "License-File: LICENSE"):
        if field not in fields:
            session.error(f"the wheel's METADATA lacks {field!r}")
    if not licenses:
        session.error("the wheel has no .dist-info/licenses/")
    session.log(f"{os.path.basename(sdist)}: {len(in_sdist)} files; {os.path.basename(wheel)}: {len(in_wheel)} files")


def _git_files() -> List[str]:
    """The files git tracks (none outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line for line in out.splitlines() if os.path.isfile(os.path.join(ROOT, line))]


def _check_set_up_commands(session: nox.Session) -> None:
    """README's "## Set up" has two commands; the test command is the one .ci/run runs."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        section = f.read().split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)\n```$", section, re.MULTILINE | re.DOTALL)
    if len(commands) != 2 or "python -m ctxloop" not in commands[0]:
        session.error(f"README's Set up must hold two commands, the first running python -m ctxloop: {commands}")
    ci = os.path.join(ROOT, ".ci", "run")
    if os.path.exists(ci):
        with open(ci, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        if lines[-1] != commands[1]:
            session.error(f".ci/run ends with {lines[-1]!r}, README's test command is {commands[1]!r}")


@nox.session(python="3.12")
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel and check them: twine check --strict, check-wheel-contents, contents."""
    _check_set_up_commands(session)
    session.install(*_group("dist"))
    sdist, wheel = _build(session)
    assert wheel is not None
    _check_dists(session, sdist, wheel)


@nox.session(python="3.12", default=False)
def release(session: nox.Session) -> None:
    """The release checklist, without uploading: version, changelog entry, tag, build, checks.

    python -m nox -s release               # fails while CHANGES.md says "unreleased"
    python -m nox -s release -- --draft    # the same checks, the date not yet required
    """
    draft = "--draft" in session.posargs
    with open(os.path.join(ROOT, "ctxloop", "__init__.py"), encoding="utf-8") as f:
        match = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.MULTILINE)
    if not match:
        session.error("ctxloop/__init__.py has no __version__ line")
    version = match.group(1)
    tag = f"v{version}"
    with open(os.path.join(ROOT, "CHANGES.md"), encoding="utf-8") as f:
        headings = [line for line in f if line.startswith("## ")]
    entry = next((h.strip() for h in headings if h.split()[1] == version), None)
    if entry is None:
        session.error(f"CHANGES.md has no '## {version}' entry")
    if headings[0].split()[1] != version:
        session.error(f"the first entry of CHANGES.md is {headings[0].strip()!r}, not {version}")
    dated = re.fullmatch(rf"## {re.escape(version)} \(\d{{4}}-\d{{2}}-\d{{2}}\)", entry)
    if not dated:
        message = f"CHANGES.md: {entry!r} needs the release date: '## {version} (YYYY-MM-DD)'"
        if not draft:
            session.error(message)
        session.warn(message)
    tags = subprocess.run(
        ["git", "tag", "--list", tag], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if tag in tags:
        session.error(f"the tag {tag} exists already: bump __version__ in ctxloop/__init__.py")
    session.install(*_group("dist"))
    sdist, wheel = _build(session)
    assert wheel is not None
    _check_dists(session, sdist, wheel)
    built = os.path.basename(wheel).split("-")[1]
    if built != version:
        session.error(f"the wheel says version {built}, ctxloop/__init__.py says {version}")
    session.log(f"version {version}, changelog entry {entry!r}, tag {tag}")
    session.log(f"built and checked: {sdist} and {wheel}")
    session.log("next, not done here (CONTRIBUTING.md, Releasing):")
    session.log(f"  git tag -s {tag} -m 'ctxloop {version}' && git push origin {tag}")
    session.log("  the platform wheels with cibuildwheel, into wheelhouse/")
    session.log(f"  python -m twine upload {sdist} {wheel} wheelhouse/*")


def _file_uri(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().as_uri()
