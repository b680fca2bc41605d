"""``rpcfw registry ls|watch``: what etcd says about registered services;
``rpcfw registry config get|set|delete``: the service config channels read from etcd."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from ..endpoint import Endpoint
from ..etcd.api import EtcdError
from ..policy.service_config import ServiceConfig
from ..registry.instance import (
    DEFAULT_CONFIG_PREFIX,
    DEFAULT_PREFIX,
    Instance,
    config_key,
    parse_instance,
)
from .cli_errors import extra_hint, one_line
from .output_format import FormatOption, print_table, wants_table

__all__ = ["registry_app"]

registry_app = typer.Typer(help="Inspect service registrations in etcd.", no_args_is_help=True)

EtcdOption = Annotated[
    str, typer.Option("--etcd", help="etcd endpoints: host:port[,host:port...]", metavar="URL")
]
PrefixOption = Annotated[str, typer.Option(help="Key prefix the registry uses.")]

_HEADER = ("SERVICE", "INSTANCE", "ADDRESS", "WEIGHT", "ZONE", "VERSION")


def _endpoints(url: str) -> list[str]:
    return [
        e.strip().removeprefix("http://").removeprefix("etcd://")
        for e in url.split(",")
        if e.strip()
    ]


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in (_HEADER, *rows)) for i in range(len(_HEADER))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (_HEADER, *rows)
    ]
    return "\n".join(lines)


def _row(instance: Instance) -> tuple[str, ...]:
    address = f"{instance.address}:{instance.port}"
    return (
        instance.service,
        instance.instance_id,
        address,
        str(instance.weight),
        instance.zone,
        instance.version,
    )


def _endpoint_row(service: str, endpoint: Endpoint) -> tuple[str, ...]:
    a = endpoint.attributes
    return (
        service,
        str(a.get("instance_id", "")),
        str(endpoint),
        str(endpoint.weight),
        str(a.get("zone", "")),
        str(a.get("version", "")),
    )


def _fail(message: str, code: int = 3) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _bad_setup(url: str, exc: ValueError | ModuleNotFoundError) -> typer.Exit:
    """A --etcd value that is no endpoint list, or the etcd extra missing: exit 2."""
    if isinstance(exc, ModuleNotFoundError):
        return _fail(extra_hint(exc), 2)
    return _fail(f"--etcd {url!r}: {one_line(exc)} (expected host:port[,host:port...])", 2)


async def _ls(url: str, service: str | None, prefix: str) -> list[Instance]:
    from ..etcd import Etcd3PyClient

    client = Etcd3PyClient(_endpoints(url))
    try:
        keys = prefix.rstrip("/") + "/" + (f"{service}/" if service else "")
        snapshot = await client.get_prefix(keys)
    finally:
        await client.close()
    instances = []
    for item in snapshot.items:
        with contextlib.suppress(ValueError):
            instances.append(parse_instance(prefix, item.key, item.value))
    return instances


@registry_app.command("ls")
def ls(
    etcd: EtcdOption,
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    prefix: PrefixOption = DEFAULT_PREFIX,
    fmt: FormatOption = None,
) -> None:
    """List registered instances (all services, or one): a rich table on a terminal (or with
    --format table), aligned plain columns otherwise (or with --format plain)."""
    try:
        instances = asyncio.run(_ls(etcd, service, prefix))
    except EtcdError as exc:
        raise _fail(f"etcd at {etcd}: {exc}") from None
    except (ValueError, ModuleNotFoundError) as exc:
        raise _bad_setup(etcd, exc) from None
    if not instances:
        typer.echo(f"no instances registered{' for ' + service if service else ''}")
        return
    rows = [_row(i) for i in sorted(instances, key=lambda i: (i.service, i.instance_id))]
    if wants_table(fmt):
        print_table([h.capitalize() for h in _HEADER], rows)
    else:
        typer.echo(_table(rows))


async def _watch(url: str, service: str, prefix: str, duration: float | None) -> None:
    from ..etcd import Etcd3PyClient
    from ..resolver.service_registry import ServiceRegistryResolver
    from ..resolver.target import parse_target

    client = Etcd3PyClient(_endpoints(url))
    try:
        await client.get_prefix(prefix.rstrip("/") + f"/{service}/")  # reachable at all?
    except BaseException:
        await client.close()
        raise

    def show(update: Sequence[Endpoint] | Exception) -> None:
        if isinstance(update, Exception):  # once per outage, not per retry
            typer.echo(f"-- etcd unreachable ({update}); showing the last known set", err=True)
            return
        typer.echo(f"-- {len(update)} instance(s) of {service}")
        typer.echo(_table([_endpoint_row(service, e) for e in update]) if update else "(none)")

    resolver = ServiceRegistryResolver(
        parse_target(f"etcd://{url}/{service}"), show, client, prefix=prefix, coalesce=0.05
    )
    resolver.start()
    try:
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
    finally:
        await resolver.close()
        await client.close()


@registry_app.command("watch")
def watch(
    service: Annotated[str, typer.Argument(help="The service to follow, e.g. echo.v1.Echo.")],
    etcd: EtcdOption,
    prefix: PrefixOption = DEFAULT_PREFIX,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Print the instance table of SERVICE now and again whenever it changes (Ctrl-C ends).
    Exits 3 when etcd cannot be reached at the start; later outages are reported once each
    while the last known table stays valid."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_watch(etcd, service, prefix, duration))
    except EtcdError as exc:
        raise _fail(f"etcd at {etcd}: {exc}") from None
    except (ValueError, ModuleNotFoundError) as exc:
        raise _bad_setup(etcd, exc) from None


# -- rpcfw registry config get|set|delete -----------------------------------------------------
config_app = typer.Typer(
    help="The service config (retry / hedging policies, timeouts; gRPC JSON) that channels "
    "to a service read from etcd at <config-prefix>/<service>. Exit codes: 0 done, 1 no "
    "config (get), 2 invalid config or usage, 3 etcd unreachable.",
    no_args_is_help=True,
)
registry_app.add_typer(config_app, name="config")

ConfigPrefixOption = Annotated[
    str, typer.Option("--config-prefix", help="Key prefix of service configs.")
]
ServiceArgument = Annotated[str, typer.Argument(help="The service, e.g. echo.v1.Echo.")]


async def _config_op(url: str, op: str, key: str, value: bytes = b"") -> bytes | None:
    from ..etcd import Etcd3PyClient

    client = Etcd3PyClient(_endpoints(url))
    try:
        if op == "get":
            snapshot = await client.get_prefix(key)
            return next((kv.value for kv in snapshot.items if kv.key == key), None)
        if op == "set":
            await client.put(key, value)
        else:
            await client.delete(key)
        return None
    finally:
        await client.close()


def _run_config_op(url: str, op: str, key: str, value: bytes = b"") -> bytes | None:
    try:
        return asyncio.run(_config_op(url, op, key, value))
    except EtcdError as exc:
        raise _fail(f"etcd at {url}: {exc}") from None
    except (ValueError, ModuleNotFoundError) as exc:
        raise _bad_setup(url, exc) from None


@config_app.command("get")
def config_get(
    service: ServiceArgument,
    etcd: EtcdOption,
    config_prefix: ConfigPrefixOption = DEFAULT_CONFIG_PREFIX,
) -> None:
    """Print SERVICE's service config as stored (exit 1 if there is none)."""
    key = config_key(service, config_prefix)
    value = _run_config_op(etcd, "get", key)
    if value is None:
        typer.echo(f"no service config for {service} ({key})", err=True)
        raise typer.Exit(1)
    typer.echo(value.decode(errors="replace"))


@config_app.command("set")
def config_set(
    service: ServiceArgument,
    file: Annotated[str, typer.Argument(help="A JSON service config file ('-': stdin).")],
    etcd: EtcdOption,
    config_prefix: ConfigPrefixOption = DEFAULT_CONFIG_PREFIX,
) -> None:
    """Validate FILE as a gRPC service config and store it for SERVICE: running channels
    apply it to the calls they start from then on. An invalid config is refused (exit 2)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        ServiceConfig.from_json(text)
    except Exception as exc:  # the resolver would refuse it too
        typer.echo(f"error: invalid service config: {exc}", err=True)
        raise typer.Exit(2) from None
    compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    key = config_key(service, config_prefix)
    _run_config_op(etcd, "set", key, compact.encode())
    typer.echo(f"stored {key}")


@config_app.command("delete")
def config_delete(
    service: ServiceArgument,
    etcd: EtcdOption,
    config_prefix: ConfigPrefixOption = DEFAULT_CONFIG_PREFIX,
) -> None:
    """Remove SERVICE's service config: channels fall back to their own."""
    key = config_key(service, config_prefix)
    _run_config_op(etcd, "delete", key)
    typer.echo(f"deleted {key}")
