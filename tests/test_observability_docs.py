"""docs/observability.md's examples run, as written, on a uvloop_like loop.

Each ```python block of the page is executed; the Prometheus exporter is
scraped over a real connection and its output checked against the text
format's rules; the OpenTelemetry example runs against stand-ins for the
three ``opentelemetry`` names it uses (the package is not a dependency); the
utilisation monitor and the aiodebug-style logger run on real work.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
import types

import pytest
from conftest import loop_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "observability.md")


@pytest.fixture
def uvl(_exception_recorder):
    yield from loop_fixture("uvloop_like", _exception_recorder)


def _blocks():
    with open(PAGE, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def _run_block(marker, extra_modules=None):
    """Execute the page's python block that contains ``marker``; its namespace."""
    (block,) = [b for b in _blocks() if marker in b]
    saved = {}
    for name, module in (extra_modules or {}).items():
        saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    try:
        namespace = {"__name__": "observability_doc"}
        exec(compile(block, PAGE, "exec"), namespace)
        return namespace
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def test_every_block_is_covered():
    markers = ("def rates(", "def prometheus_text(", "def instrument_loop(", "def enable(")
    assert len(_blocks()) == len(markers)
    for block in _blocks():
        assert sum(m in block for m in markers) == 1


# --- Prometheus --------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\[\\\"n])*\",?)*\})? (\S+)$" % _NAME)


def check_prometheus_text(text):
    """The rules of the text format (0.0.4) a scraper enforces; returns
    {metric name: (type, value)}."""
    assert text.endswith("\n")
    types_, helps, samples = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name)
            assert name not in helps, "HELP twice for " + name
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            assert name not in types_ and name not in samples, "TYPE must come before the samples"
            types_[name] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            name, value = m.group(1), m.group(3)
            float(value)  # Go's ParseFloat accepts Python's repr of ints and floats
            assert name in types_
            if types_[name] == "counter":
                assert name.endswith("_total") and float(value) >= 0
            samples[name] = (types_[name], float(value))
    assert set(samples) == set(types_) == helps
    return samples


def test_prometheus_example(uvl):
    ns = _run_block("def prometheus_text(")

    async def scrape():
        server = await ns["serve_metrics"](port=0, labels={"loop": 'main "A"\\x'})
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return response

    response = uvl.run_until_complete(scrape())
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: %d" % len(body) in head
    samples = check_prometheus_text(body.decode())
    assert set(samples) == {name for name, _, _ in ns["METRICS"].values()}
    assert samples["asyncio_loop_iterations_total"][1] > 0
    assert samples["asyncio_loop_accepted_connections_total"][1] == 1
    assert 'loop="main \\"A\\"\\\\x"' in body.decode()
    # Without labels too, and for every field of the snapshot.
    assert set(ns["METRICS"]) == set(uvl.stats()._fields)
    check_prometheus_text(ns["prometheus_text"](uvl.stats()))


# --- OpenTelemetry -----------------------------------------------------------------

class _Meter:
    def __init__(self):
        self.instruments = {}

    def _create(self, kind, name, callbacks=None, unit="", description=""):
        assert name not in self.instruments
        assert isinstance(unit, str) and isinstance(description, str)
        self.instruments[name] = (kind, unit, list(callbacks or ()))

    def create_observable_counter(self, name, callbacks=None, unit="", description=""):
        self._create("counter", name, callbacks, unit, description)

    def create_observable_gauge(self, name, callbacks=None, unit="", description=""):
        self._create("gauge", name, callbacks, unit, description)

    def collect(self):
        """What a metric reader does: call every callback (from another thread)."""
        out = {}
        for name, (_kind, _, callbacks) in self.instruments.items():
            out[name] = [(o.value, dict(o.attributes)) for cb in callbacks for o in cb(_CallbackOptions())]
        return out


class _Observation:
    def __init__(self, value, attributes=None):
        self.value = value
        self.attributes = attributes or {}


class _CallbackOptions:
    timeout_millis = 10_000


