"""pytest plugin for ctxloop (entry point ``pytest11``): inert unless asked.

``pytest --ctxloop=asyncio,uvloop`` (or the ini option ``ctxloop = asyncio
uvloop``) runs every pytest-asyncio test, and every anyio test on the asyncio
backend, once per listed loop, each on a ctxloop loop
(``ctxloop.loop_factory(name)``), with ids like ``[ctxloop-uvloop]``. Without
the option and the ini value, the plugin only registers them.

Loops the project chose itself are kept, each made a ctxloop loop
(``ctxloop.loop_factory(<the project's factory>)``), and the listed names are
not used for those tests:

* pytest-asyncio 1.4+: the factories the project's own
  ``pytest_asyncio_loop_factories`` hook returns keep their names, so the test
  ids and ``pytest.mark.asyncio(loop_factories=[...])`` selections stay the
  project's; for the tests no implementation of the project's applies to (a
  conftest.py elsewhere, or none), the listed loops, with ``ctxloop-`` ids. An
  implementation that answers None stays the error pytest-asyncio reports.
* a project's own ``event_loop_policy`` fixture (deprecated from
  pytest-asyncio 1.4 on): the loops of the policy it returns are made ctxloop
  loops (before 1.4: ``ctxloop.EventLoopPolicy(<the project's policy>)``; from
  1.4 on, with no hook answer, one loop factory built on that policy, so one
  run with no id).
* anyio: a ``loop_factory`` (or ``use_uvloop=True``) in the ``anyio_backend``
  options is wrapped, the other options kept.

Those last two, where the loop names are ctxloop's parameter, run once, under
the first listed loop's id, and are skipped, with a reason, under the others.

How the loops reach each framework depends on its version (decided once, below):

* pytest-asyncio 1.4+: a wrapper of its ``pytest_asyncio_loop_factories`` hook,
  which sees what the project's implementations answer (so
  ``pytest.mark.asyncio(loop_factories=["ctxloop-uvloop"])`` picks one of the
  listed loops).
* pytest-asyncio 1.0-1.3: the ``event_loop_policy`` fixture, parametrized with a
  ``ctxloop.EventLoopPolicy`` per loop.
* pytest-asyncio before 1.0 (0.24 on Python 3.8): the same, and async fixtures
  run in a context whose changes the test then sees, as pytest-asyncio 1.x does.
* On Python 3.8-3.10 with pytest-asyncio 1.x, its runner is ``ctxloop.Runner``:
  the ``backports.asyncio.runner`` one it uses there hands a fixture's context to
  the task by patching ``asyncio.tasks.Task``, which neither uvloop nor a task
  factory sees, so a contextvar set in an async fixture was lost.
* anyio: its ``anyio_backend`` value ``"asyncio"`` becomes
  ``("asyncio", {..., "loop_factory": ctxloop.loop_factory(name)})``.

A loop that is not installed (``uvloop`` on PyPy) or an unknown name is a
``pytest.UsageError``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.metadata
import inspect
import sys
import types
from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Tuple

import pytest

from ._loop import LOOP_NAMES, NAMED_LOOPS, enable, import_uvloop, loop_factory
from ._runner import Runner

__all__ = ["pytest_addoption", "pytest_configure"]

LoopFactory = Callable[[], Any]

_ID_PREFIX = "ctxloop-"
_MISSING = object()
# The private fixtures that parametrize anyio's ``anyio_backend``, and a
# project's own ``event_loop_policy`` (pytest-asyncio before 1.4), per loop.
_ANYIO_LOOP = "_ctxloop_anyio_loop"
_POLICY_LOOP = "_ctxloop_policy_loop"


class _ProjectLoops:
    """Turns a loop factory the project chose into a ctxloop loop factory built on it.

    The same project factory always gives the same ctxloop factory: pytest
    caches a parametrized fixture by its value, so a loop of module scope is
    shared by the module's tests only if each test gets the same factory. It
    carries the project factory's name, module and docstring, and
    ``__wrapped__`` is the project's factory: code that recognises a loop
    factory by those (a test that expects uvloop's bugs, say) still does.
    """

    def __init__(self) -> None:
        self._wrapped: Dict[int, Tuple[LoopFactory, LoopFactory]] = {}

    def wrap(self, factory: Any) -> Any:
        if not callable(factory):
            return factory  # the framework reports what it does not understand
        known = self._wrapped.get(id(factory))
        if known is None or known[0] is not factory:
            make = loop_factory(factory)

            def wrapped() -> Any:
                return make()

            functools.update_wrapper(wrapped, factory, updated=())
            known = (factory, wrapped)
            self._wrapped[id(factory)] = known  # keeps the project's factory alive, so its id stays its own
        return known[1]


def _distribution_version(name: str) -> Tuple[int, ...]:
    """(major, minor) of an installed distribution; () when it is absent."""
    try:
        text = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ()
    parts: List[int] = []
    for part in text.split(".")[:2]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


_PYTEST_ASYNCIO = _distribution_version("pytest-asyncio")
# How loops reach pytest-asyncio; see the module docstring.
if _PYTEST_ASYNCIO >= (1, 4):
    _ASYNCIO_ROUTE = "loop-factories-hook"
elif _PYTEST_ASYNCIO >= (1, 0):
    _ASYNCIO_ROUTE = "event-loop-policy"
else:
    _ASYNCIO_ROUTE = "event-loop-policy+fixture-context"
# 3.11+ has asyncio.Runner, which honours run(context=) on any loop.
_REPLACE_RUNNER = sys.version_info < (3, 11) and _PYTEST_ASYNCIO >= (1, 0)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--ctxloop`` and the ini option ``ctxloop``."""
    group = parser.getgroup("ctxloop")
    group.addoption(
        "--ctxloop",
        action="store",
        default=None,
        metavar="LOOPS",
        help="run every pytest-asyncio test and every anyio test on the asyncio backend once per listed "
        "loop, each a ctxloop loop (comma-separated: asyncio,uvloop). Overrides the ini option; "
        "--ctxloop= turns it off.",
    )
    parser.addini("ctxloop", "loops to run async tests on, each a ctxloop loop (e.g. asyncio uvloop)", type="args")


def _requested_loops(config: pytest.Config) -> Tuple[str, List[str]]:
    """The loop names asked for, and where they came from (for error messages)."""
    option: Optional[str] = config.getoption("ctxloop")
    if option is not None:
        source, chunks = f"--ctxloop={option}", [option]
    else:
        chunks = list(config.getini("ctxloop") or [])
        source = f"ini option ctxloop = {' '.join(chunks)}"
    names: List[str] = []
    for chunk in chunks:
        for name in chunk.replace(",", " ").split():
            if name not in names:
                names.append(name)
    return source, names


def _factories(source: str, names: List[str]) -> Dict[str, LoopFactory]:
    """``{"ctxloop-NAME": ctxloop.loop_factory(NAME)}``, or a usage error."""
    factories: Dict[str, LoopFactory] = {}
    for name in names:
        try:
            factories[_ID_PREFIX + name] = loop_factory(name)
        except ModuleNotFoundError as exc:
            where = NAMED_LOOPS[name][2]
            raise pytest.UsageError(
                f"{source}: loop {name!r} needs the {exc.name} package, which is not installed for this "
                f"Python ({sys.executable}); it installs on {where}: pip install 'ctxloop[{name}]', "
                f"or leave {name!r} out"
            ) from None
        except ValueError:
            raise pytest.UsageError(
                f"{source}: unknown loop {name!r}; expected a comma-separated list of: {', '.join(LOOP_NAMES)}"
            ) from None
    return factories


def pytest_configure(config: pytest.Config) -> None:
    """Activate the plugin when ``--ctxloop`` or the ini option ``ctxloop`` names loops."""
    source, names = _requested_loops(config)
    if not names:
        return
    factories = _factories(source, names)
    project_loops = _ProjectLoops()
    plugins: List[object] = []
    if config.pluginmanager.has_plugin("asyncio"):
        if _ASYNCIO_ROUTE == "loop-factories-hook":
            plugins.append(_LoopFactoriesHook(factories, project_loops))
        else:
            plugins.append(_PolicyParametrization(names, _ASYNCIO_ROUTE.endswith("+fixture-context")))
        if _REPLACE_RUNNER:
            plugins.append(_RunnerReplacement())
    if config.pluginmanager.has_plugin("anyio"):
        plugins.append(_AnyioBackends(names, factories, project_loops))
    if plugins:
        plugins.append(_loop_name_fixtures(names[0]))
    if not plugins:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"{source}: neither pytest-asyncio nor anyio's pytest plugin is active, so no test runs on a "
                "ctxloop loop"
            ),
            stacklevel=2,
        )
    plugins.append(_Header(source, list(factories)))
    for plugin in plugins:
        label = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__name__
        config.pluginmanager.register(plugin, f"ctxloop{label}")


