"""aiohttp-based networking backend for python-telegram-bot.

PTB's default :class:`~telegram.request.HTTPXRequest` costs roughly 6 ms of CPU per update
(~170 updates/s on one core). A :class:`~telegram.request.BaseRequest` running on a shared
:class:`aiohttp.ClientSession` measured 1,160-1,370 updates/s, so this module provides
:class:`AiohttpRequest`, a drop-in replacement that behaves like ``HTTPXRequest``:

* same constructor defaults and timeout semantics (``DEFAULT_NONE`` -> instance defaults,
  ``media_write_timeout`` for uploads);
* same request bodies (url-encoded form for plain calls, ``multipart/form-data`` with the
  JSON-encoded parameters as fields plus the files for uploads);
* same exceptions: ``do_request`` returns ``(status, body)`` so that
  :meth:`BaseRequest._request_wrapper` derives ``RetryAfter``/``Forbidden``/``BadRequest``/...
  exactly as for httpx; transport failures become :class:`~telegram.error.TimedOut` or
  :class:`~telegram.error.NetworkError`.

:func:`build_request` picks a backend by name for ``ApplicationBuilder().request(...)`` and
``.get_updates_request(...)`` (each needs its own instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import IO, Any

import aiohttp
import aiohttp.payload
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from yarl import URL

__all__ = ["REQUEST_BACKENDS", "AiohttpRequest", "SharedSession", "build_request"]

REQUEST_BACKENDS = ("aiohttp", "httpx")

# Same text as HTTPXRequest uses for httpx.PoolTimeout, so callers can match on it.
_POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)

# httpx streams file handles in chunks of this size; we do the same.
_FILE_CHUNK_SIZE = 64 * 1024

# httpx escapes multipart parameter values the HTML5 way: '"' -> %22 and control characters
# (except ESC) -> %XX. Backslashes are doubled by aiohttp itself when quote_fields=False, which
# matches httpx. aiohttp would reject CR/LF in a filename outright, so this also avoids that.
_HTML5_ESCAPES = {'"': "%22"} | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
_HTML5_ESCAPE_RE = re.compile("|".join(re.escape(c) for c in _HTML5_ESCAPES))


def _escape_filename(filename: str) -> str:
    return _HTML5_ESCAPE_RE.sub(lambda m: _HTML5_ESCAPES[m.group(0)], filename)


async def _iter_file(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """Stream a file handle like httpx does: rewind if possible, read 64 KiB chunks.

    Going through an async iterator (instead of handing the handle to aiohttp) keeps aiohttp
    from closing the caller's handle after the upload, which httpx never does either.
    """
    if hasattr(handle, "seek"):
        with contextlib.suppress(OSError):  # io.UnsupportedOperation is an OSError
            handle.seek(0)
    while chunk := handle.read(_FILE_CHUNK_SIZE):
        yield chunk


class SharedSession:
    """One :class:`aiohttp.ClientSession` for several :class:`AiohttpRequest` instances.

    The session is created by the first :meth:`acquire` (aiohttp sessions must be created in
    a running event loop) and closed when the last user releases it, so PTB's own
    initialise/shutdown calls on each request object keep working. The connector has no
    limit of its own: each request object bounds its requests with its own pool, so a busy
    pool (bulk sends) never takes connections from another (answers to presses).
    """

    __slots__ = ("_session", "_users")

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._users: set[int] = set()  # id() of the request objects holding the session

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The open session, if any user holds it."""
        return self._session

    async def acquire(self, user: object) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                # Passed per request in do_request(); this default is never used.
                timeout=aiohttp.ClientTimeout(),
            )
            self._users.clear()  # whoever held a closed session holds nothing now
        self._users.add(id(user))
        return self._session

    async def release(self, user: object) -> None:
        self._users.discard(id(user))
        session = self._session
        if not self._users and session is not None:
            self._session = None
            await session.close()


