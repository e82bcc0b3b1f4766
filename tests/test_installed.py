"""Which ctxloop the suite tests: with CTXLOOP_TEST_INSTALLED=1 (as the nox sessions set it), the installed one.

The nox sessions install a built wheel (or the sdist) and run these tests from
the unpacked sdist with its ctxloop/ removed; these tests fail if the source
tree was imported instead, here or in a subprocess started the way the other
tests start theirs (PYTHONPATH set to the tree, working directory the tree).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Set

import pytest

import ctxloop

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.environ.get("CTXLOOP_TEST_INSTALLED") != "1",
    reason="checks an installed ctxloop: set CTXLOOP_TEST_INSTALLED=1 (the nox sessions do) to run it",
)


def _installed_dirs() -> Set[Path]:
    paths = sysconfig.get_paths()
    return {Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()}


def test_the_package_comes_from_site_packages() -> None:
    package = Path(ctxloop.__file__).resolve().parent
    assert package.parent in _installed_dirs(), package
    assert ROOT not in package.parents, f"{package} is in the tree under test ({ROOT})"


def test_the_distribution_installed_is_the_one_imported() -> None:
    dist = metadata.distribution("ctxloop")
    assert dist.version == ctxloop.__version__
    assert Path(str(dist.locate_file("ctxloop/__init__.py"))).resolve() == Path(ctxloop.__file__).resolve()


def test_a_subprocess_with_the_tree_on_its_path_imports_the_same_package() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", "import ctxloop; print(ctxloop.__file__)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(out.stdout.strip()).resolve() == Path(ctxloop.__file__).resolve()
