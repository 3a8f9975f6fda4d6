"""Which of CPython's test_asyncio modules run, and how they are bound to the loop under test.

Three kinds of module:

* run whole: the module gets its loops from the event loop policy (``asyncio.run``,
  ``asyncio.new_event_loop()``, ``IsolatedAsyncioTestCase``), which the child process
  points at the loop under test;
* bound: the module's loop-generic mixin (``EventLoopTestsMixin``, ``BaseSockTestsMixin``,
  ...) is mixed into one concrete ``Conformance*`` TestCase whose ``create_event_loop()`` /
  ``new_loop()`` hook returns the loop under test, and the module's own per-selector
  classes (``EPollEventLoopTests``, ``SelectorStartTLSTests``, ...) are dropped;
* skipped: unit tests of stdlib internals that never run a real loop.

The same plan is used for the stdlib baseline (``--loop asyncio``), where the hook returns
``asyncio.SelectorEventLoop()``, so test ids are identical for both loops.

This module is imported by the child process (as a plain script sibling) and by the
parent; it must not import asyncio test modules at import time.
"""

import os
import sys

# Modules that are not about an event loop implementation: never imported, never run.
SKIPPED_MODULES = {
    "test_base_events": "unit tests of BaseEventLoop internals, on mocks and the stdlib TestLoop "
    "(its few real-loop tests patch private stdlib attributes such as _selector and "
    "_sock_sendfile_native)",
    "test_selector_events": "unit tests of the stdlib selector loop and its transports, on mocks",
    "test_proactor_events": "unit tests of the Windows proactor loop, on mocks",
    "test_windows_events": "Windows only",
    "test_windows_utils": "Windows only",
    "test_protocols": "tests the Protocol ABCs only; never creates a loop",
    "test_transports": "tests the Transport ABCs only; never creates a loop",
    "test_futures": "tests asyncio.Future itself (C and Python) on the stdlib TestLoop; "
    "never creates a real loop (checked: 0 loops on every version)",
}

# Modules skipped on some versions only: name -> (first version that runs it, reason).
SKIPPED_BEFORE = {
    "test_queues": ((3, 11), "before 3.11 it runs entirely on the stdlib TestLoop "
                    "(new_test_loop); it creates no real loop"),
}

# Classes dropped from modules that otherwise run, with the reason.  Names that do not exist
# in a given CPython version are ignored.
DROPPED_CLASSES = {
    "test_sslproto": {
        "SslProtoHandshakeTests": "unit tests of asyncio.sslproto.SSLProtocol internals on mocks",
    },
    "test_subprocess": {
        "SubprocessTransportTests": "unit tests of base_subprocess on the stdlib TestLoop and mocks",
        "GenericWatcherTests": "tests stdlib child watchers (mocked), not the loop",
        "MultiLoopChildWatcherTests": "tests a stdlib child watcher, not the loop",
    },
    "test_unix_events": {
        "SelectorEventLoopSignalTests": "unit tests of the stdlib selector loop's signal code on mocks",
        "SelectorEventLoopUnixSockSendfileTests": "tests stdlib private _sock_sendfile_native_impl "
        "and _selector",
        "UnixReadPipeTransportTests": "unit tests of the stdlib pipe transport on mocks",
        "UnixWritePipeTransportTests": "unit tests of the stdlib pipe transport on mocks",
        "AbstractChildWatcherTests": "tests stdlib child watchers, not the loop",
        "BaseChildWatcherTests": "tests stdlib child watchers, not the loop",
        "SafeChildWatcherTests": "tests stdlib child watchers on mocks",
        "FastChildWatcherTests": "tests stdlib child watchers on mocks",
        "PolicyTests": "tests the stdlib unix policy's child watcher handling",
    },
}

# Per bound module: the mixin whose every concrete subclass in the module is replaced by the
# Conformance* binding (the per-selector and proactor classes).
REPLACED_SUBCLASSES_OF = {
    "test_events": "EventLoopTestsMixin",
    "test_sock_lowlevel": "BaseSockTestsMixin",
    "test_sendfile": "SendfileBase",
    "test_buffered_proto": "BaseTestBufferedProtocol",
    "test_server": "BaseStartServer",
    "test_sslproto": "BaseStartTLS",
    "test_subprocess": "SubprocessMixin",
}

# Modules whose tests are about the loop: the run must create at least one loop of the
# loop under test, or the runner itself is broken.
MODULES = [
    "test_buffered_proto",
    "test_context",
    "test_eager_task_factory",  # 3.12+
    "test_events",
    "test_futures2",
    "test_locks",
    "test_pep492",
    "test_queues",
    "test_runners",
    "test_sendfile",
    "test_server",
    "test_sock_lowlevel",
    "test_ssl",  # 3.11+
    "test_sslproto",
    "test_staggered",  # 3.13+
    "test_streams",
    "test_subprocess",
    "test_taskgroups",  # 3.11+
    "test_tasks",
    "test_threads",
    "test_timeouts",  # 3.11+
    "test_unix_events",
    "test_waitfor",
]

# Per-test hard timeout (seconds) in the child; a test past it is killed, recorded as
# "timeout", and the module resumes in a fresh process after it.
DEFAULT_TEST_TIMEOUT = 15.0


def test_asyncio_dir():
    import test

    return os.path.join(os.path.dirname(test.__file__), "test_asyncio")


