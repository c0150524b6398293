"""A TCP proxy on loopback that a test can cut, to stage outages of real servers.

It forwards bytes unchanged between the client and the real server (PostgreSQL,
the S3 server). A test can drop every connection at once (`cut`), drop them
once the client has sent a number of bytes (`cut_after_upstream_bytes`, e.g.
mid-COPY), refuse new connections (`down`), stop carrying bytes on the open
ones while both ends stay connected (`freeze`: a link that drops packets, a
frozen server), or make HTTP responses claim a larger body than they carry
(`inflate_content_length_for`).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


ACCESS_DENIED_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                      b'<Message>Access Denied</Message></Error>')
ACCESS_DENIED = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(ACCESS_DENIED_BODY)).encode() + b"\r\n\r\n" + ACCESS_DENIED_BODY)


@dataclass
class Proxy:
    target_port: int
    port: int = 0
    cut_after_upstream_bytes: int | None = None
    freeze_after_upstream_bytes: int | None = None
    inflate_content_length_for: str | None = None
    """A path fragment: responses to requests for it claim 2 GiB and end early."""
    inflate_times: int | None = None
    """How many of those responses break (None: all); the later ones are carried whole."""
    drop_for: str | None = None
    """A request-head fragment: such requests are cut off unanswered, as by a server gone away."""
    refuse_for: str | None = None
    """A request-head fragment (a header's name): such requests get 403 AccessDenied from the proxy."""
    stall_body_for: str | None = None
    """A path fragment: responses to requests for it send their headers and a few bytes, then nothing more."""
    upstream_bytes: int = 0
    _listener: socket.socket | None = None
    _connections: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _accepting: bool = True
    _released: threading.Event = field(default_factory=threading.Event)
    _frozen: bool = False

    def start(self) -> Proxy:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._accepting:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            if self._frozen:
                continue  # connected, and silent
            state = {"inflate": False, "stall": False}
            threading.Thread(target=self._pipe, args=(client, upstream, True, state), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, state), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool, state: dict) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self._frozen:
                    self._released.wait()  # nothing more arrives either way; the sockets stay open
                    return
                if upstream:
                    self.upstream_bytes += len(data)
                    limit = self.cut_after_upstream_bytes
                    if limit is not None and self.upstream_bytes > limit:
                        self.cut()
                        return
                    if self.freeze_after_upstream_bytes is not None \
                            and self.upstream_bytes > self.freeze_after_upstream_bytes:
                        self.freeze()
                        self._released.wait()
                        return
                    if self.inflate_content_length_for and self.inflate_content_length_for.encode() in data:
                        with self._lock:
                            state["inflate"] = self.inflate_times is None or self.inflate_times > 0
                            if self.inflate_times:
                                self.inflate_times -= 1
                    if self.drop_for and self.drop_for.encode() in data:
                        break
                    if self.refuse_for and self.refuse_for.encode().lower() in data.lower():
                        sink = source  # answered here, never carried
                        sink.sendall(ACCESS_DENIED)
                        break
                    if self.stall_body_for and self.stall_body_for.encode() in data:
                        state["stall"] = True
                elif state["stall"] and b"\r\n\r\n" in data:
                    sink.sendall(data[:data.index(b"\r\n\r\n") + 4 + 10])
                    self._released.wait()  # a server that stops sending, but keeps the connection open
                    return
                elif state["inflate"] and b"\r\n\r\n" in data:
                    sink.sendall(re.sub(rb"(?i)content-length: *\d+", b"Content-Length: 2147483648", data))
                    break  # the body ends here, 2 GiB short of its claim
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)

    def freeze(self) -> None:
        """From now on carry nothing, on the open connections or on new ones, but close nothing: to both ends the
        link is up and silent, as when it drops packets or the server is frozen."""
        self._frozen = True

    def cut(self) -> None:
        """Drop every open connection, as a server restart does."""
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            _close(sock)

    def down(self) -> None:
        """Drop every connection and refuse new ones until `up()`."""
        self._accepting = False
        self.cut()

    def up(self) -> None:
        self._accepting = True
        self.cut_after_upstream_bytes = None

    def stop(self) -> None:
        self._released.set()
        self.down()
        if self._listener:
            self._listener.close()
