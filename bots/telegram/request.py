"""python-telegram-bot's HTTP requests on aiohttp instead of httpx.

The product already runs on aiohttp; measured in ``bench/telegram.py``, one ``sendMessage``
through PTB's default ``HTTPXRequest`` cost about 2.2 ms of CPU here against about 1.0 ms through
aiohttp's client, and httpx/httpcore re-examine every pooled connection on every request, which
grows with the pool. This is PTB's documented extension point (``telegram.request.BaseRequest``,
``ApplicationBuilder.request``): PTB still builds every request and parses every answer.

Timeouts follow PTB's meaning: ``connect`` to open a connection, ``read`` to wait for the
answer (``None``: wait as long as it takes, for long polling PTB passes its own), ``pool`` to
wait for a free connection; aiohttp has no separate limit for sending a body (``write``).
"""

from __future__ import annotations

import asyncio

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    def __init__(self, *, connections: int = 8, read_timeout: float | None = 5.0,
                 connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 5.0) -> None:
        self.connections = connections
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | DefaultValue[float | None] | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | DefaultValue[float | None] | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | DefaultValue[float | None] | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | DefaultValue[float | None] | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (self._connect_timeout if isinstance(connect_timeout, DefaultValue)
                   else connect_timeout)
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        body: aiohttp.FormData | dict[str, str] | None = fields
        if files:
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mime_type) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime_type)
            body = form
        timeout = aiohttp.ClientTimeout(  # aiohttp has no write limit: a body is sent in one go
            total=None, connect=_sum(pool, connect), sock_connect=connect, sock_read=read)
        try:
            async with self._session.request(method, url, data=body,
                                             timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc
        except asyncio.CancelledError:
            raise


def _sum(first: float | None, second: float | None) -> float | None:
    """Both limits apply one after the other; no limit if either has none."""
    if first is None or second is None:
        return None
    return first + second
