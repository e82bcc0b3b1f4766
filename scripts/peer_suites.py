"""Run anyio's and pytest-asyncio's own released test suites on plain loops and on ctxloop loops.

    python3 scripts/peer_suites.py                        # 3.10 and 3.12, both suites
    python3 scripts/peer_suites.py --python 3.12 --suite anyio --workdir /tmp/peer

For each Python, in a temporary directory (or ``--workdir``, kept and reused):

1. a virtual environment per suite, with the newest release of the project that
   supports that Python, downloaded as an sdist (``pip download --no-binary
   :all: --no-deps``) and unpacked: its tests are the released ones;
2. installed from that sdist with the extras and the ``test`` dependency group
   its ``pyproject.toml`` lists, plus pytest-timeout and this source tree's
   ctxloop (with uvloop);
3. its suite run once per loop setting, each with ``-q -p no:cacheprovider``,
   a per-test timeout and a bound on the whole run, results read from JUnit XML:

   * anyio: plain (its own ``anyio_backend`` parameters: asyncio, asyncio+uvloop,
     asyncio+eager on 3.12+, trio), then ``--ctxloop=asyncio``: ctxloop's
     plugin gives the asyncio parameter a ctxloop loop and wraps the
     ``loop_factory`` of the uvloop and eager ones (trio runs as it is);
   * pytest-asyncio: plain (asyncio's loop), then ``--ctxloop=asyncio``. Most
     of its tests run pytest sessions of their own (pytester), which an option
     on the command line does not reach: the ``-everywhere`` runs give every
     session the option, through a plugin named in ``PYTEST_PLUGINS``
     (``--ctxloop=asyncio`` and ``--ctxloop=uvloop``, each compared with a
     plain plugin answering ``pytest_asyncio_loop_factories`` with
     ``asyncio.new_event_loop`` or ``uvloop.new_event_loop``: any plugin
     answering that hook changes what a project without one gets).

It prints the counts of each run and, for each ctxloop run, the tests that
pass on the plain loop but fail (or error) on the ctxloop loop; then it runs
the test functions of those tests again, with ctxloop and without, and names
the ones that diverge again (a test failing only in the whole run is failed by
something else in it: a ResourceWarning for a socket another test left open,
raised by the garbage collector during this one, say). Exit status: 0 when
no divergence is reproduced, 1 otherwise, 2 when a run could not be made.

Needs Python 3.11+ to run (it reads pyproject.toml with tomllib), ``uv`` or
``pip``, and PyPI. The interpreters under test are found as ``pythonX.Y`` on
PATH or under pyenv.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import tomllib

ROOT = Path(__file__).resolve().parent.parent

# Plugins the runs load through PYTEST_PLUGINS, which reaches every pytest
# session of the run, pytester's inner ones (in-process or not) included.
HELPERS = {
    "peer_plain_loop.py": '''\
"""pytest-asyncio's loops from a plugin answering the loop-factory hook, without ctxloop.

