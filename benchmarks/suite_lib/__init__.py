"""The parts of ``benchmarks/suite.py`` (the CLI entry: the peer benchmark), one job each.

- ``model``: stacks, pairs, cells, modes and the bounds of a measurement
- ``security``: the transport options (TLS, gzip): certificates, server and channel options,
  compressible payloads, and the report's option tables

Child side (each a process running ``suite.py`` in a hidden role):

- ``child``: what both roles share (a stack's generated messages, the event loop)
- ``server``: ``--serve``, one stack's echo server
- ``client``: ``--client``, the load client and its measurements (rates, unary p99)

Parent side (the measuring process):

- ``processes``: the child processes (start, pin to a core, talk JSON lines, stop)
- ``matrix``: runs every pair on every cell, repeat after repeat
- ``report``: machine info, the tables, the markdown report and the chart
- ``profiling``: ``--profile``, the top functions of a loaded rpcfw server (or client)
"""

__all__ = [
    "child",
    "client",
    "matrix",
    "model",
    "processes",
    "profiling",
    "report",
    "security",
    "server",
]
