"""ctxloop's pytest plugin (``--ctxloop``): each inner session runs in a subprocess (pytester).

A subprocess per inner session, because an active plugin changes
process-wide state for its session (pytest-asyncio's runner on 3.8-3.10, the
event loop policy), and a hang must be bounded: every inner run has a timeout
and the inner ini sets pytest-timeout's too.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
from conftest import LOOPS  # noqa: E402

ALL_LOOPS = ",".join(LOOPS)
# The module and the name of the class of each loop's ctxloop loops.
LOOP_MODULE = {"asyncio": "asyncio.unix_events", "uvloop": "uvloop", "rloop": "rloop.loop"}
LOOP_CLASS = {"asyncio": "_UnixSelectorEventLoop", "uvloop": "Loop", "rloop": "RLoop"}
INNER_TIMEOUT = 90  # seconds for one inner session (PyPy starts slowly)


def _version(name: str) -> Tuple[int, ...]:
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in importlib.metadata.version(name).split(".")[:2])  # type: ignore[union-attr]


PYTEST_ASYNCIO = _version("pytest-asyncio")
HAS_TRIO = importlib.util.find_spec("trio") is not None

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = -p no:cacheprovider
timeout = 60
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses import this source tree's ctxloop (and so its plugin)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini(INI)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, timeout=INNER_TIMEOUT)


def ids(result: pytest.RunResult) -> List[str]:
    """The test ids a ``-v`` run reports with an outcome, in order."""
    return re.findall(r"^[^\s:]+\.py::(\S+) (?:PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", result.stdout.str(), re.M)


# -- inert unless asked -------------------------------------------------------

LOOP_PROBE = """
import asyncio
import pytest


from ctxloop._loop import is_ctxloop_loop


def probe(request):
    loop = asyncio.get_running_loop()
    with open(request.config.rootpath / "probes.txt", "a") as probes:
        print(request.node.name, type(loop).__module__, is_ctxloop_loop(loop), file=probes)


@pytest.mark.asyncio
async def test_asyncio_loop(request):
    probe(request)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_anyio_loop(request, anyio_backend):
    probe(request)
