"""Discovery benchmark: how fast a registration change reaches a channel, and what watching
1,000 instances costs.

- propagation: 200 changes (register / deregister alternately), each timed from the write to
  the moment the channel's balancer receives the new endpoint set; p50/p99/max.
- scale: 1,000 instances registered in a burst; time until the channel has all of them,
  memory held by the client side (tracemalloc), and the time one more change then takes.

The channel uses a recording no-op balancer, so what is measured is the registry -> resolver ->
balancer path, not 1,000 subchannels dialing addresses nobody listens on.

    python benchmarks/discovery.py                       # embedded registry (local://)
    python benchmarks/discovery.py --etcd 127.0.0.1:2379 # a real etcd
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any, ClassVar

import rpcfw
from rpcfw.balancer.base import (
    Balancer,
    BalancerHelper,
    ConnectivityState,
    Endpoint,
    SubchannelLike,
)
from rpcfw.etcd.api import EtcdClient
from rpcfw.registry import Instance, default_store, instance_key
from rpcfw.registry.instance import DEFAULT_PREFIX

SERVICE = "bench.Discovery"


class Recorder(Balancer):
    """Records when each endpoint set arrives; creates no subchannels."""

    updates: ClassVar[list[tuple[float, int]]] = []
    changed: ClassVar[asyncio.Event] = asyncio.Event()

    def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        Recorder.updates.append((time.perf_counter(), len(endpoints)))
        Recorder.changed.set()

    def update_subchannel_state(self, subchannel: SubchannelLike, state: ConnectivityState) -> None:
        pass


def _recorder(helper: BalancerHelper) -> Balancer:
    return Recorder(helper)


async def _wait_for(count: int, within: float = 30.0) -> float:
    async with asyncio.timeout(within):
        while not Recorder.updates or Recorder.updates[-1][1] != count:
            Recorder.changed.clear()
            await Recorder.changed.wait()
    return Recorder.updates[-1][0]


def _instance(i: int) -> Instance:
    return Instance(SERVICE, f"i{i}", "127.0.0.1", 10000 + i % 50000)


async def main(etcd: str | None, changes: int, scale: int) -> None:
    client: Any
    if etcd:
        from rpcfw.etcd import Etcd3PyClient

        client = Etcd3PyClient(etcd.split(","))
        target = f"etcd://{etcd}/{SERVICE}"
    else:
        client = default_store()
        target = f"local:///{SERVICE}"
    store: EtcdClient = client
    for kv in (await store.get_prefix(f"{DEFAULT_PREFIX}/{SERVICE}/")).items:
        await store.delete(kv.key)

    tracemalloc.start()
    channel = rpcfw.Channel(target, balancer=_recorder)
    base_mem = tracemalloc.get_traced_memory()[0]
    pick = channel._core.pick(rpcfw.balancer.PickInfo("/x"), time_deadline(0.2), True)
    with contextlib.suppress(rpcfw.RpcError):  # nothing to pick: it only starts the resolver
        await pick
    await _wait_for(0)

    latencies = []
    for n in range(changes):
        inst = _instance(0)
        start = time.perf_counter()
        if n % 2 == 0:
            await store.put(instance_key(DEFAULT_PREFIX, inst), inst.to_json())
            arrived = await _wait_for(1)
        else:
            await store.delete(instance_key(DEFAULT_PREFIX, inst))
            arrived = await _wait_for(0)
        latencies.append((arrived - start) * 1000)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"registry: {'etcd ' + etcd if etcd else 'embedded (local://)'}")
    print(
        f"propagation over {changes} changes: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
        f"max {latencies[-1]:.2f} ms, mean {statistics.mean(latencies):.2f} ms"
    )

    start = time.perf_counter()
    for i in range(scale):
        inst = _instance(i)
        await store.put(instance_key(DEFAULT_PREFIX, inst), inst.to_json())
    written = time.perf_counter()
    arrived = await _wait_for(scale)
    memory = tracemalloc.get_traced_memory()[0] - base_mem
    one = _instance(scale)
    t0 = time.perf_counter()
    await store.put(instance_key(DEFAULT_PREFIX, one), one.to_json())
    one_arrived = await _wait_for(scale + 1)
    print(
        f"{scale} instances: written in {(written - start) * 1000:.0f} ms, all at the channel "
        f"{(arrived - start) * 1000:.0f} ms after the first write; memory "
        f"{memory / 1024 / 1024:.1f} MiB (with the embedded store, if used); one more change "
        f"then takes {(one_arrived - t0) * 1000:.2f} ms"
    )
    await channel.close()
    for i in range(scale + 1):
        await store.delete(instance_key(DEFAULT_PREFIX, _instance(i)))
    await store.close()


def time_deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd", help="etcd endpoints host:port[,host:port]; default: embedded")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.etcd, args.changes, args.instances))