class _WriteWatch:
    """httpx's write timeout for uploads: the time one chunk of the body may take to go
    out. aiohttp has no such timeout, so the body's chunks re-arm an asyncio timeout as they
    are written, and the end of a file gives the rest of the request (the closing boundary)
    and the server's answer ``write + read`` seconds; once the answer's headers are in,
    aiohttp's read timeout alone applies."""

    __slots__ = ("_loop", "_read", "_write", "timeout")

    def __init__(self, write: float, read: float | None) -> None:
        self._write = write
        self._read = read
        self._loop = asyncio.get_running_loop()
        self.timeout: asyncio.Timeout | None = None

    def _arm(self, seconds: float | None) -> None:
        if self.timeout is not None and not self.timeout.expired():
            self.timeout.reschedule(None if seconds is None else self._loop.time() + seconds)

    def progress(self) -> None:
        self._arm(self._write)

    def finished(self) -> None:
        self._arm(None if self._read is None else self._write + self._read)

    def answered(self) -> None:
        self._arm(None)


async def _watched(chunks: AsyncIterator[bytes], watch: _WriteWatch | None) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if watch is not None:
            watch.progress()
        yield chunk
    if watch is not None:
        watch.finished()


class _WatchedBytes(aiohttp.payload.Payload):
    """File bytes written in 64 KiB chunks under the write watch, with their length known
    (so the request keeps a Content-Length, as with httpx)."""

    _value: bytes

    def __init__(self, value: bytes, watch: _WriteWatch | None, **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        self._size = len(value)
        self._watch = watch

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), _FILE_CHUNK_SIZE):
            if self._watch is not None:
                self._watch.progress()
            await writer.write(view[start : start + _FILE_CHUNK_SIZE])
        if self._watch is not None:
            self._watch.finished()


def _file_body(content: bytes | IO[bytes], mimetype: str, watch: _WriteWatch | None) -> Any:
    """What aiohttp sends for a file: bytes with their length, handles in 64 KiB chunks;
    both under the write watch."""
    if isinstance(content, bytes):
        return _WatchedBytes(content, watch, content_type=mimetype)
    return _watched(_iter_file(content), watch)