"""


def probes(pytester: pytest.Pytester) -> List[Tuple[str, str, str]]:
    """(test name, loop module, has a task factory) for each LOOP_PROBE test of the last run; then forget them."""
    path = pytester.path / "probes.txt"
    lines = path.read_text().splitlines()
    path.unlink()
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


@pytest.mark.timeout(3 * INNER_TIMEOUT)
def test_inert_without_the_option(inner: pytest.Pytester) -> None:
    # pytest-asyncio 1.2 (Python 3.9) leaves an event loop unclosed when an anyio
    # test follows, with or without ctxloop: its ResourceWarning is not ours to judge.
    inner.makeini(
        INI.replace(
            "filterwarnings = error",
            "filterwarnings =\n    error\n    ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning",
        )
    )
    inner.makepyfile(test_probe=LOOP_PROBE)
    # The entry point is installed: --ctxloop exists, and -p no:ctxloop removes it.
    assert "--ctxloop=LOOPS" in run(inner, "--help").stdout.str()
    runs = []
    for args in (["-p", "no:ctxloop"], [], ["--ctxloop="]):
        result = run(inner, "-v", *args)
        result.assert_outcomes(passed=2)
        assert "ctxloop:" not in result.stdout.str()  # no header line: not active
        runs.append((ids(result), probes(inner)))
    without, present, turned_off = runs
    assert present == without == turned_off
    assert present[0] == ["test_asyncio_loop", "test_anyio_loop"]
    # The loops are the frameworks' own, not ctxloop loops.
    assert [is_ours for _, _, is_ours in present[1]] == ["False", "False"]


# -- one run per loop, each a ctxloop loop --------------------------------------


def expected_probes(names: List[str]) -> List[Tuple[str, str, str]]:
    return [(name, LOOP_MODULE[name.rsplit("ctxloop-", 1)[1].rstrip("]")], "True") for name in names]


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_each_async_test_runs_once_per_loop(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_probe=LOOP_PROBE)
    result = run(inner, "-v", f"--ctxloop={ALL_LOOPS}")
    result.assert_outcomes(passed=2 * len(LOOPS))
    expected = [f"test_asyncio_loop[ctxloop-{name}]" for name in LOOPS]
    expected += [f"test_anyio_loop[ctxloop-{name}]" for name in LOOPS]
    assert ids(result) == expected
    assert probes(inner) == expected_probes(expected)
    result.stdout.fnmatch_lines([f"ctxloop: {', '.join('ctxloop-' + name for name in LOOPS)} (from --ctxloop=*"])


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_ini_option_and_its_override(inner: pytest.Pytester) -> None:
    inner.makeini(INI + f"ctxloop = {' '.join(LOOPS)}\n")
    inner.makepyfile(test_probe=LOOP_PROBE)
    from_ini = run(inner, "-v")
    from_ini.assert_outcomes(passed=2 * len(LOOPS))
    expected = [f"test_asyncio_loop[ctxloop-{name}]" for name in LOOPS]
    expected += [f"test_anyio_loop[ctxloop-{name}]" for name in LOOPS]
    assert ids(from_ini) == expected
    assert probes(inner) == expected_probes(expected)
    overridden = run(inner, "-v", "--ctxloop=asyncio")
    # pytest-asyncio 1.4+ leaves the id out when there is one loop factory.
    asyncio_id = "test_asyncio_loop" if PYTEST_ASYNCIO >= (1, 4) else "test_asyncio_loop[ctxloop-asyncio]"
    assert ids(overridden) == [asyncio_id, "test_anyio_loop[ctxloop-asyncio]"]
    anyio_probe = expected_probes(["test_anyio_loop[ctxloop-asyncio]"])
    assert probes(inner) == [(asyncio_id, "asyncio.unix_events", "True"), *anyio_probe]


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_unknown_loop_is_a_usage_error(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_probe=LOOP_PROBE)
    result = run(inner, "--ctxloop=asyncio,nosuchloop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--ctxloop=asyncio,nosuchloop: unknown loop 'nosuchloop'; expected a comma-separated list of: asyncio, uv*"]
    )
    inner.makeini(INI + "ctxloop = asyncio bogus\n")
    result = run(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option ctxloop = asyncio bogus: unknown loop 'bogus'*"])


@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_missing_uvloop_is_a_usage_error_naming_it(inner: pytest.Pytester) -> None:
    if "uvloop" in LOOPS:
        # Hide the installed uvloop from the inner session (its directory is first on sys.path).
        inner.makepyfile(uvloop="raise ImportError('uvloop hidden by the test')")
    inner.makepyfile(test_probe=LOOP_PROBE)
    result = run(inner, "--ctxloop=asyncio,uvloop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    hint = "it installs on CPython 3.8+, not on Windows: pip install 'ctxloop[uvloop]', or leave 'uvloop' out"
    message = (
        "ERROR: --ctxloop=asyncio,uvloop: loop 'uvloop' needs the uvloop package, which is not installed for "
        f"this Python ({sys.executable}); {hint}"
    )
    assert message in result.stderr.lines


# -- the fixture contextvar bug (3.8-3.10) --------------------------------------

FIXTURE_CONTEXT = """
import contextvars
import pytest
import pytest_asyncio

var = contextvars.ContextVar("var", default="unset")
gen_var = contextvars.ContextVar("gen_var", default="unset")


@pytest_asyncio.fixture
async def coro_fixture():
    var.set("set by the fixture")


@pytest_asyncio.fixture
async def gen_fixture():
    token = gen_var.set("set by the generator")
    yield
    assert gen_var.get() == "set by the generator"
    gen_var.reset(token)  # a token only works in the context that made it


@pytest.mark.asyncio
async def test_sees_fixture_values(coro_fixture, gen_fixture):
    assert (var.get(), gen_var.get()) == ("set by the fixture", "set by the generator")


def test_values_undone_after_the_fixtures():
    assert (var.get(), gen_var.get()) == ("unset", "unset")
"""

# Plain uvloop, chosen the way each pytest-asyncio offers (no ctxloop involved).
PLAIN_UVLOOP_CONFTEST = {
    "hook": """
import uvloop

def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}
""",
    "policy": """
import pytest
import uvloop

