"""Workload modules, one per area.  To add an area, write ``workloads/AREA.py`` with
functions decorated by ``bench.registry.workload`` and add ``AREA`` to ``MODULES``;
the order here is the order of the table.
"""
from __future__ import annotations

import importlib

MODULES = ("core", "streams", "http", "process", "tls", "udp")


def load_all() -> None:
    """Import every workload module so that each registers its workloads."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