The loop is PEER_PLAIN_LOOP's (asyncio or uvloop), for the tests no hook of the project's applies to.
"""
import asyncio
import os

import pytest

NAME = os.environ["PEER_PLAIN_LOOP"]


def _factory():
    if NAME == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


@pytest.hookimpl(wrapper=True)
def pytest_asyncio_loop_factories(config, item):
    chosen = yield
    impls = item.ihook.pytest_asyncio_loop_factories.get_hookimpls()
    if chosen is None and all(impl.function is pytest_asyncio_loop_factories for impl in impls):
        return {NAME: _factory()}
    return chosen
''',
    "peer_every_session.py": '''\
"""Adds the options in PEER_ARGS to every pytest session."""
import os
import shlex

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    args[:] = [*args, *shlex.split(os.environ.get("PEER_ARGS", ""))]
''',
}


def plain_plugin(loop: str) -> Dict[str, str]:
    """The environment giving every session of a run a plain plugin answering the loop-factory hook with *loop*."""
    return {"PYTEST_PLUGINS": "peer_plain_loop", "PEER_PLAIN_LOOP": loop}


def everywhere(args: str) -> Dict[str, str]:
    """The environment giving every session of a run (inner ones included) these pytest options."""
    return {"PYTEST_PLUGINS": "peer_every_session", "PEER_ARGS": args}


@dataclass
class Run:
    """One run of a suite: its name, the extra pytest arguments, and the plain run it is compared with."""

    name: str
    args: List[str]
    reference: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)


@dataclass
class Suite:
    distribution: str
    extras: List[str]
    groups: List[str]
    args: List[str]
    runs: List[Run]


SUITES = {
    "anyio": Suite(
        distribution="anyio",
        extras=["trio"],
        groups=["test"],
        args=["-m", "not network"],
        runs=[Run("plain", []), Run("ctxloop", ["--ctxloop=asyncio"], reference="plain")],
    ),
    "pytest-asyncio": Suite(
        distribution="pytest-asyncio",
        extras=["testing"],
        groups=["test"],
        args=[],
        # Most of its tests run pytest sessions of their own (pytester): the
        # -everywhere runs give those the loops too, the others only the outer session.
        runs=[
            Run("plain", []),
            Run("ctxloop-asyncio", ["--ctxloop=asyncio"], reference="plain"),
            # A plugin answering pytest_asyncio_loop_factories changes what a
            # project without such a hook gets (its loop_factories marks then
            # select from the plugin's loops): the -everywhere runs compare
            # with a plain plugin that answers it too.
            Run("plain-asyncio-everywhere", [], env=plain_plugin("asyncio")),
            Run(
                "ctxloop-asyncio-everywhere",
                [],
                reference="plain-asyncio-everywhere",
                env=everywhere("--ctxloop=asyncio"),
            ),
            Run("plain-uvloop-everywhere", [], env=plain_plugin("uvloop")),
            Run(
                "ctxloop-uvloop-everywhere",
                [],
                reference="plain-uvloop-everywhere",
                env=everywhere("--ctxloop=uvloop"),
            ),
        ],
    ),
}

FAILED = ("failed", "error")


def find_python(version: str) -> str:
    """The interpreter for "3.12" (pyenv's newest 3.12.*, else python3.12 on PATH), or a path as given."""
    if os.sep in version:
        return version
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python"))
    candidates = [path for path in candidates if re.search(rf"/{re.escape(version)}\.\d+/bin/python$", path)]
    if candidates:
        return max(candidates, key=lambda path: int(path.split(os.sep)[-3].split(".")[-1]))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(f"python{version}", path=directory)
        if found and "shims" not in Path(directory).parts:  # pyenv's shims answer only for the global version
            return found
    raise SystemExit(f"peer_suites: no python{version} under {root}/versions or on PATH")


def command(argv: List[str], *, cwd: Optional[Path] = None, quiet: bool = True) -> None:
    print("  $", shlex.join(argv), flush=True)
    done = subprocess.run(argv, cwd=cwd, capture_output=quiet, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"command failed ({done.returncode}): {shlex.join(argv)}\n{done.stdout}{done.stderr}")


class Venv:
    """A virtual environment, made and filled with uv when it is installed, else with venv and pip."""

    def __init__(self, path: Path, python: str) -> None:
        self.path = path
        self.python = str(path / "bin" / "python")
        self.uv = shutil.which("uv")
        if not Path(self.python).exists():
            if self.uv:
                command([self.uv, "venv", "-q", "--seed", "-p", python, str(path)])
            else:
                command([python, "-m", "venv", str(path)])

    def install(self, requirements: List[str], *, reinstall: Optional[str] = None) -> None:
        if self.uv:
            extra = ["--reinstall-package", reinstall] if reinstall else []
            command([self.uv, "pip", "install", "-q", "--python", self.python, *extra, *requirements])
        else:
            extra = ["--force-reinstall", "--no-deps"] if reinstall else []
            if extra:  # the dependencies first, then the package itself afresh
                command([self.python, "-m", "pip", "install", "-q", *requirements])
            command([self.python, "-m", "pip", "install", "-q", *extra, *requirements])

    def download_sdist(self, distribution: str, pin: Optional[str], into: Path) -> Path:
        """The unpacked sdist of the newest *distribution* this Python supports (or of *pin*)."""
        into.mkdir(parents=True, exist_ok=True)
        spec = f"{distribution}=={pin}" if pin else distribution
        before = set(into.glob("*.tar.gz"))
        argv = [self.python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", spec, "-d", str(into)]
        command(argv)
        prefix = distribution.replace("-", "_").lower()
        archives = [path for path in into.glob("*.tar.gz") if path.name.lower().replace("-", "_").startswith(prefix)]
        new = (set(archives) - before) or set(archives)
        archive = max(new, key=lambda path: path.stat().st_mtime)
        target = into / archive.name[: -len(".tar.gz")]
        if not target.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(into, filter="data")
        return target


def requirements_of(source: Path, suite: Suite) -> List[str]:
    """The sdist with the suite's extras, and every requirement of its dependency groups (include-group followed)."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    groups = pyproject.get("dependency-groups", {})
    optional = pyproject.get("project", {}).get("optional-dependencies", {})
    extras = [extra for extra in suite.extras if extra in optional]
    requirements = [f"{source}[{','.join(extras)}]" if extras else str(source)]

    def expand(name: str) -> None:
        for entry in groups.get(name, []):
            if isinstance(entry, dict):
                expand(entry["include-group"])
            elif " ".join(entry.split()) not in requirements:
                requirements.append(" ".join(entry.split()))

    for group in suite.groups:
        expand(group)
    return requirements


def version_of(source: Path) -> str:
    for line in (source / "PKG-INFO").read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def normalized(test_id: str) -> str:
    """A test's id without the parameter ctxloop's plugin adds (``ctxloop-asyncio``), so runs compare."""
    test_id = re.sub(r"-ctxloop-(?:asyncio|uvloop)(?=\])", "", test_id)
    test_id = re.sub(r"\[ctxloop-(?:asyncio|uvloop)\]$", "", test_id)
    return test_id


def outcomes(junit: Path) -> Dict[str, str]:
    """{test id: passed | failed | error | skipped} from pytest's JUnit XML (the worst outcome of a test)."""
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    result: Dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = normalized(f"{case.get('classname')}::{case.get('name')}")
        if case.find("error") is not None:
            outcome = "error"
        elif case.find("failure") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        if rank[outcome] >= rank[result.get(test_id, "passed")]:
            result[test_id] = outcome
    return result


def run_suite(  # noqa: PLR0917
    venv: Venv,
    source: Path,
    suite: Suite,
    run: Run,
    out: Path,
    helpers: Path,
    per_test: int,
    whole: int,
    reuse: bool = False,
) -> Tuple[Dict[str, str], float, str]:
    """Run the suite once; its outcomes, its duration, and pytest's last line."""
    junit = out / f"{run.name}.xml"
    log = out / f"{run.name}.log"
    argv = [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={per_test}"]
    argv += [f"--junitxml={junit}", *suite.args, *run.args]
    env = dict(os.environ, **run.env)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(helpers), env.get("PYTHONPATH")]))
    variables = " ".join(f"{name}={shlex.quote(value)}" for name, value in run.env.items())
    print(f"  $ (cd {source} && {variables + ' ' if variables else ''}{shlex.join(argv)})", flush=True)
    if reuse and junit.exists():
        print(f"    (reusing {junit})", flush=True)
        return outcomes(junit), 0.0, "reused"
    junit.unlink(missing_ok=True)
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(
            argv, cwd=source, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout=whole)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            print(f"    run stopped after {whole} s", flush=True)
    elapsed = time.monotonic() - started
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    if not junit.exists():
        raise RuntimeError(f"{run.name}: no JUnit report; see {log}: {last}")
    return outcomes(junit), elapsed, last