@pytest.fixture(scope="session")
def event_loop_policy():
    return uvloop.EventLoopPolicy()
""",
}


def has_fixture_bug(loop: str) -> bool:
    """Where plain pytest-asyncio loses a contextvar set in an async fixture (measured).

    pytest-asyncio before 1.0 runs a fixture as a task in a throwaway copy of the
    context, on any loop. 1.x on 3.8-3.10 hands the fixture's context to its task
    by patching asyncio.tasks.Task, which uvloop never sees.
    """
    return PYTEST_ASYNCIO < (1, 0) or (sys.version_info < (3, 11) and loop == "uvloop")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_fixture_contextvar_lost_without_ctxloop(inner: pytest.Pytester, loop: str) -> None:
    if not has_fixture_bug(loop):
        pytest.skip(
            f"pytest-asyncio {'.'.join(map(str, PYTEST_ASYNCIO))} on Python {sys.version_info[0]}."
            f"{sys.version_info[1]} with {loop} already shows a fixture's contextvar in the test: no bug to show"
        )
    if loop == "uvloop":
        inner.makeconftest(PLAIN_UVLOOP_CONFTEST["hook" if PYTEST_ASYNCIO >= (1, 4) else "policy"])
    inner.makepyfile(test_fixture_context=FIXTURE_CONTEXT)
    result = run(inner, "-v")
    result.stdout.fnmatch_lines(["*test_sees_fixture_values* FAILED*"])
    assert "AssertionError" in result.stdout.str()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_fixture_contextvar_seen_with_ctxloop(inner: pytest.Pytester, loop: str) -> None:
    inner.makepyfile(test_fixture_context=FIXTURE_CONTEXT)
    result = run(inner, "-v", f"--ctxloop={loop}")
    result.assert_outcomes(passed=2)
    assert "test_values_undone_after_the_fixtures PASSED" in result.stdout.str()


@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_loop_scopes_and_parametrized_tests(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_scopes="""
import asyncio
import contextvars
import pytest
from ctxloop._loop import is_ctxloop_loop

var = contextvars.ContextVar("var", default="unset")
loops = {}


@pytest.mark.asyncio(loop_scope="module")
async def test_first(request):
    loops[request.node.callspec.id] = asyncio.get_running_loop()


@pytest.mark.asyncio(loop_scope="module")
async def test_second_shares_the_module_loop(request):
    assert asyncio.get_running_loop() is loops[request.node.callspec.id]


@pytest.mark.asyncio
@pytest.mark.parametrize("n", [1, 2])
async def test_task_context(n):
    ctx = contextvars.copy_context()

    async def child():
        var.set(n)

    await asyncio.get_running_loop().create_task(child(), context=ctx)
    assert (ctx[var], var.get()) == (n, "unset")


class TestInAClass:
    @pytest.mark.asyncio
    async def test_method(self):
        assert is_ctxloop_loop(asyncio.get_running_loop())
"""
    )
    result = run(inner, "-v", f"--ctxloop={ALL_LOOPS}")
    result.assert_outcomes(passed=5 * len(LOOPS))
    assert set(ids(result)) == {
        test.format(name)
        for name in LOOPS
        for test in (
            "test_first[ctxloop-{}]",
            "test_second_shares_the_module_loop[ctxloop-{}]",
            "test_task_context[ctxloop-{}-1]",
            "test_task_context[ctxloop-{}-2]",
            "TestInAClass::test_method[ctxloop-{}]",
        )
    }


@pytest.mark.skipif(
    PYTEST_ASYNCIO < (1, 4), reason="mark.asyncio(loop_factories=...) exists from pytest-asyncio 1.4 on"
)
@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_mark_asyncio_picks_a_ctxloop_loop(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_probe=LOOP_PROBE.replace(
            "@pytest.mark.asyncio\n", "@pytest.mark.asyncio(loop_factories=['ctxloop-asyncio'])\n"
        )
    )
    result = run(inner, "-v", f"--ctxloop={ALL_LOOPS}")
    result.assert_outcomes(passed=1 + len(LOOPS))
    # One factory picked by the mark: pytest-asyncio leaves the id out.
    assert ids(result)[0] == "test_asyncio_loop"
    assert probes(inner)[0] == ("test_asyncio_loop", "asyncio.unix_events", "True")


# -- anyio ------------------------------------------------------------------------


@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_anyio_options_kept_and_other_backends_run_once(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_anyio="""
import asyncio
import pytest

