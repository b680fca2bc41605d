"""rpcfw's code generator, imported as ``rpcfw_codegen``.

Two ways in:

* ``rpcfw gen PROTO_OR_DIR... [-I DIR]... -o OUT [--messages betterproto2|protobuf]``
  (:func:`generate_tree`) writes messages *and* services into the package OUT;
* ``protoc-gen-rpcfw`` (:func:`main`), a plain protoc plugin writing only the service
  modules, next to messages the user generates with ``--python_out``/``--pyi_out`` or
  ``--python_betterproto2_out`` into the same OUT. Parameter ``messages=protobuf|betterproto2``
  (default betterproto2) says which.

Layout of OUT, for ``proto/echo/v1/echo.proto`` (package ``echo.v1``) generated with ``-I proto``.
OUT is a package (every directory gets an ``__init__.py``); import it as one, e.g. with OUT's
parent on ``sys.path``::

    both:         OUT/echo/v1/echo_rpcfw.py     EchoStub, EchoBase, ECHO_UNARY..., every
                                                message and enum of the file (nested ones
                                                flat: EchoRequestPart) and the messages the
                                                services use, re-exported; for every .proto,
                                                with services or not
    rpcfw gen:    OUT/.rpcfw-gen.json           what it wrote (see :mod:`.ownership`)
    protobuf:     OUT/echo/v1/echo_pb2.py(+.pyi) protoc's module, next to its .proto path
    betterproto2: OUT/echo/v1/__init__.py       all messages of proto package ``echo.v1``;
                  OUT/google/protobuf/__init__.py well-known types; OUT/message_pool.py

So ``from gen.echo.v1.echo_rpcfw import EchoStub, EchoRequest`` works with either backend.
The service module of ``a/b.proto`` is always ``a/b_rpcfw.py`` (protoc's ``_pb2`` naming:
``-`` becomes ``_``); it imports messages relatively (well-known types of the protobuf backend
come from ``google.protobuf.*_pb2``). ``rpcfw gen`` also rewrites protoc's absolute imports
between local ``_pb2`` modules into relative ones, and generates every imported non-WKT file.
"""

from .driver import GenError, GenResult, generate_tree
from .naming import Backend
from .plugin import generate, main

__all__ = ["Backend", "GenError", "GenResult", "generate", "generate_tree", "main"]
