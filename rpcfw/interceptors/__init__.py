"""Client and server interceptors, and the ones every team writes: token auth, an access
log, a deadline rule. See ``base`` for how hooks run."""

from .access_log import AccessLogClient, AccessLogServer
from .auth import BearerTokenAuth, TokenAuthServer
from .base import ClientCallInfo, ClientInterceptor, ServerCallStats, ServerInterceptor
from .deadline import DeadlineGuard

__all__ = [
    "AccessLogClient",
    "AccessLogServer",
    "BearerTokenAuth",
    "ClientCallInfo",
    "ClientInterceptor",
    "DeadlineGuard",
    "ServerCallStats",
    "ServerInterceptor",
    "TokenAuthServer",
]
