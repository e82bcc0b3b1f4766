"""Run CPython's own asyncio tests with ctxloop substituted; report where ctxloop diverges.

The tests are never copied: they are loaded at run time from this interpreter's
own ``test.test_asyncio`` package (test_tasks, test_runners, test_futures,
test_base_events; test_taskgroups from 3.11, test_eager_task_factory from
3.12), and on 3.8-3.10 also from a CPython 3.12 installation's files
(``$PYENV_ROOT/versions/3.12.*/lib/python3.12/test/test_asyncio``, or the
directory in ``CTXLOOP_PY312_TESTS``): the contextvars tests of its
test_tasks and its test_runners, run against ctxloop's backport of
``context=``, ``Runner`` and ``run``; a test needing another 3.11+ API
(uncancel, TaskGroup, timeout) is skipped with the reason.

Each *mode* runs the selected tests in fresh subprocesses:

  native        the tests as they are: the reference
  task          the test classes' ``Task`` (asyncio's C Task) is ctxloop.Task
  task_factory  the tests' tasks come from ctxloop.task_factory
  policy        ctxloop.install(): every loop a policy makes is a ctxloop loop
                (a policy a test sets is wrapped too), and so are the tests' TestLoops
  factory       ctxloop's API: asyncio.new_event_loop/run/Runner/create_task as
                seen by the tests are ctxloop's, IsolatedAsyncioTestCase uses
                ctxloop.loop_factory(), the tests' TestLoops are ctxloop loops
  uvloop        uvloop's policy, no ctxloop: the reference of policy-uvloop
  policy-uvloop ctxloop.install("uvloop")

and each test's outcome is compared with its outcome in the reference mode.
test_tasks runs its task tests once per Task/Future pair; four of the eight
pairs run unless ``--full`` is given. A test running longer than ``--timeout``
seconds (20) is recorded as hung, with its stack, and the rest runs on.

Usage (on the Python to check; ctxloop is imported from this checkout, or with
``--installed`` the one installed for that Python, compiled accelerator and all)::

    python tests/cpython/run_suite.py                  # the five asyncio modes, every module
    python tests/cpython/run_suite.py --uvloop         # and the two uvloop modes
    python tests/cpython/run_suite.py --modes native,policy --modules test_tasks,cpython312.test_runners
    python tests/cpython/run_suite.py --jobs 2 --json report.json

It prints one row per mode: tests run; "pass both" (passed in the reference
mode and in this one); "fail both"; "skipped"; "only ctxloop" (failed in the
reference, passed here); DIVERGE (passed in the reference, failed or hung
here); "3.12 pass/FAIL" (on 3.8-3.10, 3.12's tests, which pass on native
3.12); the seconds taken. Then every divergence and failing 3.12 test,
grouped by cause with the first lines of the ctxloop failure; each
divergence is run once more in fresh processes, natively and with ctxloop,
and marked flaky if that does not reproduce it. Exit status 1 when a
divergence, a failing 3.12 test or an error of the runner is found; 0
otherwise, and 0 with a message on an interpreter without
``test.test_asyncio`` (PyPy).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import faulthandler
import glob
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types
import unittest
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# mode: (reference mode, what it substitutes)
MODES: Dict[str, Tuple[Optional[str], str]] = {
    "native": (None, "the tests as they are"),
    "task": ("native", "Task = ctxloop.Task"),
    "task_factory": ("native", "tasks from ctxloop.task_factory"),
    "policy": ("native", "ctxloop.install()"),
    "factory": ("native", "ctxloop.loop_factory()/run/Runner/create_task"),
    "uvloop": (None, "uvloop's policy, no ctxloop"),
    "policy-uvloop": ("uvloop", 'ctxloop.install("uvloop")'),
}
DEFAULT_MODES = ["native", "task", "task_factory", "policy", "factory"]
UVLOOP_MODES = ["uvloop", "policy-uvloop"]
LOOP_MODES = {"policy", "factory", "uvloop", "policy-uvloop"}
CTXLOOP_LOOP_MODES = {"policy", "factory", "policy-uvloop"}

# (module, first Python that ships it)
OWN_MODULES: List[Tuple[str, Tuple[int, int]]] = [
    ("test_tasks", (3, 8)),
    ("test_runners", (3, 8)),
    ("test_taskgroups", (3, 11)),
    ("test_eager_task_factory", (3, 12)),
    ("test_futures", (3, 8)),
    ("test_base_events", (3, 8)),
    # Connections (--connections; run in the native and factory modes only):
    # the transports, servers, streams, pipes and subprocesses of a ctxloop
    # loop (C1-C4) must pass what the base loop's pass (S10).
    ("test_events", (3, 8)),
    ("test_selector_events", (3, 8)),
    ("test_unix_events", (3, 8)),
    ("test_streams", (3, 8)),
    ("test_server", (3, 8)),
    ("test_sslproto", (3, 8)),
    ("test_buffered_proto", (3, 8)),
    ("test_sendfile", (3, 8)),
    ("test_subprocess", (3, 8)),
    ("test_sock_lowlevel", (3, 8)),
]
CONNECTION_MODULES = {
    "test_events", "test_selector_events", "test_unix_events", "test_streams", "test_server",
    "test_sslproto", "test_buffered_proto", "test_sendfile", "test_subprocess", "test_sock_lowlevel",
}  # fmt: skip
# Modules whose tests use a Task class attribute (the task modes run only these).
TASK_MODULES = {"test_tasks", "test_eager_task_factory"}
# 3.12's tests run on 3.8-3.10 against the backport (ids start with this prefix).
BACKPORT_PACKAGE = "cpython312"
BACKPORT_MODULES = ["test_tasks", "test_runners"]
BACKPORT = sys.version_info < (3, 11)
HAS_GENERIC_ALIAS = sys.version_info >= (3, 9)

# test_tasks runs its BaseTaskTests once per Task/Future implementation pair;
# without --full only these four run (C and Python, plain and subclassed).
TASK_CLASSES_KEPT = {
    "CTask_CFuture_Tests",
    "CTask_CFuture_SubclassTests",
    "CTask_PyFuture_Tests",
    "PyTask_PyFuture_Tests",
}
TASK_CLASSES_ALL = TASK_CLASSES_KEPT | {
    "CTaskSubclass_PyFuture_Tests",
    "PyTask_CFutureSubclass_Tests",
    "PyTask_CFuture_Tests",
    "PyTask_PyFuture_SubclassTests",
}

# A 3.12 test needing one of these (3.11+ APIs unrelated to contexts) is skipped on 3.8-3.10.
NEWER_APIS = [
    (re.compile(r"uncancel|\.cancelling\("), "Task.uncancel()/cancelling() (Python 3.11+)"),
    (re.compile(r"\bTaskGroup\b"), "asyncio.TaskGroup (Python 3.11+)"),
    (re.compile(r"asyncio\.timeout"), "asyncio.timeout() (Python 3.11+)"),
    (re.compile(r"\bexcept\s*\*|ExceptionGroup"), "exception groups (Python 3.11+)"),
    (re.compile(r"eager_start|eager_task_factory"), "eager tasks (Python 3.12+)"),
]
# 3.12's test_tasks: the tests about contextvars (context=, get_context(), ContextVar).
CONTEXT_TEST = re.compile(r"contextvars\.|context=|get_context\(")

PASS, FAIL, SKIP, HANG, CRASH = "pass", "fail", "skip", "hang", "crash"
BAD = {FAIL, HANG, CRASH}


# --------------------------------------------------------------------------
# Worker side: runs in a subprocess, one mode, and appends JSON lines to a file.
# --------------------------------------------------------------------------


class AsyncioView:
    """What a test module sees as ``asyncio``: asyncio, with a few names replaced.

    Reads of other names, and every assignment a test makes (``asyncio.current_task
    = ...``), go to the real module, so patches made by the tests still reach asyncio.
    """

    def __init__(self, real: types.ModuleType, overrides: Dict[str, Any]) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_overrides", dict(overrides))

    def __getattr__(self, name: str) -> Any:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        return getattr(object.__getattribute__(self, "_real"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            overrides[name] = value
        else:
            setattr(object.__getattribute__(self, "_real"), name, value)

    def __delattr__(self, name: str) -> None:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            del overrides[name]
        else:
            delattr(object.__getattribute__(self, "_real"), name)

    def __dir__(self) -> List[str]:
        return sorted(
            set(dir(object.__getattribute__(self, "_real"))) | set(object.__getattribute__(self, "_overrides"))
        )

    def __getattribute__(self, name: str) -> Any:
        if name in ("__getattr__", "__setattr__", "__delattr__", "__dir__", "__class__"):
            return object.__getattribute__(self, name)
        return type(self).__getattr__(self, name)


class Recorder(unittest.TestResult):
    """Records each test's outcome as a JSON line, flushed at once (a crash keeps what ran)."""

    def __init__(self, out: Any, timeout: float, hang_file: Any) -> None:
        super().__init__()
        self.buffer = True  # the test's output goes into its failure text
        self._out = out
        self._timeout = timeout
        self._hang_file = hang_file
        self._outcome: Optional[str] = None
        self._detail = ""
        self._started = 0.0
        self.last_id: Optional[str] = None

    def _write(self, record: Dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        self._write({"start": test.id()})
        self._outcome, self._detail = None, ""
        self._started = time.perf_counter()
        # A test still running after the timeout is a hang: dump the stacks
        # and exit; the parent records it and starts a worker for the rest.
        faulthandler.dump_traceback_later(self._timeout, exit=True, file=self._hang_file)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()
        self.last_id = test.id()
        if self._outcome is None:
            # No outcome reported: an exception unittest does not catch
            # (KeyboardInterrupt) is on its way out; the worker records it.
            self._outcome, self._detail = FAIL, "the test did not finish"
        outcome = self._outcome
        record = {"id": test.id(), "outcome": outcome, "detail": self._detail}
        record["seconds"] = round(time.perf_counter() - self._started, 3)
        self._write(record)

    def _fail(self, test: Any, err: Any) -> None:
        if self._outcome != FAIL:
            self._outcome, self._detail = FAIL, self._exc_info_to_string(err, test)
        if not isinstance(test, unittest.TestCase):
            # A class or module fixture failed: no startTest/stopTest for it.
            self._write({"start": test.id()})
            self._write({"id": test.id(), "outcome": FAIL, "detail": self._detail})
            self._outcome = None

    def addError(self, test: Any, err: Any) -> None:
        self._fail(test, err)

    def addFailure(self, test: Any, err: Any) -> None:
        self._fail(test, err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None and self._outcome != FAIL:
            self._outcome = FAIL
            self._detail = f"{subtest.id()}\n{self._exc_info_to_string(err, test)}"

    def addSuccess(self, test: Any) -> None:
        if self._outcome is None:
            self._outcome = PASS

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        if self._outcome is None:
            self._outcome = PASS

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._outcome, self._detail = FAIL, "unexpected success"

    def addSkip(self, test: Any, reason: str) -> None:
        if not isinstance(test, unittest.TestCase):  # a skipped class/module
            self._write({"start": test.id()})
            self._write({"id": test.id(), "outcome": SKIP, "detail": reason})
            return
        if self._outcome is None:
            self._outcome, self._detail = SKIP, reason


def _quiet_install(*args: Any) -> None:
    import ctxloop

    with warnings.catch_warnings():
        # From 3.14 asyncio deprecates policies; the tests themselves are not
        # what is being warned about.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctxloop.install(*args)


def _policy_slot() -> Any:
    import asyncio.events

    return asyncio.events._event_loop_policy  # type: ignore[attr-defined]


class Mode:
    """The substitutions of one mode, applied to modules and test classes in the worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ctxloop: Any = None
        if name not in ("native", "uvloop"):
            import ctxloop

            self.ctxloop = ctxloop
        self.base = "uvloop" if name.endswith("uvloop") else None
        self.setup_error: Optional[BaseException] = None

    # -- process-wide setup ------------------------------------------------

    def setup(self) -> None:
        from test.test_asyncio import utils as test_utils

        if self.name in CTXLOOP_LOOP_MODES:
            ctxloop = self.ctxloop
            make_test_loop = test_utils.TestCase.new_test_loop

            def new_test_loop(case: Any, gen: Any = None) -> Any:
                # The tests' TestLoop (virtual time), made a ctxloop loop in place.
                loop = make_test_loop(case, gen)
                return ctxloop.enable(loop)

            test_utils.TestCase.new_test_loop = new_test_loop
        if self.name == "factory" and sys.version_info >= (3, 11) and sys.version_info < (3, 13):
            # IsolatedAsyncioTestCase has no loop_factory hook before 3.13: its
            # asyncio.Runner is ctxloop's.
            import unittest.async_case

            unittest.async_case.asyncio = AsyncioView(  # type: ignore[attr-defined]
                unittest.async_case.asyncio,  # type: ignore[attr-defined]
                {"Runner": self.ctxloop.Runner},
            )

    def asyncio_overrides(self, backport: bool) -> Dict[str, Any]:
        """The names a test module's ``asyncio`` gets from ctxloop in this mode."""
        ctxloop = self.ctxloop
        overrides: Dict[str, Any] = {}
        if self.name == "factory":
            base = self.base

            def new_event_loop() -> Any:
                return ctxloop.new_event_loop(base)

            overrides.update(new_event_loop=new_event_loop, run=ctxloop.run, Runner=ctxloop.Runner)
            overrides["create_task"] = ctxloop.create_task
        elif backport and ctxloop is not None:
            # 3.12's tests on 3.8-3.10: asyncio has no Runner there, and its
            # run()/create_task() take no context=: ctxloop's are the backport.
            overrides.update(run=ctxloop.run, Runner=ctxloop.Runner, create_task=ctxloop.create_task)
        return overrides

    # -- per test ------------------------------------------------------------

    def before_test(self) -> None:
        if self.name == "uvloop":
            import uvloop

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import asyncio

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        elif self.name in ("policy", "policy-uvloop"):
            _quiet_install(self.base)

    def after_setup(self, test: unittest.TestCase) -> None:
        # A test that sets a policy of its own in setUp (test_runners' TestPolicy):
        # wrap it, as ctxloop.install(policy) would after the application's choice.
        if self.name in ("policy", "policy-uvloop"):
            policy = _policy_slot()
            if policy is not None and not isinstance(policy, self.ctxloop.EventLoopPolicy):
                _quiet_install(policy)
        # A loop the test built itself (test_base_events: BaseEventLoop()) is
        # made a ctxloop loop in place, as an application does with a loop a
        # framework hands it.
        import asyncio

        loop = getattr(test, "loop", None)
        if self.name in CTXLOOP_LOOP_MODES and isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
            self.ctxloop.enable(loop)

    def after_test(self) -> None:
        if self.name in ("policy", "policy-uvloop"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.ctxloop.uninstall()
        if self.name in ("uvloop", "policy", "policy-uvloop"):
            import asyncio

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                asyncio.set_event_loop_policy(None)

    # -- classes -------------------------------------------------------------

    def adapt_module(self, module: types.ModuleType, backport: bool) -> None:
        overrides = self.asyncio_overrides(backport)
        if overrides and isinstance(getattr(module, "asyncio", None), types.ModuleType):
            module.asyncio = AsyncioView(module.asyncio, overrides)  # type: ignore[attr-defined]

    def adapt_class(self, module: types.ModuleType, cls: type) -> Optional[type]:
        """The class to run in this mode (a run-time subclass), or None to leave it out."""
        if self.name == "task":
            return self._with_ctxloop_task(module, cls)
        if self.name == "task_factory":
            return self._with_task_factory(module, cls)
        if self.name == "factory" and issubclass(cls, unittest.IsolatedAsyncioTestCase):
            return self._with_loop_factory(cls)
        return cls

    def _native_task_classes(self, module: types.ModuleType) -> Tuple[Any, ...]:
        import asyncio

        return tuple(t for t in (asyncio.Task, getattr(module, "tasks", asyncio.tasks).__dict__.get("_CTask")) if t)

    def _with_ctxloop_task(self, module: types.ModuleType, cls: type) -> Optional[type]:
        task = getattr(cls, "Task", None)
        if not isinstance(task, type):
            return None
        native = self._native_task_classes(module)
        attrs: Dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if task in native:
            attrs["Task"] = self.ctxloop.Task
            return type(cls.__name__, (cls,), attrs)
        add_subclass_tests = getattr(module, "add_subclass_tests", None)
        if issubclass(task, native) and add_subclass_tests is not None:
            # A class made by test_tasks' add_subclass_tests (a Task subclass
            # counting calls): made again around ctxloop.Task.
            future = next(c for c in cls.Future.__mro__[1:] if c.__module__ != cls.__module__)
            own = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
            own.update(attrs, Task=self.ctxloop.Task, Future=future)
            return add_subclass_tests(type(cls.__name__, cls.__bases__, own))  # type: ignore[no-any-return]
        return None

    def _with_task_factory(self, module: types.ModuleType, cls: type) -> Optional[type]:
        if "new_task" not in dir(cls) or getattr(cls, "Task", None) not in self._native_task_classes(module):
            return None
        if not hasattr(cls, "new_future"):
            return None  # not a BaseTaskTests class
        new_task = _task_factory_method(self.ctxloop.task_factory)
        attrs = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "new_task": new_task}
        return type(cls.__name__, (cls,), attrs)

    def _with_loop_factory(self, cls: type) -> type:
        if sys.version_info < (3, 13):
            return cls  # no hook: unittest.async_case's Runner is ctxloop's (setup)
        own = getattr(cls, "loop_factory", None)
        factory = self.ctxloop.loop_factory(own if own is not None else self.base)
        attrs = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "loop_factory": staticmethod(factory)}
        return type(cls.__name__, (cls,), attrs)


def _task_factory_method(task_factory: Callable[..., Any]) -> Any:
    """BaseTaskTests.new_task(loop, coro, name="TestTask", ...), made by *task_factory*.

    A Python function like the test's own, so that a task's ``_source_traceback``
    (which test_task_source_traceback checks) differs only by ctxloop's frames.
    """

    def new_task(case: Any, loop: Any, coro: Any, name: Any = "TestTask", **kwargs: Any) -> Any:
        return task_factory(loop, coro, name=name, **kwargs)

    return new_task


def _wrap_setup(mode: Mode, test: unittest.TestCase) -> None:
    setup = test.setUp

    def setUp() -> None:
        if mode.setup_error is not None:
            # The mode's own setup for this test (ctxloop.install(), ...) failed:
            # the test fails with that error instead of running without ctxloop.
            error, mode.setup_error = mode.setup_error, None
            raise error
        setup()
        mode.after_setup(test)

    test.setUp = setUp  # type: ignore[method-assign]


def _test_classes(module: types.ModuleType) -> Iterator[type]:
    for value in list(vars(module).values()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == module.__name__:
            yield value


def _load_backport(name: str, path: str, view: Any) -> types.ModuleType:
    """Load a 3.12 test module from its file, on 3.8-3.10, with ``asyncio`` as *view*."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    module = types.ModuleType(f"{BACKPORT_PACKAGE}.{name}")
    module.__file__ = path
    real_import = builtins.__import__
    generic_alias = types.SimpleNamespace(GenericAlias=type("GenericAlias", (), {}))

    def import_(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name == "asyncio" and not fromlist:
            return view
        if level == 0 and name == "types" and fromlist and "GenericAlias" in fromlist and not HAS_GENERIC_ALIAS:
            return generic_alias  # 3.8: only test_generic_alias uses it
        return real_import(name, globals, locals, fromlist, level)

    module.__builtins__ = dict(vars(builtins), __import__=import_)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    tree = ast.parse(source, path)
    if name == "test_tasks":
        # Only the mixins and helpers: the concrete test classes refer, as
        # they are defined, to 3.12's private names (tasks._py_current_task).
        tree.body = [node for node in tree.body if not _is_concrete_test_class(node)]
    exec(compile(tree, path, "exec"), vars(module))
    return module


def _is_concrete_test_class(node: ast.stmt) -> bool:
    if not isinstance(node, ast.ClassDef):
        return False
    bases = [ast.dump(base) for base in node.bases]
    return bool(node.decorator_list) or any("TestCase" in base for base in bases)


# 3.12 tests that name a newer API only to do without it: they run everywhere.
WITHOUT_THE_NEWER_API = {"test_asyncio_run_without_uncancel"}


def _needs_newer_api(func: Any) -> Optional[str]:
    if getattr(func, "__name__", "") in WITHOUT_THE_NEWER_API:
        return None
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return None
    for pattern, api in NEWER_APIS:
        if pattern.search(source):
            return f"needs {api}, unrelated to contexts"
    return None


def _backport_cases(mode: Mode, name: str, path: str) -> List[unittest.TestCase]:
    import asyncio

    view = AsyncioView(asyncio, mode.asyncio_overrides(backport=True))
    module = _load_backport(name, path, view)
    loader = unittest.TestLoader()
    cases: List[unittest.TestCase] = []
    if name == "test_tasks":
        # The contextvars tests of BaseTaskTests, on asyncio's C Future, with
        # ctxloop.Task and with tasks from ctxloop.task_factory.
        base = module.BaseTaskTests  # type: ignore[attr-defined]
        selected = [
            n for n in loader.getTestCaseNames(base) if CONTEXT_TEST.search(inspect.getsource(getattr(base, n)))
        ]
        new_task = _task_factory_method(mode.ctxloop.task_factory)
        future = module.futures._CFuture  # type: ignore[attr-defined]
        classes = [
            ("CTask_CFuture_Tests", {"Task": mode.ctxloop.Task, "Future": future}),
            ("TaskFactory_CFuture_Tests", {"Task": mode.ctxloop.Task, "Future": future, "new_task": new_task}),
        ]
        for class_name, own in classes:
            attrs = dict(own, __module__=module.__name__, __qualname__=class_name)
            cls = type(class_name, (base, module.test_utils.TestCase), attrs)  # type: ignore[attr-defined]
            setattr(module, class_name, cls)
            cases.extend(cls(n) for n in selected)
    else:
        for cls in _test_classes(module):
            for test_name in loader.getTestCaseNames(cls):
                reason = _needs_newer_api(getattr(cls, test_name))
                if reason is not None:
                    # A run-time subclass, so the skip is this run's only.
                    skipped = unittest.skip(reason)(getattr(cls, test_name))
                    attrs = {test_name: skipped, "__qualname__": cls.__qualname__, "__module__": cls.__module__}
                    cls = type(cls.__name__, (cls,), attrs)  # noqa: PLW2901
                cases.append(cls(test_name))
    return cases


def own_modules(connections: bool = True) -> List[str]:
    return [
        name for name, since in OWN_MODULES
        if sys.version_info[:2] >= since and (connections or name not in CONNECTION_MODULES)
    ]  # fmt: skip


def find_py312_tests() -> Optional[str]:
    """The test_asyncio directory of a CPython 3.12 installation (pyenv's), or None."""
    explicit = os.environ.get("CTXLOOP_PY312_TESTS")
    if explicit:
        return explicit
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.12.*", "lib", "python3.12", "test", "test_asyncio")))
    return found[-1] if found else None


def _own_cases(mode: Mode, name: str, full: bool, out: Any) -> List[unittest.TestCase]:
    """The tests of this interpreter's test.test_asyncio.<name>, adapted to *mode*."""
    try:
        module = importlib.import_module(f"test.test_asyncio.{name}")
    except Exception as exc:  # a module that cannot be imported is one failed "test"
        _record_error(out, f"import test.test_asyncio.{name}", exc)
        return []
    mode.adapt_module(module, backport=False)
    loader = unittest.TestLoader()
    cases: List[unittest.TestCase] = []
    for cls in _test_classes(module):
        if name == "test_tasks" and not full and cls.__name__ in TASK_CLASSES_ALL - TASK_CLASSES_KEPT:
            continue
        adapted = mode.adapt_class(module, cls)
        if adapted is not None:
            cases.extend(adapted(n) for n in loader.getTestCaseNames(adapted))
    return cases


def build_cases(mode: Mode, modules: List[str], full: bool, out: Any) -> List[unittest.TestCase]:
    """Every test to run in *mode*, in order (unittest's class and module fixtures rely on it)."""
    cases: List[unittest.TestCase] = []
    for name in modules:
        if name.startswith(BACKPORT_PACKAGE + "."):
            continue
        if mode.name in ("task", "task_factory") and name not in TASK_MODULES:
            continue
        if name in CONNECTION_MODULES and mode.name not in ("native", "factory"):
            continue  # the transports are the loop's: the other modes change only tasks
        cases.extend(_own_cases(mode, name, full, out))
    if BACKPORT and mode.name in CTXLOOP_LOOP_MODES:
        directory = find_py312_tests()
        for name in BACKPORT_MODULES:
            if f"{BACKPORT_PACKAGE}.{name}" not in modules:
                continue
            try:
                if directory is None:
                    raise FileNotFoundError("no CPython 3.12 installation found (set CTXLOOP_PY312_TESTS)")
                cases.extend(_backport_cases(mode, name, os.path.join(directory, f"{name}.py")))
            except Exception as exc:
                _record_error(out, f"load {BACKPORT_PACKAGE}.{name}", exc)
    return cases


def _record_error(out: Any, test_id: str, exc: BaseException) -> None:
    import traceback

    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(detail) > 20000:
        detail = detail[:10000] + "\n...\n" + detail[-10000:]
    out.write(json.dumps({"start": test_id}) + "\n")
    out.write(json.dumps({"id": test_id, "outcome": FAIL, "detail": detail, "runner": True}) + "\n")
    out.flush()


def _import_path(args: argparse.Namespace) -> None:
    if not args.installed:
        sys.path.insert(0, REPO)  # ctxloop from this checkout


def worker(args: argparse.Namespace) -> int:
    _import_path(args)
    mode = Mode(args.worker)
    mode.setup()
    done = set()
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                done.add(record.get("start") or record.get("id"))
    only = set(args.only.split(",")) if args.only else None
    with open(args.out, "a", encoding="utf-8") as out, open(args.hang_file, "a", encoding="utf-8") as hang_file:
        cases = build_cases(mode, args.modules.split(","), args.full, out)
        cases = [c for c in cases if c.id() not in done and (only is None or c.id() in only)]
        for case in cases:
            _wrap_setup(mode, case)
        result = Recorder(out, args.timeout, hang_file)
        start_test, stop_test = result.startTest, result.stopTest

        def start(test: Any) -> None:
            mode.setup_error = None
            try:
                mode.before_test()
            except Exception as exc:
                mode.setup_error = exc  # raised by the test's setUp (_wrap_setup)
            start_test(test)

        def stop(test: Any) -> None:
            stop_test(test)
            try:
                mode.after_test()
            except Exception as exc:
                _record_error(out, f"after {test.id()} ({mode.name})", exc)

        result.startTest = start  # type: ignore[method-assign]
        result.stopTest = stop  # type: ignore[method-assign]
        result.startTestRun()
        try:
            unittest.TestSuite(cases).run(result)
        except BaseException as exc:
            # KeyboardInterrupt or SystemExit out of a test (unittest lets them
            # through): the test fails with it; the parent starts a new worker.
            _record_error(out, result.last_id or "worker", exc)
            out.flush()
            os._exit(3)
        result.stopTestRun()
        out.write(json.dumps({"done": True}) + "\n")
    return 0


# --------------------------------------------------------------------------
# Parent side: one worker per mode, restarted after a hang or crash.
# --------------------------------------------------------------------------


def _read_records(path: str) -> Tuple[Dict[str, Dict[str, Any]], Optional[str], bool]:
    """(results by id, the id started last without a result, whether the worker finished)."""
    results: Dict[str, Dict[str, Any]] = {}
    pending: Optional[str] = None
    finished = False
    if not os.path.exists(path):
        return results, None, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if "start" in record:
                pending = record["start"]
            elif "id" in record:
                results[record["id"]] = record
                pending = None
            elif record.get("done"):
                finished = True
    return results, pending, finished


def _stack_summary(text: str, limit: int = 6) -> str:
    """The main thread's innermost frames from a faulthandler dump."""
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", text.strip())
    main = next((b for b in blocks if b.startswith("Current thread")), blocks[-1] if blocks else "")
    lines = [ln.strip() for ln in main.splitlines()[1 : limit + 1]]
    return "\n".join(lines)


def _worker_command(mode: str, modules: List[str], args: argparse.Namespace, only: Optional[List[str]]) -> List[str]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", mode]
    command += ["--modules", ",".join(modules), "--timeout", str(args.timeout)]
    if args.full:
        command.append("--full")
    if args.installed:
        command.append("--installed")
    if only is not None:
        command += ["--only", ",".join(only)]
    return command


def run_mode(
    mode: str, modules: List[str], args: argparse.Namespace, only: Optional[List[str]] = None
) -> Tuple[Dict[str, Dict[str, Any]], float]:
    """Run *mode* in worker subprocesses; return its results by test id and the seconds taken.

    A worker that stops before the end (a test hung past the timeout, a crash,
    an exception escaping unittest) has the test it was running recorded, and
    a new worker runs the tests not run yet.
    """
    started = time.perf_counter()
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    env.pop("PYTHONWARNINGS", None)
    with tempfile.TemporaryDirectory(prefix="ctxloop-cpython-") as tmp:
        out, hang = os.path.join(tmp, "results.jsonl"), os.path.join(tmp, "hang.txt")
        command = [*_worker_command(mode, modules, args, only), "--out", out, "--hang-file", hang]
        seen = -1
        for _ in range(args.max_restarts + 1):
            open(hang, "w").close()
            try:
                proc = subprocess.run(
                    command, check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600
                )
                output, status = proc.stdout.decode(errors="replace"), str(proc.returncode)
            except subprocess.TimeoutExpired as exc:
                output, status = (exc.stdout or b"").decode(errors="replace"), "killed after 600 s"
            results, pending, finished = _read_records(out)
            if finished:
                break
            with open(hang, encoding="utf-8", errors="replace") as f:
                dump = f.read()
            if pending is not None:
                if dump.strip():
                    record = {"outcome": HANG, "detail": f"no result after {args.timeout:g} s; innermost frames:\n"}
                    record["detail"] += _stack_summary(dump)
                else:
                    record = {"outcome": CRASH, "detail": f"worker died (exit status {status}):\n{output[-2000:]}"}
                record["id"] = pending
            elif len(results) == seen:
                # No progress: it dies outside any test. Record that once and stop.
                record = {"id": f"worker ({mode})", "outcome": CRASH, "detail": output[-3000:], "runner": True}
            else:
                seen = len(results)
                continue  # the last test's record says what happened; go on with the rest
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            if record["id"] != pending:
                break
            seen = len(results) + 1
        results, _, _ = _read_records(out)
    return results, time.perf_counter() - started


def summarize(detail: str, lines: int = 4) -> List[str]:
    """The first lines of a failure: the exception and where in the test it was raised."""
    text = detail.split("\nStdout:\n", 1)[0].split("\nStderr:\n", 1)[0].rstrip()
    if "Traceback (most recent call last)" not in text:
        return [ln for ln in text.splitlines() if ln.strip()][:lines]
    last = text.rsplit("Traceback (most recent call last):", 1)[1].splitlines()
    frames = [ln.strip() for ln in last if ln.startswith("  File ")]
    # The message follows the last frame's line and its source (and caret) lines.
    start = max((i for i, ln in enumerate(last) if ln.startswith("  File ")), default=-1) + 1
    while start < len(last) and last[start].startswith("    "):
        start += 1
    message = [ln for ln in last[start:] if ln.strip()]
    where = [frames[-1]] if frames else []
    stderr = detail.split("\nStderr:\n", 1)[1].strip().splitlines()[:1] if "\nStderr:\n" in detail else []
    return (message[: lines - 1] + where + [f"stderr: {s}" for s in stderr])[: lines + 1]


def compare(reference: Dict[str, Dict[str, Any]], results: Dict[str, Dict[str, Any]]) -> Dict[str, List[str]]:
    """Sort the test ids of a ctxloop mode into categories against its reference mode."""
    categories: Dict[str, List[str]] = {k: [] for k in ("both", "fail_both", "skip", "fixed", "diverge", "extra")}
    for test_id, record in sorted(results.items()):
        ref = reference.get(test_id)
        outcome = record["outcome"]
        if ref is None:
            categories["extra"].append(test_id)
        elif outcome == SKIP or ref["outcome"] == SKIP:
            categories["skip"].append(test_id)
        elif ref["outcome"] == PASS and outcome == PASS:
            categories["both"].append(test_id)
        elif ref["outcome"] == PASS:
            categories["diverge"].append(test_id)
        elif outcome == PASS:
            categories["fixed"].append(test_id)
        else:
            categories["fail_both"].append(test_id)
    return categories


def _modules_for(args: argparse.Namespace) -> List[str]:
    modules = own_modules(connections=args.connections or bool(args.modules))
    if args.modules:
        wanted = args.modules.split(",")
        known = modules + [f"{BACKPORT_PACKAGE}.{m}" for m in BACKPORT_MODULES]
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise SystemExit(f"unknown or absent modules on this Python: {', '.join(unknown)}")
        modules = [m for m in modules if m in wanted]
        backport = [m for m in wanted if m.startswith(BACKPORT_PACKAGE + ".")]
    else:
        backport = [f"{BACKPORT_PACKAGE}.{m}" for m in BACKPORT_MODULES]
    return modules + (backport if BACKPORT else [])


def _header(args: argparse.Namespace) -> str:
    _import_path(args)
    import ctxloop
    from ctxloop import _accel

    implementation = f"{sys.implementation.name} {'.'.join(map(str, sys.version_info[:3]))}"
    return (
        f"{implementation} ({sys.executable}); ctxloop {ctxloop.__version__} from {os.path.dirname(ctxloop.__file__)}"
        f", {_accel.implementation()}"
    )


def _recheck(args: argparse.Namespace, modules: List[str], report: Dict[str, Any]) -> None:
    """Run each divergence again, natively and with ctxloop; mark those not reproduced as flaky."""
    for mode, entry in report["modes"].items():
        ids = [d["id"] for d in entry.get("divergences", [])]
        if not ids:
            continue
        reference = MODES[mode][0]
        assert reference is not None
        again, _ = run_mode(mode, modules, args, only=ids)
        ref_again, _ = run_mode(reference, modules, args, only=ids)
        for divergence in entry["divergences"]:
            test_id = divergence["id"]
            reproduced = (
                again.get(test_id, {}).get("outcome") in BAD and ref_again.get(test_id, {}).get("outcome") == PASS
            )
            divergence["reproduced"] = reproduced


def run(args: argparse.Namespace) -> int:
    try:
        import test.test_asyncio  # noqa: F401
    except ImportError:
        print(f"{_header(args)}\nskipped: this interpreter ships no test.test_asyncio package (PyPy does not)")
        return 0
    modes = args.modes.split(",") if args.modes else DEFAULT_MODES + (UVLOOP_MODES if args.uvloop else [])
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        reference = MODES[mode][0]
        if reference is not None and reference not in modes:
            modes.insert(0, reference)
    modules = _modules_for(args)
    print(_header(args))
    print(f"modules: {', '.join(modules)}; modes: {', '.join(modes)}", flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {mode: pool.submit(run_mode, mode, modules, args) for mode in modes}
        outcomes = {mode: future.result() for mode, future in futures.items()}
    report: Dict[str, Any] = {"python": _header(args), "modules": modules, "modes": {}}
    for mode in modes:
        results, seconds = outcomes[mode]
        entry: Dict[str, Any] = {"seconds": round(seconds, 1), "results": results}
        reference = MODES[mode][0]
        if reference is not None:
            categories = compare(outcomes[reference][0], results)
            entry["counts"] = {k: len(v) for k, v in categories.items()}
            entry["divergences"] = [
                {"id": i, "outcome": results[i]["outcome"], "detail": results[i].get("detail", "")}
                for i in categories["diverge"]
            ]
            entry["fixed"] = categories["fixed"]
            entry["extra"] = categories["extra"]
        report["modes"][mode] = entry
    if not args.no_recheck:
        _recheck(args, modules, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    children = os.times()  # the workers' CPU time (0 on Windows)
    report["cpu_seconds"] = round(children.children_user + children.children_system, 1)
    print_report(report, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    failed = any(
        d.get("reproduced", True) for entry in report["modes"].values() for d in entry.get("divergences", [])
    ) or any(_backport_failures(entry) or _runner_errors(entry) for entry in report["modes"].values())
    return 1 if failed and not args.no_fail else 0


def _backport_failures(entry: Dict[str, Any]) -> List[str]:
    results = entry["results"]
    return [i for i in entry.get("extra", []) if i.startswith(BACKPORT_PACKAGE) and results[i]["outcome"] in BAD]


def _runner_errors(entry: Dict[str, Any]) -> List[str]:
    """Failures of the runner itself: a module that did not load, a worker that died outside any test."""
    return [
        i
        for i, r in entry["results"].items()
        if r.get("runner") and not r["id"].startswith(("test.", BACKPORT_PACKAGE))
    ]


def _table_row(mode: str, entry: Dict[str, Any]) -> str:
    results = entry["results"]
    reference = MODES[mode][0]
    if reference is None:
        outcomes = [r["outcome"] for r in results.values()]
        row = f"{mode:<14}{'-':<8}{len(results):>6}{outcomes.count(PASS):>10}"
        row += f"{sum(o in BAD for o in outcomes):>10}{outcomes.count(SKIP):>8}{'':>13}{'':>8}{'':>15}"
    else:
        counts = entry["counts"]
        backport = [i for i in entry["extra"] if i.startswith(BACKPORT_PACKAGE)]
        passed = sum(results[i]["outcome"] == PASS for i in backport)
        skipped = sum(results[i]["outcome"] == SKIP for i in backport)
        row = f"{mode:<14}{reference:<8}{len(results):>6}{counts['both']:>10}{counts['fail_both']:>10}"
        row += f"{counts['skip'] + skipped:>8}{counts['fixed']:>13}{counts['diverge']:>8}"
        row += f"{(f'{passed}/{len(_backport_failures(entry))}' if backport else ''):>15}"
    return f"{row}{entry['seconds']:>8.1f}"


def _print_failures(failures: List[Tuple[str, Dict[str, Any]]], verbose: bool) -> None:
    """Print failures grouped by their first lines (addresses aside): one group per cause."""
    groups: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {}
    for test_id, record in failures:
        lines = summarize(record.get("detail", ""))
        key = record["outcome"] + re.sub(r"0x[0-9a-f]+", "0x", lines[0] if lines else "")
        groups.setdefault(key, []).append((test_id, record))
    for members in groups.values():
        shown = members if verbose else members[:6]
        for test_id, record in shown:
            flaky = "" if record.get("reproduced", True) else "  (flaky: not reproduced when run again)"
            print(f"  {test_id}: {record['outcome'].upper()}{flaky}")
        if len(members) > len(shown):
            print(f"  ... and {len(members) - len(shown)} more with the same error (-v lists them)")
        for line in summarize(members[0][1].get("detail", "")):
            print(f"      {line}")


def print_report(report: Dict[str, Any], args: argparse.Namespace) -> None:
    """The table, then the divergences and the failing 3.12 tests, grouped by cause."""
    header = f"{'mode':<14}{'vs':<8}{'tests':>6}{'pass both':>10}{'fail both':>10}{'skipped':>8}"
    print(f"\n{header}{'only ctxloop':>13}{'DIVERGE':>8}{'3.12 pass/FAIL':>15}{'seconds':>8}")
    for mode, entry in report["modes"].items():
        print(_table_row(mode, entry))
    print(f"total {report['seconds']:.1f} s (CPU time of the workers: {report['cpu_seconds']:.1f} s)")
    for mode, entry in report["modes"].items():
        divergences = [(d["id"], d) for d in entry.get("divergences", [])]
        if divergences:
            print(f"\n[{mode}] passed natively ({MODES[mode][0]}), FAILED with ctxloop ({MODES[mode][1]}):")
            _print_failures(divergences, args.verbose)
        failures = [(i, entry["results"][i]) for i in _backport_failures(entry)]
        if failures:
            print(f"\n[{mode}] 3.12's tests FAILED with ctxloop's backport (they pass on native 3.12):")
            _print_failures(failures, args.verbose)
        errors = [(i, entry["results"][i]) for i in _runner_errors(entry)]
        if errors:
            print(f"\n[{mode}] errors of the runner (not tests):")
            _print_failures(errors, args.verbose)
        fixed = entry.get("fixed", [])
        if fixed:
            print(f"\n[{mode}] failed in the reference ({MODES[mode][0]}), passed with ctxloop:")
            for test_id in fixed if args.verbose else fixed[:10]:
                print(f"  {test_id}")
            if len(fixed) > 10 and not args.verbose:
                print(f"  ... and {len(fixed) - 10} more (-v lists them)")
    first = next((m for m in report["modes"] if m in CTXLOOP_LOOP_MODES), None)
    if first is not None:
        results = report["modes"][first]["results"]
        skipped = [
            (i, r["detail"]) for i, r in results.items() if i.startswith(BACKPORT_PACKAGE) and r["outcome"] == SKIP
        ]
        if skipped:
            print("\n3.12 tests skipped on this Python:")
            for test_id, reason in skipped:
                print(f"  {test_id}: {reason}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", help=f"comma-separated, from: {', '.join(MODES)}")
    parser.add_argument("--modules", help="comma-separated test_asyncio modules (default: all available)")
    parser.add_argument("--full", action="store_true", help="all eight Task/Future classes of test_tasks")
    parser.add_argument(
        "--installed", action="store_true", help="test the installed ctxloop, not this checkout's source tree"
    )
    parser.add_argument("--uvloop", action="store_true", help="add the uvloop modes")
    parser.add_argument(
        "--connections", action="store_true", help="add the transport, server, stream and subprocess modules"
    )
    parser.add_argument("--jobs", type=int, default=1, help="modes run at a time (default 1)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a test counts as hung")
    parser.add_argument("--max-restarts", type=int, default=20, help="worker restarts after hangs, per mode")
    parser.add_argument("--json", help="write the full results to this file")
    parser.add_argument("--no-recheck", action="store_true", help="do not run divergences again")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even with divergences")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test of a group")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--hang-file", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