class _Header:
    """Names the loops in pytest's header, so a log says what ran."""

    def __init__(self, source: str, ids: List[str]) -> None:
        self._line = f"ctxloop: {', '.join(ids)} (from {source}; pytest-asyncio route: {_ASYNCIO_ROUTE})"

    def pytest_report_header(self) -> List[str]:
        return [self._line]


class _LoopFactoriesHook:
    """pytest-asyncio 1.4+: a wrapper of its own hook, around the project's implementations.

    pytest-asyncio takes the first answer that is not None. The project's
    answer (a mapping of ids to loop factories) comes back with each factory
    made a ctxloop loop factory built on it, under the project's own id. With
    no implementation of the project's, the listed loops, unless the test has
    the project's own (deprecated) ``event_loop_policy`` fixture: then one
    ctxloop loop factory built on the loops of the policy in force, which
    pytest-asyncio sets from that fixture while it makes the loop. Project
    implementations that all answer None get None: pytest-asyncio's error.
    """

    def __init__(self, factories: Dict[str, LoopFactory], project_loops: _ProjectLoops) -> None:
        self._factories = factories
        self._project_loops = project_loops
        self._on_project_policy = {next(iter(factories)): _loop_of_the_policy_in_force}

    @pytest.hookimpl(wrapper=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Generator[None, Optional[Mapping[str, LoopFactory]], Optional[Mapping[str, LoopFactory]]]:
        chosen = yield
        if chosen is None:
            hook: Any = item.ihook.pytest_asyncio_loop_factories  # the implementations pytest-asyncio asked
            if any(impl.plugin is not self for impl in hook.get_hookimpls()):
                return None  # the project's hooks all answered None: pytest-asyncio reports it
            fixtureinfo: Any = getattr(item, "_fixtureinfo", None)
            policies = fixtureinfo.name2fixturedefs.get("event_loop_policy") if fixtureinfo else None
            if policies and not _defined_by_pytest_asyncio(policies[-1].func):
                return self._on_project_policy
            return self._factories
        if not isinstance(chosen, Mapping):
            return chosen  # pytest-asyncio reports what it does not understand
        return {name: self._project_loops.wrap(factory) for name, factory in chosen.items()}


def _loop_of_the_policy_in_force() -> Any:
    """A ctxloop loop built on a new loop of the event loop policy in force."""
    from ._policy import current_policy  # no deprecation warning on 3.14+

    return enable(current_policy().new_event_loop())


def _is_pytest_asyncio_test(metafunc: pytest.Metafunc) -> bool:
    """Whether pytest-asyncio will run this test (a coroutine, marked or in auto mode)."""
    if "anyio_backend" in metafunc.fixturenames:
        return False  # anyio's test: _AnyioBackends handles it
    function: Any = metafunc.function
    hypothesis = getattr(function, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", function)
    if not inspect.iscoroutinefunction(getattr(inner, "__func__", inner)):
        return False
    if metafunc.definition.get_closest_marker("asyncio") is not None:
        return True
    mode = metafunc.config.getoption("asyncio_mode", None) or metafunc.config.getini("asyncio_mode")
    return bool(mode == "auto")


def _loop_scope(metafunc: pytest.Metafunc) -> str:
    """The scope of the loop pytest-asyncio runs this test in (the parameter must be as wide)."""
    marker = metafunc.definition.get_closest_marker("asyncio")
    scope = marker and (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope"))
    if not scope:
        try:
            scope = metafunc.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # pytest-asyncio before 0.25 has no such option
            scope = None
    return str(scope or "function")


class _PolicyParametrization:
    """pytest-asyncio before 1.4: one ``ctxloop.EventLoopPolicy`` per loop, as ``event_loop_policy``.

    With *fixture_context* (pytest-asyncio before 1.0, which runs each async
    fixture as a task in a throwaway copy of the context), an async fixture
    runs in a context of its own, whose changes are then applied to the
    current context (and undone when the fixture is finalized), so that the
    test, a task copying the current context, sees them: pytest-asyncio 1.x's
    behaviour.
    """

    def __init__(self, names: List[str], fixture_context: bool) -> None:
        from ._policy import EventLoopPolicy  # policies only on this route (never on 3.14)

        self._fixture_context = fixture_context
        # The context the next top-level task of a pytest-asyncio loop runs in.
        self._armed: Optional[contextvars.Context] = None
        plugin = self

        class _Policy(EventLoopPolicy):  # type: ignore[misc, valid-type]
            def new_event_loop(self) -> Any:
                loop = super().new_event_loop()
                if plugin._fixture_context:
                    loop.set_task_factory(plugin._task_factory)
                return loop

        self._names = names
        self._ids = [_ID_PREFIX + name for name in names]
        self._policy_class = _Policy
        self._policies = [_Policy(name) for name in names]
        # The project's policy -> a ctxloop policy on it, made once (see _ProjectLoops).
        self._wrapped: Dict[int, Tuple[Any, Any]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if not _is_pytest_asyncio_test(metafunc):
            return
        fixturedefs = metafunc._arg2fixturedefs.get("event_loop_policy")
        if fixturedefs and not _defined_by_pytest_asyncio(fixturedefs[-1].func):
            # The project's own event_loop_policy fixture chooses the loop.
            _parametrize_by_loop(metafunc, fixturedefs[-1], _POLICY_LOOP, self._names)
            return
        metafunc.parametrize(
            "event_loop_policy",
            self._policies,
            ids=self._ids,
            scope=_loop_scope(metafunc),  # type: ignore[arg-type]
        )

    def _wrap_policy(self, policy: Any, name: str) -> Any:
        _run_once(self._names, name, "the event_loop_policy fixture chooses the loop (a ctxloop loop is built on it)")
        known = self._wrapped.get(id(policy))
        if known is None or known[0] is not policy:
            known = self._wrapped[id(policy)] = (policy, self._policy_class(policy))
        return known[1]

    def _task_factory(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        from ._factory import task_factory

        context = self._armed
        # Only the task pytest-asyncio creates to run the fixture: the loop is
        # not running yet, and the context is used once.
        if context is not None and kwargs.get("context") is None and not loop.is_running():
            self._armed = None
            kwargs["context"] = context
        return task_factory(loop, coro, **kwargs)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        if fixturedef.argname == "event_loop_policy" and _POLICY_LOOP in fixturedef.argnames:
            with _transformed(fixturedef, request, _POLICY_LOOP, self._wrap_policy):
                return (yield)
        if not (self._fixture_context and _synchronized_by_pytest_asyncio(fixturedef.func)):
            return (yield)
        context = contextvars.copy_context()
        undo: List[Callable[[], None]] = []

        def arm() -> None:
            self._armed = context

        def disarm_and_undo() -> None:
            self._armed = None
            while undo:
                undo.pop()()

        # Finalizers run last-in first-out: arm() before pytest-asyncio's own
        # teardown task (an async generator's second half), undo after it.
        fixturedef.addfinalizer(disarm_and_undo)
        self._armed = context
        try:
            result = yield
        finally:
            self._armed = None
        undo.extend(_apply_changes(context))
        fixturedef.addfinalizer(arm)
        return result


def _defined_by_pytest_asyncio(func: Any) -> bool:
    """Whether the fixture function *func* is pytest-asyncio's own (not a project's override)."""
    return str(getattr(inspect.unwrap(func), "__module__", "")).startswith("pytest_asyncio")


def _synchronized_by_pytest_asyncio(func: Any) -> bool:
    """Whether *func* is pytest-asyncio's synchronous wrapper of an async fixture."""
    inner = inspect.unwrap(func)
    return inner is not func and (inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner))


def _apply_changes(context: contextvars.Context) -> List[Callable[[], None]]:
    """Set in the current context every variable *context* changed; return the undo steps."""
    undo: List[Callable[[], None]] = []
    for var, value in context.items():
        if var.get(_MISSING) is value:
            continue
        undo.append(functools.partial(var.reset, var.set(value)))
    return undo


class _RunnerReplacement:
    """Python 3.8-3.10, pytest-asyncio 1.x: its runner becomes ``ctxloop.Runner`` for the session.

    ``Runner.run(coro, context=ctx)`` must run the fixture in ``ctx``; the
    ``backports.asyncio.runner`` Runner does it by patching ``asyncio.tasks.Task``
    and ``contextvars.copy_context`` while it creates the task, which uvloop and
    any task factory (a ctxloop loop's included) never see.
    """

    def __init__(self) -> None:
        module: Any = importlib.import_module("pytest_asyncio.plugin")
        self._module = module
        self._saved = module.Runner
        module.Runner = Runner

    def pytest_unconfigure(self) -> None:
        if self._module.Runner is Runner:
            self._module.Runner = self._saved


def _loop_name_fixtures(default: str) -> types.ModuleType:
    """A plugin holding the private fixtures that carry the loop names into a project's own fixture."""

    def loop_name(request: pytest.FixtureRequest) -> str:
        # Unparametrized only for an item built after collection (anyio does that).
        return str(getattr(request, "param", default))

    holder = types.ModuleType(f"{__name__}._loop_names")
    for name in (_ANYIO_LOOP, _POLICY_LOOP):
        setattr(holder, name, pytest.fixture(scope="session", name=name)(loop_name))
    return holder


def _parametrize_by_loop(metafunc: pytest.Metafunc, fixturedef: Any, private: str, names: List[str]) -> None:
    """Make *fixturedef* (a fixture of the test's) depend on *private*, parametrized with the loop names."""
    if private not in fixturedef.argnames:
        fixturedef.argnames += (private,)  # argnames is Final in pytest's typing, not at run time
    metafunc.fixturenames.append(private)
    metafunc.parametrize(
        private,
        names,
        ids=[_ID_PREFIX + name for name in names],
        indirect=True,
        scope=fixturedef.scope,
    )


@contextlib.contextmanager
def _transformed(
    fixturedef: Any, request: pytest.FixtureRequest, private: str, transform: Callable[[Any, str], Any]
) -> Generator[None, None, None]:
    """While set up, *fixturedef* gives ``transform(value, loop name)`` instead of its value."""
    from _pytest.fixtures import resolve_fixture_function

    target: Any = resolve_fixture_function(fixturedef, request)
    original = fixturedef.func  # func is Final in pytest's typing; pytest-asyncio and anyio swap it too

    if inspect.isgeneratorfunction(target):

        def transformed(**kwargs: Any) -> Any:
            name = kwargs.pop(private)
            values = target(**kwargs)
            yield transform(next(values), name)
            yield from values

    else:

        def transformed(**kwargs: Any) -> Any:
            name = kwargs.pop(private)
            return transform(target(**kwargs), name)

    fixturedef.func = transformed
    try:
        yield
    finally:
        fixturedef.func = original


def _run_once(names: List[str], name: str, why: str) -> None:
    """Skip the run for *name* unless it is the first listed loop's."""
    if name != names[0]:
        pytest.skip(f"ctxloop: {why}; it runs once, as [{_ID_PREFIX}{names[0]}]")


class _AnyioBackends:
    """anyio: each test on the asyncio backend runs once per loop, its ``anyio_backend`` given the loop.

    The ``anyio_backend`` fixture (anyio's, or the project's override) comes to
    depend on a private fixture parametrized with the loop names, so that it is
    rebuilt for each loop; its value ``"asyncio"`` or ``("asyncio", options)``
    becomes ``("asyncio", {**options, "loop_factory": <ctxloop loop factory>})``.
    Options that choose the loop already (``loop_factory``, ``use_uvloop``)
    get a ctxloop loop factory built on that loop instead; such a test, and one
    on another backend (trio, which has no asyncio loop), runs under the first
    loop's id and is skipped, with a reason, under the others.
    """

    def __init__(self, names: List[str], factories: Dict[str, LoopFactory], project_loops: _ProjectLoops) -> None:
        self._names = names
        self._factories = factories
        self._project_loops = project_loops

    # After the fixtures' own parametrization: ids read [asyncio-ctxloop-uvloop].
    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "anyio_backend" not in metafunc.fixturenames:
            return
        fixturedefs = metafunc._arg2fixturedefs.get("anyio_backend")
        if not fixturedefs:
            return  # no anyio_backend fixture at all (anyio's plugin is not active)
        _parametrize_by_loop(metafunc, fixturedefs[-1], _ANYIO_LOOP, self._names)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        if fixturedef.argname != "anyio_backend" or _ANYIO_LOOP not in fixturedef.argnames:
            return (yield)
        with _transformed(fixturedef, request, _ANYIO_LOOP, self._with_loop):
            return (yield)

    def _with_loop(self, backend: Any, name: str) -> Any:
        options: Dict[str, Any]
        if isinstance(backend, str):
            backend_name, options = backend, {}
        elif isinstance(backend, tuple) and len(backend) == 2 and isinstance(backend[1], dict):
            backend_name, options = backend
        else:
            return backend  # anyio reports what it does not understand
        if backend_name != "asyncio":
            _run_once(self._names, name, f"anyio backend {backend_name!r} has no asyncio loop")
            return backend
        chosen = options.get("loop_factory")
        if chosen is None and options.get("use_uvloop") and sys.platform != "win32":
            chosen = import_uvloop().new_event_loop  # what anyio picks
        if chosen is None:
            return ("asyncio", {**options, "loop_factory": self._factories[_ID_PREFIX + name]})
        _run_once(self._names, name, "the anyio_backend options choose the loop (a ctxloop loop is built on it)")
        return ("asyncio", {**options, "loop_factory": self._project_loops.wrap(chosen)})
