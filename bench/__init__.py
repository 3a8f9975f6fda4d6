"""Side-by-side benchmarks: stdlib asyncio, uvloop (when importable) and uvloop_like.

``python -m bench`` (``make bench``) runs every registered workload once per loop
implementation and repeat, each run in a fresh subprocess pinned to one core, and
prints the median throughput per loop with the ratios uvloop_like/stdlib and
uvloop_like/uvloop (higher = faster).  ``python -m bench --help`` lists the options;
``--quick`` is a smoke run of a few seconds, ``--markdown`` prints the README table.

Layout:

- ``registry``: ``Workload``, ``Context``, ``Measurement`` and the ``@workload``
  decorator every benchmark registers itself with; ``run_in_loop`` for the common
  "time a coroutine on a fresh loop" case.
- ``loops``: the loop implementations under comparison and how to import each.
- ``workloads/``: one module per area (``core`` is the loop core); add a module and
  list it in ``workloads/__init__.py`` to add workloads.
- ``child``: what runs in each subprocess (pin, import one loop, run one workload,
  print one JSON result line).
- ``cli``: argument parsing and the orchestration; ``report``: the tables.

Importing this package imports neither uvloop nor uvloop_like: only the child
processes do, one implementation each.
"""