from ctxloop._loop import is_ctxloop_loop

BACKENDS = [("asyncio", {"debug": True})] + (["trio"] if {has_trio} else [])


@pytest.fixture(params=BACKENDS, ids=lambda backend: backend if isinstance(backend, str) else backend[0])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_backend(anyio_backend, anyio_backend_options):
    if anyio_backend == "trio":
        return
    loop = asyncio.get_running_loop()
    assert anyio_backend_options["debug"] is True  # the project's own option is kept
    assert loop.get_debug() or type(loop).__name__ == "RLoop"  # rloop 0.5 has no debug mode
    assert anyio_backend_options["loop_factory"].__name__.startswith("loop_factory(")
    assert is_ctxloop_loop(loop)
""".replace("{has_trio}", str(HAS_TRIO))
    )
    result = run(inner, "-v", "-rs", f"--ctxloop={ALL_LOOPS}")
    passed = len(LOOPS) + (1 if HAS_TRIO else 0)
    skipped = len(LOOPS) - 1 if HAS_TRIO else 0
    result.assert_outcomes(passed=passed, skipped=skipped)
    expected = {f"test_backend[asyncio-ctxloop-{name}]" for name in LOOPS}
    if HAS_TRIO:
        expected |= {f"test_backend[trio-ctxloop-{name}]" for name in LOOPS}
        if skipped:
            result.stdout.fnmatch_lines(
                ["*anyio backend 'trio' has no asyncio loop; it runs once, as [[]ctxloop-asyncio[]]*"]
            )
    assert set(ids(result)) == expected


# -- loops the project chose: wrapped, never replaced --------------------------------

# The project's own loop factories, recording every loop they make.
PROJECT_LOOPS = """
import asyncio

from ctxloop._loop import is_ctxloop_loop

made = []


class ProjectLoop(asyncio.SelectorEventLoop):
    pass


def project_loop():
    made.append(ProjectLoop())
    return made[-1]


def other_project_loop():
    made.append(asyncio.SelectorEventLoop())
    return made[-1]


async def probe(request):
    loop = asyncio.get_running_loop()
    with open(request.config.rootpath / "probes.txt", "a") as probes:
        print(request.node.name, type(loop).__name__, loop in made, is_ctxloop_loop(loop), file=probes)
"""

PROJECT_HOOK_CONFTEST = """
from project_loops import other_project_loop, project_loop


def pytest_asyncio_loop_factories(config, item):
    return {"project": project_loop, "other": other_project_loop}
"""

PROJECT_HOOK_TESTS = """
import asyncio

import pytest

from project_loops import probe

module_loops = {}


@pytest.mark.asyncio
async def test_each_project_loop(request):
    await probe(request)


@pytest.mark.asyncio(loop_factories=["other"])
async def test_marked_other(request):
    await probe(request)


@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop(request):
    module_loops[request.node.callspec.id] = asyncio.get_running_loop()


@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop_shared(request):
    assert asyncio.get_running_loop() is module_loops[request.node.callspec.id]

"""

CHOOSES_NOTHING_TESTS = """
import pytest

from project_loops import probe


@pytest.mark.asyncio
async def test_project_chooses_nothing(request):
    await probe(request)
