"""``rpcfw bench``: a ghz-like load generator for one method of any rpcfw/gRPC target.

Exit codes: 0 done; 1 done but no call succeeded; 2 bad option (duration, numbers, format,
target, balancer, --plot without matplotlib, metadata, TLS files); 3 proto/module/reflection
problem (generation, import, unknown service or method, no reflection); 4 request data that
does not fit the message; 5 target unreachable (UNAVAILABLE before any call succeeded; stopped
after the first failures); 130 interrupted (SIGINT), after printing the partial report.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn

import typer

from .._method import MethodSpec
from ..bench.report import FORMATS, BenchResult
from ..bench.runner import KINDS, BenchConfig, BenchRun, run_bench
from ..bench.schedule import parse_duration
from .bench_output import OUTPUT_FORMATS, output_format, plot_png, report_text
from .bench_schema import reflected_method
from .channel_options import (
    CacertOption,
    CertOption,
    HeaderOption,
    InsecureOption,
    KeyOption,
    ServerNameOption,
    TlsFlags,
    TlsOption,
    parse_metadata,
)
from .cli_errors import EXIT_INPUT, CliError
from .schema import split_method

__all__ = [
    "EXIT_ALL_FAILED",
    "EXIT_BAD_DATA",
    "EXIT_BAD_METHOD",
    "EXIT_INTERRUPTED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "bench",
]

EXIT_ALL_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_METHOD = 3
EXIT_BAD_DATA = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130
STDOUT_FORMATS = (*FORMATS, "md", "html")

DEFAULT_DURATION = 10.0
TOTAL_TIME_CAP = 600.0  # --total without --duration still stops after this


class BenchFailure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _fail(message: str, code: int) -> NoReturn:
    raise BenchFailure(message, code)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- finding the method ----------------------------------------------------------------------
def collect_methods(modules: list[ModuleType]) -> dict[str, MethodSpec[Any, Any]]:
    """Every MethodSpec the generated modules define, by ``:path`` (``/pkg.Service/Method``)."""
    found: dict[str, MethodSpec[Any, Any]] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, MethodSpec):
                found[value.path] = value
    return found


def _split_method(text: str) -> tuple[str, str]:
    """``schema.split_method``, a malformed name being a usage error (exit 2) here."""
    try:
        return split_method(text)
    except CliError as exc:
        _fail(exc.message, EXIT_USAGE)


def find_method(methods: dict[str, MethodSpec[Any, Any]], text: str) -> MethodSpec[Any, Any]:
    service, method = _split_method(text)
    spec = methods.get(f"/{service}/{method}")
    if spec is not None:
        return spec
    services = sorted({s.service for s in methods.values()})
    if service not in services:
        _fail(
            f"unknown service {service!r}; services: {', '.join(services) or '(none)'}",
            EXIT_BAD_METHOD,
        )
    names = sorted(s.method for s in methods.values() if s.service == service)
    _fail(f"{service} has no method {method!r}; methods: {', '.join(names)}", EXIT_BAD_METHOD)


@contextlib.contextmanager
def _on_path(folder: str) -> Iterator[None]:
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def load_from_protos(protos: list[Path], includes: list[Path]) -> list[ModuleType]:
    """Generate (protobuf backend) into a temporary package and import every service module."""
    from rpcfw_codegen import Backend, GenError, generate_tree

    for proto in protos:
        if not proto.exists():
            _fail(f"proto {proto} not found", EXIT_BAD_METHOD)
    package = f"_rpcfw_bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="rpcfw-bench-") as tmp:
        out = Path(tmp) / package
        try:
            generate_tree(protos, out, includes=includes, backend=Backend.PROTOBUF)
        except GenError as exc:
            _fail(
                f"cannot generate code from {', '.join(map(str, protos))}: {_one_line(str(exc))}",
                EXIT_BAD_METHOD,
            )
        names = [
            ".".join((package, *path.relative_to(out).with_suffix("").parts))
            for path in sorted(out.rglob("*_rpcfw.py"))
        ]
        with _on_path(tmp):
            try:
                return [importlib.import_module(name) for name in names]
            except Exception as exc:
                _fail(f"cannot import the generated code: {_one_line(str(exc))}", EXIT_BAD_METHOD)


def load_module(name: str) -> list[ModuleType]:
    with _on_path(str(Path.cwd())):
        try:
            return [importlib.import_module(name)]
        except Exception as exc:
            _fail(f"cannot import module {name!r}: {_one_line(str(exc))}", EXIT_BAD_METHOD)


# -- request data ----------------------------------------------------------------------------
def parse_request(cls: type[Any], data: str) -> Any:
    """JSON (proto3 JSON mapping) -> a message of ``cls`` (protobuf or betterproto2)."""
    text = data
    if data.startswith("@"):
        try:
            text = Path(data[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot read request data {data[1:]}: {exc.strerror}", EXIT_BAD_DATA)
    name = getattr(cls, "__qualname__", str(cls))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not valid JSON: {exc}", EXIT_BAD_DATA)
    if not isinstance(value, dict):
        _fail(f"--data must be a JSON object for {name}, not {type(value).__name__}", EXIT_BAD_DATA)
    from google.protobuf import json_format
    from google.protobuf.message import Message as PbMessage

    if isinstance(cls, type) and issubclass(cls, PbMessage):
        try:
            return json_format.ParseDict(value, cls())
        except json_format.ParseError as exc:
            _fail(f"--data does not fit {name}: {_one_line(str(exc))}", EXIT_BAD_DATA)
    from_dict = getattr(cls, "from_dict", None)
    if from_dict is None:
        _fail(f"cannot build {name} from JSON (neither protobuf nor betterproto2)", EXIT_BAD_DATA)
    try:
        return from_dict(value)
    except Exception:
        for key, item in value.items():  # find the field that does not fit
            try:
                from_dict({key: item})
            except Exception as exc:
                _fail(
                    f"--data does not fit {name}: field {key!r}: {_one_line(str(exc))}",
                    EXIT_BAD_DATA,
                )
        _fail(f"--data does not fit {name}", EXIT_BAD_DATA)


# -- plot ------------------------------------------------------------------------------------
def _check_plot_available() -> None:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        _fail("--plot needs matplotlib: pip install 'rpcfw[plot]' (or matplotlib)", EXIT_USAGE)


def write_plot(path: Path, result: BenchResult, run: BenchRun) -> None:
    """Latency histogram and OK calls per second, as a PNG."""
    path.write_bytes(plot_png(result))


# -- the command -----------------------------------------------------------------------------
def bench(
    target: Annotated[
        str,
        typer.Argument(
            help="host:port, static:///h1:p1,h2:p2, dns:///host:port or a registered scheme.",
            show_default=False,
            metavar="TARGET",
        ),
    ],
    method: Annotated[
        str,
        typer.Argument(
            help="SERVICE/METHOD, e.g. echo.v1.Echo/Unary (a leading / is fine).",
            show_default=False,
            metavar="SERVICE/METHOD",
        ),
    ],
    proto: Annotated[
        list[Path] | None,
        typer.Option(
            "--proto",
            help="A .proto (or folder) to generate code from (repeatable).",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option(
            "-I",
            "--include",
            help="Import root for --proto (repeatable).",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(
            "--module",
            help="An already generated module, e.g. gen.echo.v1.echo_rpcfw.",
            show_default=False,
            metavar="PKG.MODULE",
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option("-d", "--data", help="Request as JSON (proto3 mapping), or @file.json."),
    ] = "{}",
    concurrency: Annotated[
        int, typer.Option("-c", "--concurrency", min=1, max=100_000, help="Workers.")
    ] = 50,
    connections: Annotated[
        int,
        typer.Option(
            "--connections", min=1, max=10_000, help="Channels, round-robined over the workers."
        ),
    ] = 1,
    duration: Annotated[
        str | None,
        typer.Option(
            "-z",
            "--duration",
            help=f"How long to run, e.g. 10s, 500ms, 1m30s (default {DEFAULT_DURATION:g}s; "
            f"with --total: a cap, default {TOTAL_TIME_CAP:g}s).",
            show_default=False,
        ),
    ] = None,
    total: Annotated[
        int | None,
        typer.Option(
            "-n", "--total", min=1, help="Stop after this many calls.", show_default=False
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Open loop: start calls at this rate (calls/s); latency counts from when each "
            "call was due.",
            show_default=False,
        ),
    ] = None,
    balancer: Annotated[str, typer.Option("--balancer", help="Balancing policy.")] = "pick_first",
    timeout: Annotated[
        float, typer.Option("-t", "--timeout", min=0.001, help="Per-call deadline (s).")
    ] = 20.0,
    stream_messages: Annotated[
        int,
        typer.Option("--stream-messages", min=1, help="Requests per client-stream or bidi call."),
    ] = 10,
    fmt: Annotated[
        str, typer.Option("-f", "--format", help="Output: table, json, csv, md or html.")
    ] = "table",
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also write a PNG (needs matplotlib).",
            show_default=False,
            metavar="FILE.png",
        ),
    ] = None,
    header: HeaderOption = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--metadata",
            help='Request metadata as a JSON object, e.g. \'{"authorization": "Bearer t"}\' '
            "(with -H: both).",
            metavar="JSON",
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(
            "--warmup",
            help="Run but do not measure the first N calls (--warmup 100) or the first "
            "DURATION (--warmup 5s); --total and --duration count after it.",
            metavar="N|DURATION",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Also write the report to FILE, in the format its extension names: "
            f"{', '.join(OUTPUT_FORMATS)} (HTML with the plots embedded).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    tls: TlsOption = False,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    insecure: InsecureOption = False,
    server_name: ServerNameOption = None,
) -> None:
    """Load-test one method of TARGET and report throughput, latency percentiles and errors.

    Closed loop by default (each worker calls again when its call ended); --rate makes it
    open loop. The schema comes from --proto, --module, or else the server's reflection.
    Ctrl-C prints the report of what ran so far. Exit codes: 0 done, 1 every call failed,
    2 bad option, 3 unknown service/method, proto or reflection problem, 4 request data does
    not fit, 5 target unreachable, 130 interrupted.
    """
    extras = BenchExtras(
        header, metadata, warmup, output, TlsFlags(tls, cacert, cert, key, insecure, server_name)
    )
    try:
        result, run = _bench(
            target,
            method,
            proto,
            include,
            module,
            data,
            concurrency,
            connections,
            duration,
            total,
            rate,
            balancer,
            timeout,
            stream_messages,
            fmt,
            plot,
            extras,
        )
    except BenchFailure as exc:
        typer.echo(f"rpcfw bench: error: {exc.message}", err=True)
        raise typer.Exit(exc.code) from None
    typer.echo(report_text(result, fmt), nl=False)
    if output is not None:
        try:
            output.write_text(report_text(result, output_format(output) or "table"))
        except OSError as exc:
            typer.echo(f"rpcfw bench: error: cannot write {output}: {exc.strerror}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
    if plot is not None:
        try:
            write_plot(plot, result, run)
        except Exception as exc:
            typer.echo(f"rpcfw bench: error: cannot write {plot}: {_one_line(str(exc))}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
    if run.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.ok == 0:
        raise typer.Exit(EXIT_ALL_FAILED)


def _bench(
    target: str,
    method: str,
    proto: list[Path] | None,
    include: list[Path] | None,
    module: str | None,
    data: str,
    concurrency: int,
    connections: int,
    duration: str | None,
    total: int | None,
    rate: float | None,
    balancer: str,
    timeout: float,
    stream_messages: int,
    fmt: str,
    plot: Path | None,
    extras: BenchExtras,
) -> tuple[BenchResult, BenchRun]:
    if fmt not in STDOUT_FORMATS:
        _fail(f"unknown --format {fmt!r}; choose one of {', '.join(STDOUT_FORMATS)}", EXIT_USAGE)
    if proto is not None and module is not None:
        _fail("give --proto FILE (with -I DIR) or --module PKG.MODULE, not both", EXIT_USAGE)
    if extras.output is not None and output_format(extras.output) is None:
        _fail(
            f"-o {extras.output}: name the format with the extension: {', '.join(OUTPUT_FORMATS)}",
            EXIT_USAGE,
        )
    warmup_calls, warmup_seconds = _warmup(extras.warmup)
    try:
        call_metadata = [*parse_metadata(extras.header), *_json_metadata(extras.metadata)]
        channel_tls = extras.tls.channel_tls()
    except CliError as exc:
        _fail(exc.message, EXIT_USAGE)
    if duration is None:
        seconds = DEFAULT_DURATION if total is None else TOTAL_TIME_CAP
    else:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            _fail(f"--duration: {exc}", EXIT_USAGE)
    if rate is not None and (not math.isfinite(rate) or rate <= 0):
        _fail(f"--rate must be a positive number of calls/s, not {rate:g}", EXIT_USAGE)
    if connections > concurrency:
        _fail(f"--connections {connections} exceeds --concurrency {concurrency}", EXIT_USAGE)
    if plot is not None:
        _check_plot_available()
    _split_method(method)  # a malformed name fails before any code generation
    if proto is None and module is None:
        spec = _reflected(target, extras.tls, method, timeout)
    else:
        modules = load_from_protos(proto, include or []) if proto else load_module(module or "")
        methods = collect_methods(modules)
        if not methods:
            _fail("no rpcfw methods found (expected generated *_rpcfw modules)", EXIT_BAD_METHOD)
        spec = find_method(methods, method)
    request = parse_request(spec.request_type, data)
    config = BenchConfig(
        target=target,
        spec=spec,
        request=request,
        concurrency=concurrency,
        connections=connections,
        duration=seconds,
        total=total,
        rate=rate,
        balancer=balancer,
        timeout=timeout,
        stream_messages=stream_messages,
        progress=sys.stderr.isatty(),
        metadata=call_metadata,
        tls=channel_tls,
        warmup_calls=warmup_calls,
        warmup_seconds=warmup_seconds,
        stop_on_sigint=True,
    )
    try:
        result, run = asyncio.run(run_bench(config))
    except ValueError as exc:  # target or balancer the channel refuses
        _fail(_one_line(str(exc)), EXIT_USAGE)
    if run.unreachable:
        _fail(
            f"target {target} unreachable ({KINDS[spec.cardinality]} {spec.path}): "
            f"{_one_line(run.first_error or 'UNAVAILABLE')} "
            f"(stopped after {sum(run.errors.values())} failed calls)",
            EXIT_UNREACHABLE,
        )
    return result, run


@dataclass(frozen=True, slots=True)
class BenchExtras:
    """Options beyond the load itself: metadata, warm-up, report file, TLS."""

    header: list[str] | None
    metadata: str | None
    warmup: str | None
    output: Path | None
    tls: TlsFlags


def _warmup(text: str | None) -> tuple[int, float]:
    """``--warmup 100`` (calls) or ``--warmup 5s`` (a duration) -> (calls, seconds)."""
    if text is None:
        return 0, 0.0
    if text.strip().isdigit():
        return int(text), 0.0
    try:
        return 0, parse_duration(text)
    except ValueError as exc:
        _fail(f"--warmup: {exc} (or a number of calls)", EXIT_USAGE)


def _json_metadata(text: str | None) -> list[tuple[str, str]]:
    if text is None:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--metadata is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        _fail('--metadata must be a JSON object of strings, e.g. {"key": "value"}', EXIT_USAGE)
    return [(str(k).lower(), v) for k, v in value.items()]


def _reflected(target: str, tls: TlsFlags, method: str, timeout: float) -> MethodSpec[Any, Any]:
    try:
        return reflected_method(target, tls, method, timeout)
    except CliError as exc:
        code = EXIT_UNREACHABLE if exc.code == 14 else EXIT_BAD_METHOD
        if exc.code == EXIT_INPUT and "target" in exc.message:
            code = EXIT_USAGE
        _fail(exc.message, code)