def node_of(source: Path, test_id: str) -> Optional[str]:
    """The pytest node id of a JUnit test id's function (``tests/test_x.py::TestClass::test_y``), all parameters."""
    location, _, name = test_id.partition("::")
    parts = location.split(".")
    for end in range(len(parts), 0, -1):
        module = Path(*parts[:end]).with_suffix(".py")
        if (source / module).is_file():
            return "::".join([str(module), *parts[end:], name.split("[", 1)[0]])
    return None


def recheck_runs(source: Path, suite: Suite, run: Run, reference: Run, diverging: List[str]) -> Dict[str, Run]:
    """The run and its reference once more, on the diverging tests' functions only (every parameter).

    A test that passes there in both was failed by something else in the whole
    run (a ResourceWarning for a socket another test left open, raised by the
    garbage collector during this one, say), not by ctxloop.
    """
    nodes = sorted({node for node in (node_of(source, test) for test in diverging) if node})
    return {
        "run": Run(f"{run.name}-again", [*run.args, *nodes], env=run.env),
        "reference": Run(f"{reference.name}-again-for-{run.name}", [*reference.args, *nodes], env=reference.env),
    }


def counts(results: Dict[str, str]) -> str:
    tally = {outcome: 0 for outcome in ("passed", "failed", "error", "skipped")}
    for outcome in results.values():
        tally[outcome] += 1
    return ", ".join(f"{number} {outcome}" for outcome, number in tally.items())


