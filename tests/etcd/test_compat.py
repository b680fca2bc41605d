"""Guards for what rpcfw.etcd assumes about etcd3-py 0.1.6 and aiohttp: each fails loudly when
the target of a shim (or of a workaround) moves, so the shim can be revisited."""

from __future__ import annotations

import asyncio
import inspect
import warnings

import aiohttp
import aiohttp.client
import etcd3.aio_client
import etcd3.baseclient
import pytest
import requests

from rpcfw.etcd.compat import DEFAULT_SERVER_VERSION, NoProbeAioClient

from ..etcd_server import EtcdProcess, free_port


def test_etcd3py_still_probes_the_version_in_init() -> None:
    """The reason for NoProbeAioClient: BaseClient.__init__ calls _retrieve_version()."""
    source = inspect.getsource(etcd3.baseclient.BaseClient.__init__)
    assert "self._retrieve_version()" in source
    assert "server_version_sem" in inspect.getsource(etcd3.baseclient.BaseClient._verify_version)


async def test_plain_aioclient_fails_when_etcd_is_down() -> None:
    """Without the shim, building a client while etcd is down warns, then AttributeError."""
    with (
        pytest.warns(Warning, match="cannot detect etcd server version"),
        pytest.raises(AttributeError, match="server_version_sem"),
    ):
        etcd3.aio_client.AioClient("127.0.0.1", free_port(), server_version="3.4.0")


async def test_no_probe_client_builds_without_etcd_and_without_io(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("NoProbeAioClient must not probe /version")

    monkeypatch.setattr(requests, "get", no_io)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = NoProbeAioClient(
            "127.0.0.1",
            free_port(),
            server_version=DEFAULT_SERVER_VERSION,
            cluster_version=DEFAULT_SERVER_VERSION,
        )
    try:
        assert client.api_prefix == "/v3"
        assert str(client.server_version_sem) == DEFAULT_SERVER_VERSION
    finally:
        await client.close()


def test_etcd3py_stream_decoder_still_rebuilds_its_iterator_per_item() -> None:
    """Why rpcfw frames streams itself: ``resp_iter`` makes a new ResponseIter for every item,
    dropping the unread rest of a chunk that held several messages. If this starts failing,
    etcd3-py changed its stream decoding: re-check before relying on it."""
    prop = etcd3.aio_client.ModelizedStreamResponse.__dict__["resp_iter"]
    assert isinstance(prop, property)
    stream = object.__new__(etcd3.aio_client.ModelizedStreamResponse)
    stream.resp = object()
    assert stream.resp_iter is not stream.resp_iter


async def test_etcd3py_raw_call_rpc_gives_an_aiohttp_response(tmp_path: object) -> None:
    """rpcfw's watch/keepalive use ``call_rpc(..., raw=True)`` and read the aiohttp response."""
    assert "raw" in inspect.signature(etcd3.aio_client.AioClient.call_rpc).parameters
    proc = EtcdProcess()
    await asyncio.to_thread(proc.start)
    client = NoProbeAioClient(
        "127.0.0.1",
        proc.client_port,
        server_version=DEFAULT_SERVER_VERSION,
        cluster_version=DEFAULT_SERVER_VERSION,
    )
    try:
        async with asyncio.timeout(5):
            ctx = client.call_rpc("/lease/grant", data={"TTL": "5"}, encode=False, raw=True)
            assert isinstance(ctx, aiohttp.client._BaseRequestContextManager)
            async with ctx as resp:
                assert isinstance(resp, aiohttp.ClientResponse)
                assert resp.status == 200
                body = await resp.json()
                assert body["TTL"] == "5"
    finally:
        await client.close()
        proc.kill()
        proc.remove_data()