def available_modules():
    """All test_asyncio modules of the running interpreter: (to run, {skipped: reason})."""
    names = sorted(
        n[:-3] for n in os.listdir(test_asyncio_dir()) if n.startswith("test_") and n.endswith(".py")
    )
    skipped = {}
    for n in names:
        if n not in MODULES:
            skipped[n] = SKIPPED_MODULES.get(n, "not in the conformance plan (new module?)")
        elif n in SKIPPED_BEFORE and sys.version_info[:2] < SKIPPED_BEFORE[n][0]:
            skipped[n] = SKIPPED_BEFORE[n][1]
    run = [n for n in names if n not in skipped]
    return run, skipped


def python_version():
    return "%d.%d" % sys.version_info[:2]


# --- binding (runs in the child, after the test module is imported) -------------------------


def bind(module, short_name, loop_factory):
    """Rewrite the imported test module in place for the loop under test.

    Returns {class name: reason} of the module's TestCase classes that must not run.
    """
    import unittest

    from test.test_asyncio import utils as test_utils

    # Dropped classes stay in the module (tests refer to them by name, e.g.
    # isinstance(self, SubprocessFastWatcherTests)); the child just does not run them.
    dropped = {}
    for name, reason in DROPPED_CLASSES.get(short_name, {}).items():
        if hasattr(module, name):
            dropped[name] = reason

    def replace_subclasses(mixin_name):
        mixin = getattr(module, mixin_name)
        originals = {}
        for name, obj in list(vars(module).items()):
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and issubclass(obj, mixin)):
                originals[name] = obj
                dropped[name] = "replaced by the Conformance* binding (stdlib-loop specific)"
        return mixin, originals

    def install(name, bases, namespace):
        cls = type(name, bases, dict(namespace, __module__=module.__name__, __qualname__=name))
        setattr(module, name, cls)
        return cls

    def create_event_loop(self):
        return loop_factory()

    def new_loop(self):
        return loop_factory()

    TestCase = test_utils.TestCase

    if short_name == "test_events":
        mixin, _ = replace_subclasses("EventLoopTestsMixin")
        # The stdlib's Unix classes add UnixEventLoopTestsMixin, which only attaches a
        # SafeChildWatcher to the loop; the binding uses the policy's default watcher.
        install("ConformanceEventLoopTests",
                (mixin, module.SubprocessTestsMixin, TestCase),
                {"create_event_loop": create_event_loop})
    elif short_name == "test_sock_lowlevel":
        mixin, _ = replace_subclasses("BaseSockTestsMixin")
        install("ConformanceSockTests", (mixin, TestCase),
                {"create_event_loop": create_event_loop})
    elif short_name == "test_sendfile":
        _, _ = replace_subclasses("SendfileBase")
        install("ConformanceSendfileTests", (module.SendfileTestsBase, TestCase),
                {"create_event_loop": create_event_loop})
    elif short_name == "test_buffered_proto":
        # BufferedProtocolSelectorTests is the mixin plus unittest.TestCase, nothing else.
        mixin, _ = replace_subclasses("BaseTestBufferedProtocol")
        install("ConformanceBufferedProtocolTests", (mixin, unittest.TestCase),
                {"new_loop": new_loop})
    elif short_name == "test_server":
        # SelectorStartServerTests adds loop-generic unix-socket server tests to the mixin:
        # keep them by subclassing it.
        _, originals = replace_subclasses("BaseStartServer")
        install("ConformanceStartServerTests", (originals["SelectorStartServerTests"],),
                {"new_loop": new_loop})
    elif short_name == "test_sslproto":
        _, originals = replace_subclasses("BaseStartTLS")
        install("ConformanceStartTLSTests", (originals["SelectorStartTLSTests"],),
                {"new_loop": new_loop})
    elif short_name == "test_subprocess":
        # The stdlib runs SubprocessMixin once per child watcher kind; the binding runs it
        # once, with whatever the policy provides (uvloop_like's processes do not use
        # asyncio's child watchers).
        mixin, _ = replace_subclasses("SubprocessMixin")

        def setUp(self):
            TestCase.setUp(self)
            self.loop = loop_factory()
            self.set_event_loop(self.loop)

        install("ConformanceSubprocessTests", (mixin, TestCase), {"setUp": setUp})
    elif short_name == "test_unix_events":
        # Loop-generic unix-socket server/connection argument tests, written against
        # asyncio.SelectorEventLoop(): rebind their setUp.
        original = module.SelectorEventLoopUnixSocketTests
        dropped["SelectorEventLoopUnixSocketTests"] = "replaced by the Conformance* binding"

        def setUp(self):
            TestCase.setUp(self)
            self.loop = loop_factory()
            self.set_event_loop(self.loop)

        install("ConformanceUnixSocketTests", (original,), {"setUp": setUp})
    elif short_name == "test_runners":
        # BaseTest.new_loop() is the loop hook of asyncio.run()/Runner tests; stdlib gives it
        # a BaseEventLoop with a mocked selector.  Give it the loop under test, keeping the
        # check that run() shut down the async generators.
        def runners_new_loop(self):
            loop = loop_factory()
            loop.shutdown_ag_run = False
            real_shutdown_asyncgens = loop.shutdown_asyncgens

            async def shutdown_asyncgens():
                loop.shutdown_ag_run = True
                await real_shutdown_asyncgens()

            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop

        module.BaseTest.new_loop = runners_new_loop
    elif short_name == "test_pep492":
        # Same: BaseTest.setUp() makes a BaseEventLoop with a mocked selector.
        def pep492_setUp(self):
            TestCase.setUp(self)
            self.loop = loop_factory()
            self.set_event_loop(self.loop)

        module.BaseTest.setUp = pep492_setUp
    return dropped