"""


@pytest.mark.skipif(
    PYTEST_ASYNCIO < (1, 4), reason="the pytest_asyncio_loop_factories hook exists from pytest-asyncio 1.4 on"
)
@pytest.mark.timeout(2 * INNER_TIMEOUT)
@pytest.mark.parametrize("hook_in", ["rootdir", "subdirectory"])
def test_project_loop_factories_are_wrapped_keeping_their_ids(inner: pytest.Pytester, hook_in: str) -> None:
    # The rootdir's conftest.py is loaded before the plugins are configured, a
    # subdirectory's during collection: pluggy asks the one registered last
    # first. In a subdirectory, the hook chooses for the tests there only
    # (pytest-asyncio asks the implementations that apply to the test's path).
    inner.makepyfile(project_loops=PROJECT_LOOPS)
    if hook_in == "rootdir":
        inner.makeconftest(PROJECT_HOOK_CONFTEST)
        inner.makepyfile(test_project=PROJECT_HOOK_TESTS)
        chooses_nothing = []
    else:
        project = inner.mkpydir("project")
        (project / "conftest.py").write_text(PROJECT_HOOK_CONFTEST)
        (project / "test_project.py").write_text(PROJECT_HOOK_TESTS)
        inner.makepyfile(test_chooses_nothing=CHOOSES_NOTHING_TESTS)
        chooses_nothing = ["test_project_chooses_nothing"]
    project_ids = [
        "test_each_project_loop[project]",
        "test_each_project_loop[other]",
        "test_marked_other",  # one factory picked by the mark: pytest-asyncio leaves the id out
        "test_module_loop[project]",
        "test_module_loop_shared[project]",
        "test_module_loop[other]",
        "test_module_loop_shared[other]",
    ]
    project_probes = [
        ("test_each_project_loop[project]", "ProjectLoop", "True"),
        ("test_each_project_loop[other]", "_UnixSelectorEventLoop", "True"),
        ("test_marked_other", "_UnixSelectorEventLoop", "True"),
    ]
    # Without --ctxloop: the project's loops, as they are.
    plain = run(inner, "-v")
    plain.assert_outcomes(passed=len(project_ids) + len(chooses_nothing))
    assert sorted(ids(plain)) == sorted(project_ids + chooses_nothing)
    assert sorted(probes(inner)) == sorted(
        [(*probe, "False") for probe in project_probes]
        + [(name, "_UnixSelectorEventLoop", "False", "False") for name in chooses_nothing]
    )
    # With it: the same loops and ids, each made a ctxloop loop; the listed
    # loops where the project chooses none.
    result = run(inner, "-v", f"--ctxloop={ALL_LOOPS}")
    listed = [f"{name}[ctxloop-{loop}]" for name in chooses_nothing for loop in LOOPS]
    result.assert_outcomes(passed=len(project_ids) + len(listed))
    assert sorted(ids(result)) == sorted(project_ids + listed)
    assert sorted(probes(inner)) == sorted(
        [(*probe, "True") for probe in project_probes]
        + [(name, LOOP_CLASS[name.split("ctxloop-")[1][:-1]], "False", "True") for name in listed]
    )


@pytest.mark.skipif(
    PYTEST_ASYNCIO < (1, 4), reason="the pytest_asyncio_loop_factories hook exists from pytest-asyncio 1.4 on"
)
@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_project_hook_answering_none_is_still_an_error(inner: pytest.Pytester) -> None:
    inner.makeconftest("def pytest_asyncio_loop_factories(config, item):\n    return None\n")
    inner.makepyfile(test_probe=LOOP_PROBE)
    for args in ([], [f"--ctxloop={ALL_LOOPS}"]):
        result = run(inner, *args)
        assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
        result.stdout.fnmatch_lines(
            ["E   pytest.UsageError: pytest_asyncio_loop_factories must return a non-empty mapping of factory names*"]
        )


# Overriding event_loop_policy is deprecated from pytest-asyncio 1.4 on, and
# policies themselves from Python 3.14 on.
DEPRECATION_IGNORED = (
    "filterwarnings =\n    error\n    ignore::pytest.PytestDeprecationWarning\n    ignore::DeprecationWarning"
)

PROJECT_POLICY_CONFTEST = """
import asyncio

import pytest

from project_loops import project_loop


class ProjectPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        return project_loop()


@pytest.fixture(scope="session")
def event_loop_policy():
    return ProjectPolicy()
"""

PROJECT_POLICY_TESTS = """
import pytest

from project_loops import probe


@pytest.mark.asyncio
async def test_project_policy(request):
    await probe(request)