def _resolve(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    """:class:`telegram.request.BaseRequest` implementation on top of :mod:`aiohttp`.

    Args:
        connection_pool_size: Maximum number of concurrent requests (= connections) made
            through this instance. Requests beyond that wait up to ``pool_timeout`` for a free
            slot and then fail with :class:`~telegram.error.TimedOut` ("Pool timeout: ...").
        read_timeout: Default maximum time to wait for (each chunk of) the response once the
            request has been sent. ``None`` waits forever.
        write_timeout: Default budget for sending a request body (see below).
        connect_timeout: Default maximum time to establish a connection.
        pool_timeout: Default maximum time to wait for a free connection slot.
        media_write_timeout: Like ``write_timeout`` but used for requests that upload files
            when the caller did not pass an explicit ``write_timeout``.
        session: An externally owned :class:`aiohttp.ClientSession` to share. It is used as is
            (its connector limits apply on top of ``connection_pool_size``) and is never closed
            by :meth:`shutdown`. Or a :class:`SharedSession`: the instances built on it send
            through one session, which the last of them to shut down closes.
        proxy: Optional HTTP(S) proxy URL passed to every request. Without it, like httpx,
            the ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` environment variables apply: read
            once per host (aiohttp's own ``trust_env`` would look them up, and ``~/.netrc``,
            on a worker thread for every request).

    Timeout mapping (aiohttp has no per-socket-write timeout):

    * ``pool_timeout`` bounds the wait on our own per-instance slot semaphore, so pool
      exhaustion is reported exactly like httpx's ``PoolTimeout``;
    * ``connect_timeout`` -> ``ClientTimeout.connect`` and ``sock_connect``;
    * ``read_timeout`` -> ``ClientTimeout.sock_read`` (aiohttp arms it once the body is sent
      and re-arms it on every received chunk, i.e. httpx's read timeout);
    * uploads: ``media_write_timeout`` (or an explicit ``write_timeout``) bounds each 64 KiB
      chunk of the body, as httpx bounds each socket write: a stalled upload fails after it,
      a slow one that keeps moving does not;
    * other requests with a body (small forms, sent in one write) get an overall ceiling
      ``ClientTimeout.total = connect + write + read`` (no ceiling if any of them is
      ``None``). Body-less requests (e.g. file downloads via ``retrieve``) get no ceiling, so
      long downloads that keep making progress behave like with httpx.

    Note: ``connection_pool_size`` defaults to 1 here, whereas ``HTTPXRequest`` defaults to 256
    since PTB 22.4; :func:`build_request` always passes an explicit size.
    """

    __slots__ = (
        "_connect_timeout",
        "_env_proxies",
        "_media_write_timeout",
        "_pool",
        "_pool_size",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_session",
        "_shared_session",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 1,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        session: aiohttp.ClientSession | SharedSession | None = None,
        proxy: str | None = None,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("`connection_pool_size` must be a positive integer!")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        self._shared_session = session
        # Set by initialize(), cleared by shutdown(). Our own session is created lazily because
        # aiohttp sessions must be created inside a running event loop.
        self._session: aiohttp.ClientSession | None = None
        self._pool = asyncio.Semaphore(connection_pool_size)
        self._env_proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    @property
    def read_timeout(self) -> float | None:
        """See :attr:`BaseRequest.read_timeout`: the default read timeout of this instance."""
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        """Maximum number of concurrent requests made through this instance."""
        return self._pool_size

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use (``None`` before :meth:`initialize` / after :meth:`shutdown`)."""
        return self._session

    @property
    def is_initialized(self) -> bool:
        return self._session is not None and not self._session.closed

    async def initialize(self) -> None:
        """See :meth:`BaseRequest.initialize`. Creates the owned session; idempotent."""
        if self.is_initialized:
            return
        # A fresh semaphore per session: a semaphore binds to the loop of its first waiter.
        self._pool = asyncio.Semaphore(self._pool_size)
        self._env_proxies = {}  # the environment is read again, as httpx does per client
        if isinstance(self._shared_session, SharedSession):
            self._session = await self._shared_session.acquire(self)
            return
        if self._shared_session is not None:
            # If its owner already closed it, do_request() keeps refusing to run.
            self._session = self._shared_session
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size),
            # Passed per request in do_request(); this default is never used.
            timeout=aiohttp.ClientTimeout(),
        )

    async def shutdown(self) -> None:
        """See :meth:`BaseRequest.shutdown`. Closes the owned session only; idempotent."""
        session, self._session = self._session, None
        if session is None:
            return
        if isinstance(self._shared_session, SharedSession):
            await self._shared_session.release(self)
            return
        if session is self._shared_session or session.closed:
            return
        await session.close()

    def _timeout(
        self,
        request_data: RequestData | None,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
    ) -> aiohttp.ClientTimeout:
        read = _resolve(read_timeout, self._read_timeout)
        connect = _resolve(connect_timeout, self._connect_timeout)
        total = None
        if request_data is not None and (
            request_data.contains_files or request_data.json_parameters
        ):
            # Same default selection as HTTPXRequest: uploads get media_write_timeout.
            write = _resolve(
                write_timeout,
                self._media_write_timeout if request_data.contains_files else self._write_timeout,
            )
            # Uploads have no ceiling: _WriteWatch bounds each chunk instead, like httpx.
            uploads = request_data.contains_files
            if not uploads and read is not None and write is not None and connect is not None:
                total = connect + write + read
        return aiohttp.ClientTimeout(
            total=total, connect=connect, sock_connect=connect, sock_read=read
        )

    def _proxy_for(self, url: str) -> tuple[URL | str | None, aiohttp.BasicAuth | None]:
        """The explicit proxy, else the environment's for this URL's origin (cached)."""
        if self._proxy is not None:
            return self._proxy, None
        origin = url[: url.find("/", url.find("//") + 2)] if "//" in url else url
        found = self._env_proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(URL(url))
            except LookupError:  # no proxy variable for this scheme, or NO_PROXY matches
                found = (None, None)
            self._env_proxies[origin] = found
        return found

    @staticmethod
    def _body(
        request_data: RequestData | None, watch: _WriteWatch | None = None
    ) -> tuple[Any, dict[str, str]]:
        """Return ``(data, extra_headers)`` for aiohttp, mirroring what httpx sends."""
        if request_data is None:
            return None, {}
        if request_data.contains_files:
            # multipart/form-data: first the JSON-encoded parameters, then the files (httpx's
            # order). quote_fields=False sends UTF-8 file names verbatim, like httpx does.
            form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
            for name, value in request_data.json_parameters.items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in request_data.multipart_data.items():
                form.add_field(
                    name,
                    _file_body(content, mimetype, watch),
                    filename=_escape_filename(filename),
                    content_type=mimetype,
                )
            return form, {}
        parameters = request_data.json_parameters
        if not parameters:
            # httpx sends no body (and no Content-Type) for an empty form.
            return None, {}
        return (
            request_data.url_encoded_parameters().encode("ascii"),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`BaseRequest.do_request`."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")

        timeout = self._timeout(request_data, read_timeout, write_timeout, connect_timeout)
        proxy, proxy_auth = self._proxy_for(url)
        watch = None
        if request_data is not None and request_data.contains_files:
            write = _resolve(write_timeout, self._media_write_timeout)
            read = _resolve(read_timeout, self._read_timeout)
            watch = _WriteWatch(write, read) if write is not None else None
        data, headers = self._body(request_data, watch)
        headers["User-Agent"] = self.USER_AGENT

        pool = self._pool
        if pool.locked():
            try:
                async with asyncio.timeout(_resolve(pool_timeout, self._pool_timeout)):
                    await pool.acquire()
            except TimeoutError as err:
                raise TimedOut(message=_POOL_TIMEOUT_MESSAGE) from err
        else:
            await pool.acquire()

        exchange = session.request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=timeout,
            proxy=proxy,
            proxy_auth=proxy_auth,
            # httpx does not follow redirects by default.
            allow_redirects=False,
        )
        try:
            if watch is None:
                async with exchange as response:
                    return response.status, await response.read()
            async with asyncio.timeout(None) as stalled:
                watch.timeout = stalled
                async with exchange as response:
                    watch.answered()
                    return response.status, await response.read()
        # TimeoutError first: asyncio/aiohttp timeouts (ServerTimeoutError,
        # ConnectionTimeoutError, SocketTimeoutError) are also OSError / ClientError.
        except TimeoutError as err:
            raise TimedOut from err
        except (aiohttp.ClientError, OSError) as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            pool.release()


def build_request(
    backend: str = "aiohttp",
    *,
    pool_size: int,
    read_timeout: float | None = None,
    shared: SharedSession | None = None,
) -> BaseRequest:
    """Create a PTB request object for ``backend`` ("aiohttp" or "httpx").

    ``read_timeout=None`` keeps the backend's default (5 s); all other timeouts use the
    HTTPXRequest defaults. Use one instance per purpose: ``ApplicationBuilder().request(...)``
    and ``.get_updates_request(...)`` must not share an object (pool size 1 is enough for the
    latter). On aiohttp, instances given the same ``shared`` send through one session; httpx
    keeps a client per instance, as python-telegram-bot does.
    """
    name = backend.strip().lower()
    if pool_size < 1:
        raise ValueError("pool_size must be a positive integer")
    kwargs: dict[str, Any] = {"connection_pool_size": pool_size}
    if read_timeout is not None:
        kwargs["read_timeout"] = read_timeout
    if name == "aiohttp":
        return AiohttpRequest(session=shared, **kwargs)
    if name == "httpx":
        return HTTPXRequest(**kwargs)
    raise ValueError(
        f"Unknown request backend {backend!r}; expected one of {', '.join(REQUEST_BACKENDS)}"
    )
