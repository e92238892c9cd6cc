"""A lean HTTP/1.1 keep-alive GET client on asyncio streams, for the load benchmark.

The server and its load client share this machine's two cores, so what the client spends per
request is taken from the server: httpx spends about 2 ms of CPU per request here, this client
a fraction of that. It speaks only what the benchmark needs: GET on one persistent connection,
a Content-Length body, reconnecting when the server closes."""
from __future__ import annotations

import asyncio


class HTTPError(Exception):
    """The request did not get a complete answer (connection closed, malformed reply)."""


class Connection:
    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self._head = "".join(f"{name}: {value}\r\n" for name, value in
                             {"Host": f"{host}:{port}", **headers}.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        """(status, body) of GET `target` (path and query string, already encoded)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        try:
            self._writer.write(f"GET {target} HTTP/1.1\r\n{self._head}\r\n".encode("ascii"))
            head = await self._reader.readuntil(b"\r\n\r\n")
            status, length, close = _parse_head(head)
            body = await self._reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as error:
            await self.close()
            raise HTTPError(type(error).__name__) from error
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, whether the server closes) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = None, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            raise ValueError("chunked replies are not supported")
    if length is None:
        raise ValueError("reply without Content-Length")
    return status, length, close