"""


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_project_event_loop_policy_is_wrapped(inner: pytest.Pytester) -> None:
    if PYTEST_ASYNCIO >= (1, 4) or sys.version_info >= (3, 14):
        inner.makeini(INI.replace("filterwarnings = error", DEPRECATION_IGNORED))
    inner.makepyfile(project_loops=PROJECT_LOOPS, test_policy=PROJECT_POLICY_TESTS)
    inner.makeconftest(PROJECT_POLICY_CONFTEST)
    plain = run(inner, "-v")
    plain.assert_outcomes(passed=1)
    assert probes(inner) == [("test_project_policy", "ProjectLoop", "True", "False")]
    # The project's policy runs once, its loops made ctxloop loops.
    result = run(inner, "-v", "-rs", f"--ctxloop={ALL_LOOPS}")
    if PYTEST_ASYNCIO >= (1, 4):  # one loop factory: pytest-asyncio leaves the id out
        result.assert_outcomes(passed=1)
        assert probes(inner) == [("test_project_policy", "ProjectLoop", "True", "True")]
        return
    # Before 1.4: under the first listed loop's id, skipped under the others.
    result.assert_outcomes(passed=1, skipped=len(LOOPS) - 1)
    assert probes(inner) == [("test_project_policy[ctxloop-asyncio]", "ProjectLoop", "True", "True")]
    if len(LOOPS) > 1:
        result.stdout.fnmatch_lines(
            [
                "SKIPPED * ctxloop: the event_loop_policy fixture chooses the loop (a ctxloop loop is built on it); "
                "it runs once, as [[]ctxloop-asyncio[]]"
            ]
        )


ANYIO_PROJECT_TESTS = """
import pytest

from project_loops import project_loop, probe

BACKENDS = [
    pytest.param(("asyncio", {"loop_factory": project_loop, "debug": True}), id="project"),
    pytest.param(("asyncio", {"loop_factory": None}), id="chooses-nothing"),
] + ([pytest.param(("asyncio", {"use_uvloop": True}), id="use-uvloop")] if {has_uvloop} else [])


@pytest.fixture(params=BACKENDS)
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_backend(request, anyio_backend, anyio_backend_options):
    await probe(request)
    if "debug" in anyio_backend_options:
        import asyncio

        assert asyncio.get_running_loop().get_debug()  # the project's other options are kept
        # The ctxloop factory reads as the project's (for code that recognises it).
        factory = anyio_backend_options["loop_factory"]
        assert (factory.__name__, factory.__module__) == ("project_loop", "project_loops")
        assert getattr(factory, "__wrapped__", factory) is project_loop
"""


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_anyio_loop_factory_option_is_wrapped(inner: pytest.Pytester) -> None:
    has_uvloop = "uvloop" in LOOPS
    inner.makepyfile(
        project_loops=PROJECT_LOOPS,
        test_anyio_project=ANYIO_PROJECT_TESTS.replace("{has_uvloop}", str(has_uvloop)),
    )
    plain = run(inner, "-v")
    plain.assert_outcomes(passed=2 + has_uvloop)
    plain_probes = [
        ("test_backend[project]", "ProjectLoop", "True", "False"),
        ("test_backend[chooses-nothing]", "_UnixSelectorEventLoop", "False", "False"),
    ] + ([("test_backend[use-uvloop]", "Loop", "False", "False")] if has_uvloop else [])
    assert probes(inner) == plain_probes
    # A loop the options choose runs once, under the first listed loop's id.
    result = run(inner, "-v", "-rs", f"--ctxloop={ALL_LOOPS}")
    result.assert_outcomes(passed=1 + len(LOOPS) + has_uvloop, skipped=(len(LOOPS) - 1) * (1 + has_uvloop))
    expected = [("test_backend[project-ctxloop-asyncio]", "ProjectLoop", "True", "True")]
    expected += [(f"test_backend[chooses-nothing-ctxloop-{name}]", LOOP_CLASS[name], "False", "True") for name in LOOPS]
    if has_uvloop:
        expected.append(("test_backend[use-uvloop-ctxloop-asyncio]", "Loop", "False", "True"))
        result.stdout.fnmatch_lines(
            [
                "SKIPPED * ctxloop: the anyio_backend options choose the loop (a ctxloop loop is built on it); "
                "it runs once, as [[]ctxloop-asyncio[]]"
            ]
        )
    assert sorted(probes(inner)) == sorted(expected)


# -- the example and the README ---------------------------------------------------

DEMO = ROOT / "examples" / "pytest_demo"


@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_demo_passes_on_every_loop() -> None:
    command = [sys.executable, "-m", "pytest", str(DEMO), f"--ctxloop={ALL_LOOPS}", "-v"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=INNER_TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{2 * len(LOOPS)} passed" in done.stdout
    for name in LOOPS:
        for test in ("test_fixture_value_reaches_the_test", "test_task_runs_in_the_given_context"):
            assert f"demo_contextvars.py::{test}[ctxloop-{name}] PASSED" in done.stdout


@pytest.mark.timeout(INNER_TIMEOUT + 30)
def test_demo_is_not_collected_by_the_project() -> None:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "examples"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=INNER_TIMEOUT, check=False)
    assert "pytest_demo" not in done.stdout + done.stderr
    assert (ROOT / "pyproject.toml").read_text().count('testpaths = ["tests"]') == 1


def readme_section() -> str:
    """README's "### A test suite": a test module, the command with its output, the pyproject.toml setting."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### A test suite\n")
    end = re.compile(r"^#{2,3} ", re.M).search(text, start + 1)
    assert end is not None
    return text[start : end.start()]