def check_suite(options: argparse.Namespace, workdir: Path, version: str, name: str) -> List[Dict[str, object]]:
    """Every run of one suite on one Python; one report entry per run."""
    suite = SUITES[name]
    python = find_python(version)
    print(f"== Python {version} ({python}), {name}", flush=True)
    venv = Venv(workdir / f"venv-{version}-{name}", python)
    pins = dict(pin.split("==", 1) for pin in options.pin)
    source = venv.download_sdist(suite.distribution, pins.get(suite.distribution), workdir / "sdists")
    venv.install([*requirements_of(source, suite), "pytest-timeout", f"{ROOT}[uvloop]"], reinstall="ctxloop")
    out = workdir / "results" / f"{version}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Dict[str, str]] = {}
    entries: List[Dict[str, object]] = []
    suite_runs = {run.name: run for run in suite.runs}
    for run in suite.runs:
        if options.run and run.name not in options.run:
            continue
        results[run.name], elapsed, last = run_suite(
            venv,
            source,
            suite,
            run,
            out,
            workdir / "helpers",
            options.timeout,
            options.run_timeout,
            run.name in options.reuse,
        )
        print(
            f"  {name} {version_of(source)} on {version}, {run.name}: {counts(results[run.name])} "
            f"({elapsed:.0f} s; pytest: {last.strip('= ')})",
            flush=True,
        )
        entry: Dict[str, object] = {
            "python": version,
            "suite": name,
            "version": version_of(source),
            "run": run.name,
            "pytest arguments": shlex.join(suite.args + run.args),
            "environment": run.env,
            "counts": counts(results[run.name]),
            "seconds": round(elapsed),
        }
        if run.reference in results:
            reference = results[run.reference]
            diverging = sorted(
                test
                for test, outcome in results[run.name].items()
                if outcome in FAILED and reference.get(test) == "passed"
            )
            missing = sorted(set(reference) - set(results[run.name]))
            print(f"  passes {run.reference}, fails {run.name}: {len(diverging)}", flush=True)
            for test in diverging:
                print(f"    {test}", flush=True)
            if missing:
                print(f"  in {run.reference} only (not run by {run.name}): {len(missing)}", flush=True)
            reproduced = diverging
            if diverging and not options.no_recheck:
                rerun = {
                    key: run_suite(
                        venv, source, suite, again, out, workdir / "helpers", options.timeout, options.run_timeout
                    )[0]
                    for key, again in recheck_runs(source, suite, run, suite_runs[run.reference], diverging).items()
                }
                reproduced = [
                    test
                    for test in diverging
                    if rerun["run"].get(test) in FAILED and rerun["reference"].get(test) == "passed"
                ]
                print(
                    f"  run again, their test functions only: {len(reproduced)} of {len(diverging)} reproduced"
                    + "".join(f"\n    {test}" for test in reproduced),
                    flush=True,
                )
            entry.update(reference=run.reference, diverging=diverging, reproduced=reproduced, missing=len(missing))
        entries.append(entry)
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--python", action="append", help="X.Y or a path; repeatable (default: 3.10 and 3.12)")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="repeatable (default: both)")
    parser.add_argument("--run", action="append", help="only these runs (e.g. plain, ctxloop-uvloop); repeatable")
    parser.add_argument("--pin", action="append", default=[], help="DIST==VERSION instead of the newest; repeatable")
    parser.add_argument("--workdir", type=Path, help="kept and reused (default: a temporary directory, removed)")
    parser.add_argument("--timeout", type=int, default=60, help="per test, seconds (default 60)")
    parser.add_argument("--run-timeout", type=int, default=1800, help="per suite run, seconds (default 1800)")
    parser.add_argument("--json", type=Path, help="write the counts and divergences here")
    parser.add_argument("--no-recheck", action="store_true", help="do not run the diverging tests again")
    parser.add_argument(
        "--reuse", action="append", default=[], help="read this run's results from --workdir if there; repeatable"
    )
    options = parser.parse_args()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="peer-suites-"))
    (workdir / "helpers").mkdir(parents=True, exist_ok=True)
    for filename, text in HELPERS.items():
        (workdir / "helpers" / filename).write_text(text)
    report: List[Dict[str, object]] = []
    status = 0
    try:
        for version in options.python or ["3.10", "3.12"]:
            for name in options.suite or sorted(SUITES):
                report += check_suite(options, workdir, version, name)
        status = 1 if any(entry.get("reproduced") for entry in report) else 0
    except RuntimeError as exc:
        print(f"peer_suites: {exc}", file=sys.stderr)
        status = 2
    finally:
        if options.json:
            options.json.write_text(json.dumps(report, indent=2) + "\n")
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"results and logs: {workdir / 'results'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
