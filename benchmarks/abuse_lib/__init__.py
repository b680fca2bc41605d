"""The parts of ``benchmarks/abuse.py`` (the CLI entry), one job each.

Parent side (the measuring process):

- ``plan``: scenarios, servers, client stacks, counts (``Plan``)
- ``runner``: runs the scenarios, each against fresh servers
- ``raw_scenarios``, ``storm``, ``soak``: the scenario families (``storm`` and ``soak`` also
  hold their worker-side clients)
- ``calls``: normal calls (probes, a call on a new connection, calls after an attack)
- ``scenario_result``: what is measured after an attack, and a scenario's row
- ``procfs``: a server's CPU and RSS from /proc
- ``processes``: the child processes (servers and workers)
- ``report``: the markdown report
- ``log``: progress lines on stderr

Child side: ``echo_server`` (``--role serve``); ``worker`` (``--role worker``) running
``raw_attacks`` (over ``raw_conn``, with bytes from ``h2_frames``) and the storm and soak clients.
"""

__all__ = [
    "calls",
    "echo_server",
    "h2_frames",
    "log",
    "plan",
    "processes",
    "procfs",
    "raw_attacks",
    "raw_conn",
    "raw_scenarios",
    "report",
    "runner",
    "scenario_result",
    "soak",
    "storm",
    "worker",
]