def _fake_opentelemetry(meter):
    otel = types.ModuleType("opentelemetry")
    otel_metrics = types.ModuleType("opentelemetry.metrics")
    otel_metrics.get_meter = lambda name: meter
    otel_metrics.CallbackOptions = _CallbackOptions
    otel_metrics.Observation = _Observation
    otel.metrics = otel_metrics
    return {"opentelemetry": otel, "opentelemetry.metrics": otel_metrics}


async def _cancelled(task):
    """Cancel a doc example's background task and wait until it has ended."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def test_opentelemetry_example(uvl):
    meter = _Meter()
    ns = _run_block("def instrument_loop(", _fake_opentelemetry(meter))

    async def main():
        task = ns["instrument_loop"](asyncio.get_running_loop(), attributes={"service.name": "t"}, refresh=0.01)
        for _ in range(50):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        await _cancelled(task)

    uvl.run_until_complete(main())
    import threading

    result = {}
    reader = threading.Thread(target=lambda: result.update(meter.collect()))
    reader.start()
    reader.join(10)
    assert result["asyncio.loop.iterations"][0][0] > 0
    assert result["asyncio.loop.iterations"][0][1] == {"service.name": "t"}
    io = {attrs["network.io.direction"]: value for value, attrs in result["asyncio.loop.io"]}
    assert set(io) == {"receive", "transmit"}
    assert meter.instruments["asyncio.loop.idle_time"][:2] == ("counter", "s")
    assert meter.instruments["asyncio.loop.ready"][0] == "gauge"
    # Every field but the longest interval and the handle count is exported.
    exported = set(ns["INSTRUMENTS"])
    assert exported == set(uvl.stats()._fields) - {"max_callback_time", "handles"}


# --- utilisation ----------------------------------------------------------------------

def test_utilisation_example(uvl):
    ns = _run_block("def rates(")
    reports = []

    async def main():
        task = asyncio.ensure_future(ns["monitor"](reports.append, interval=0.1))
        end = time.monotonic() + 20
        while len(reports) < 2 and time.monotonic() < end:
            time.sleep(0.01)  # busy: the loop is blocked in a callback
            await asyncio.sleep(0.01)  # idle
        await _cancelled(task)

    uvl.run_until_complete(main())
    assert len(reports) >= 2
    for r in reports:
        assert 0 < r["utilisation"] <= 1.0 + 1e-3
        assert r["iterations_per_s"] > 0 and r["callbacks_per_s"] > 0


# --- the aiodebug-style logger --------------------------------------------------------

def test_slow_callback_logger_example(uvl, caplog):
    ns = _run_block("def enable(")
    seen = []

    async def slow_task():
        time.sleep(0.15)

    async def main():
        loop = asyncio.get_running_loop()
        ns["enable"](loop, slow_duration=0.1, on_slow_callback=lambda name, d: seen.append((name, d)))
        await loop.create_task(slow_task())
        ns["enable"](loop, slow_duration=0.1)
        with caplog.at_level(logging.WARNING, logger="slow_callbacks"):
            loop.call_soon(time.sleep, 0.15)
            await asyncio.sleep(0.01)
        ns["disable"](loop)
        loop.call_soon(time.sleep, 0.15)
        await asyncio.sleep(0.01)

    uvl.run_until_complete(main())
    assert len(seen) == 1
    name, duration = seen[0]
    assert name.startswith("<Task") and "slow_task" in name
    assert duration >= 0.15
    messages = [r.getMessage() for r in caplog.records if r.name == "slow_callbacks"]
    assert len(messages) == 1 and messages[0].startswith("Executing <Handle sleep(")


def test_slow_callback_logger_example_on_stdlib(caplog):
    # The same call on a stdlib loop falls back to debug mode's warning.
    ns = _run_block("def enable(")
    loop = asyncio.new_event_loop()
    try:
        ns["enable"](loop, slow_duration=0.05)
        assert loop.get_debug()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_until_complete(asyncio.sleep(0))
            loop.call_soon(time.sleep, 0.1)
            loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert any(r.getMessage().startswith("Executing") for r in caplog.records)