def pytest_page_section() -> str:
    """docs/pytest.md up to "## What the plugin does": the same three blocks, for readers of the docs."""
    text = (ROOT / "docs" / "pytest.md").read_text(encoding="utf-8")
    assert text.startswith("# pytest: every async test on every loop\n")
    return text[: text.index("\n## What the plugin does\n")]


def test_the_pytest_page_shows_the_readme_snippet() -> None:
    # The page's copy is what test_readme_snippet_runs runs, block for block.
    for language in ("python", "sh", "toml"):
        page, readme = fenced(pytest_page_section(), language), fenced(readme_section(), language)
        assert len(readme) == 1 and page == readme, f"docs/pytest.md and README differ in their ```{language} block"


def fenced(section: str, language: str) -> List[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.M | re.S)


@pytest.mark.timeout(2 * INNER_TIMEOUT)
def test_readme_snippet_runs(inner: pytest.Pytester) -> None:
    section = readme_section()
    (module,) = fenced(section, "python")
    (command,) = fenced(section, "sh")
    filename = re.search(r"^# (test_\w+\.py)$", module, re.M).group(1)  # type: ignore[union-attr]
    (inner.path / filename).write_text(module, encoding="utf-8")
    (config,) = fenced(section, "toml")
    assert config == '[tool.pytest.ini_options]\nctxloop = "asyncio uvloop"\n'
    argv = shlex.split(command.splitlines()[0])
    assert argv[:3] == ["python", "-m", "pytest"] and "--ctxloop=asyncio,uvloop" in argv
    result = run(inner, *argv[3:])  # the command, verbatim
    readme_loops = [name for name in ("asyncio", "uvloop") if name in LOOPS]
    if "uvloop" not in LOOPS:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*loop 'uvloop' needs the uvloop package*"])
        result = run(inner, *[arg.replace("asyncio,uvloop", "asyncio") for arg in argv[3:]])
    tests = re.findall(r"^async def (test_\w+)", module, re.M)
    assert len(tests) >= 3
    result.assert_outcomes(passed=len(tests) * len(readme_loops))
    # The output the README shows is the output it gets.
    shown = [line[2:] for line in command.splitlines()[1:] if line.startswith("# ")]
    assert shown
    for line in shown:
        if "uvloop" in LOOPS or "uvloop" not in line:
            assert line in result.stdout.str()
    # The ini route: the README's pyproject.toml, plus the inner options, instead of tox.ini.
    (inner.path / "tox.ini").unlink()
    options = "".join(f'{key.strip()} = "{value.strip()}"\n' for key, value in re.findall(r"^(\w+) =(.*)$", INI, re.M))
    (inner.path / "pyproject.toml").write_text(config + options, encoding="utf-8")
    from_ini = run(inner, "-v")
    if "uvloop" not in LOOPS:
        assert from_ini.ret == pytest.ExitCode.USAGE_ERROR
        from_ini.stderr.fnmatch_lines(["*ini option ctxloop = asyncio uvloop: loop 'uvloop' needs the uvloop package*"])
    else:
        from_ini.assert_outcomes(passed=len(tests) * len(readme_loops))
        assert set(ids(from_ini)) == set(ids(result))
