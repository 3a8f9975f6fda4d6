"""The checked-in expectations file: which CPython tests fail on uvloop_like, and why.

Format (expected_failures.txt), one section per Python minor version::

    [3.11]
    fail    test_events.ConformanceEventLoopTests.test_create_server   issue 3: ...
    stdlib  test_foo.Bar.test_baz                                      fails on stdlib too: ...
    flaky   test_foo.Bar.test_qux                                      timing-dependent: ...

* ``fail``: fails (or errors, or times out) on uvloop_like and passes on the stdlib loop.
  Passing on uvloop_like is an *unexpected pass* and fails the run: remove the line.
* ``stdlib``: fails on the stdlib loop in this environment too; not compared at all.
* ``flaky``: either outcome is accepted (keep this list empty or nearly so).

Test ids are ``<module>.<class>.<method>``; ``<module>.<class>.setUpClass`` and
``<module>.tearDownModule`` style ids name fixture errors, and ``<module>.<process>`` a
child process that crashed outside any test.
"""

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "expected_failures.txt")
KINDS = ("fail", "stdlib", "flaky")

HEADER = """\
# Expected outcomes of CPython's test_asyncio on uvloop_like, per Python minor version.
# See tests/conformance/README.md.  Regenerate a version's section with
#   .venv/bin/python -m tests.conformance.runner --update-expectations
# which keeps the reasons already written here and marks new failures UNTRIAGED.
#
#   fail    <test id>  <reason>   fails on uvloop_like, passes on stdlib (unexpected pass = error)
#   stdlib  <test id>  <reason>   fails on the stdlib loop here too: not compared
#   flaky   <test id>  <reason>   either outcome accepted
"""

_SECTION = re.compile(r"^\[(\d+\.\d+)\]\s*$")


class Entry:
    __slots__ = ("kind", "test_id", "reason")

    def __init__(self, kind, test_id, reason):
        self.kind = kind
        self.test_id = test_id
        self.reason = reason

    def __repr__(self):
        return "Entry(%r, %r, %r)" % (self.kind, self.test_id, self.reason)


def load(path=PATH):
    """{version: {test id: Entry}}."""
    sections = {}
    if not os.path.exists(path):
        return sections
    current = None
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _SECTION.match(line)
            if m:
                current = sections.setdefault(m.group(1), {})
                continue
            parts = line.split(None, 2)
            if current is None or len(parts) < 2 or parts[0] not in KINDS:
                raise ValueError("%s:%d: cannot parse %r" % (path, lineno, line))
            reason = parts[2] if len(parts) > 2 else ""
            if not reason:
                raise ValueError("%s:%d: %s has no reason" % (path, lineno, parts[1]))
            current[parts[1]] = Entry(parts[0], parts[1], reason)
    return sections


def for_version(version, path=PATH):
    return load(path).get(version, {})


def _version_key(v):
    return tuple(int(x) for x in v.split("."))


def save(sections, path=PATH):
    out = [HEADER]
    for version in sorted(sections, key=_version_key):
        entries = sections[version]
        out.append("\n[%s]\n" % version)
        width = max([len(e.test_id) for e in entries.values()] + [40])
        for kind in KINDS:
            for test_id in sorted(i for i, e in entries.items() if e.kind == kind):
                e = entries[test_id]
                out.append("%-7s %-*s  %s\n" % (e.kind, width, e.test_id, e.reason))
    with open(path, "w") as f:
        f.write("".join(out))


# --- reasons for new failures ---------------------------------------------------------------

# loop.<name>() raising NotImplementedError("uvloop_like: loop.<name>() is not implemented
# yet") -> the issue that implements it.
_ISSUE_OF_API = {
    "create_connection": "issue 3: needs TCP transports (loop.create_connection)",
    "create_server": "issue 3: needs TCP servers (loop.create_server)",
    "connect_accepted_socket": "issue 3: needs TCP transports (loop.connect_accepted_socket)",
    "create_unix_connection": "issue 3: needs unix stream transports (loop.create_unix_connection)",
    "create_unix_server": "issue 3: needs unix stream servers (loop.create_unix_server)",
    "sendfile": "issue 3: needs loop.sendfile on stream transports",
    "create_datagram_endpoint": "issue 4: needs datagram endpoints (loop.create_datagram_endpoint)",
    "connect_read_pipe": "issue 4: needs pipe transports (loop.connect_read_pipe)",
    "connect_write_pipe": "issue 4: needs pipe transports (loop.connect_write_pipe)",
    "subprocess_exec": "issue 4: needs subprocesses (loop.subprocess_exec)",
    "subprocess_shell": "issue 4: needs subprocesses (loop.subprocess_shell)",
    "start_tls": "issue 5: needs TLS (loop.start_tls)",
}
_NOT_IMPLEMENTED = re.compile(r"loop\.(\w+)\(\) is not implemented")
_THEN_TLS = ", then TLS (issue 5)"
_TLS_REASON = "issue 5: needs TLS (ssl=)"
_TLS_HANG_REASON = ("issue 5: needs TLS (presumed: a TLS test that hangs, its peer waiting for "
                    "a handshake; killed by the per-test timeout)")
_TLS_NOT_IMPLEMENTED = re.compile(r"TLS[^\n]* (is|are) not implemented")


def _is_tls_test(test_id):
    low = test_id.lower()
    return "ssl" in low or "tls" in low


def guess_reason(test_id, record):
    """A first reason for a new uvloop_like failure, from its record; a person checks it."""
    status = record.get("status")
    summary = record.get("summary") or ""
    detail = record.get("detail") or ""
    apis = _NOT_IMPLEMENTED.findall(summary) or _NOT_IMPLEMENTED.findall(detail)
    if apis:
        reason = _ISSUE_OF_API.get(apis[-1], "UNTRIAGED: loop.%s() not implemented" % apis[-1])
        if _is_tls_test(test_id) and not reason.startswith("issue 5"):
            reason += _THEN_TLS
        return reason
    if _TLS_NOT_IMPLEMENTED.search(summary) or _TLS_NOT_IMPLEMENTED.search(detail):
        return _TLS_REASON
    if status == "timeout":
        if _is_tls_test(test_id):
            return _TLS_HANG_REASON
        return "UNTRIAGED: hangs (killed by the per-test timeout)"
    if status == "crash":
        return "UNTRIAGED: crashes the interpreter: %s" % summary
    return "UNTRIAGED: %s" % summary


def _is_guessed(reason):
    """Was this reason written by guess_reason (not by a person)?"""
    if reason.startswith("UNTRIAGED"):
        return True
    base = reason[:-len(_THEN_TLS)] if reason.endswith(_THEN_TLS) else reason
    return base in _ISSUE_OF_API.values() or base in (_TLS_REASON, _TLS_HANG_REASON)


def choose_reason(old, guess):
    """Keep a reason a person wrote; replace a guessed one by the guess for the current
    failure (a test that needed create_server may now fail for another reason)."""
    if old and not _is_guessed(old):
        return old
    return guess
