"""A TCP proxy on 127.0.0.1 that makes a local server behave like a far one, or like a broken one.

Put it in front of the local S3 server (``AWS_ENDPOINT_URL=proxy.url``) to add ``latency_ms`` to every request
(each chunk a client sends waits that long before it is forwarded), cap the bytes per second coming back, or
break the endpoint on purpose: ``hang()`` keeps accepting connections but answers nothing, ``stop()`` refuses
them. Used by the tests of failures and by the storage benchmark; no external service.
"""

from __future__ import annotations

import socket
import threading
import time


class Proxy:
    def __init__(self, target: str, latency_ms: float = 0.0, bytes_per_s: float = 0.0):
        host, _, port = target.removeprefix("http://").rstrip("/").partition(":")
        self.target = (host, int(port or 80))
        self.latency_ms, self.bytes_per_s = latency_ms, bytes_per_s
        self.requests = 0  # chunks sent upstream (an HTTP request is one)
        self.bytes_down = 0  # bytes sent back to the clients
        self._hung = threading.Event()
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hang(self) -> None:
        """From now on, accept and read but never answer (a hung endpoint)."""
        self._hung.set()

    def drop_connections(self) -> None:
        """Close every open connection and keep accepting new ones (what a server does to idle keep-alives)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def stop(self) -> None:
        """Close the port and every connection (a stopped endpoint: connections are refused)."""
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not on Linux
        except OSError:
            pass
        self._listener.close()
        self.drop_connections()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
            if self._hung.is_set():
                continue  # held open, never answered
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(server)
            for s in (client, server):  # forward each piece at once: the added latency is the only delay
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                while self._hung.is_set() and not self._closed.is_set():
                    time.sleep(0.05)  # swallow: nothing more gets through
                if upstream:
                    self.requests += 1
                    if self.latency_ms:
                        time.sleep(self.latency_ms / 1000)
                else:
                    self.bytes_down += len(data)
                    if self.bytes_per_s:
                        time.sleep(len(data) / self.bytes_per_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class ProxyProcess:
    """A :class:`Proxy` in a process of its own (``requests`` and ``bytes_down`` read through a pipe).

    The storage benchmark runs the S3 server and the proxy outside the loader's process: a real bucket is on
    other machines, and a server in the loader's process would take its interpreter lock as well as its CPU."""

    def __init__(self, target: str, latency_ms: float = 0.0, bytes_per_s: float = 0.0):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # a fork would copy the loader's threads and DALI state
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, target, latency_ms, bytes_per_s), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("the proxy process did not start within 60 s")
        self.url = self._conn.recv()
        self.pid = self._proc.pid

    def counts(self) -> tuple[int, int]:
        """(requests, bytes sent back) so far."""
        self._conn.send("counts")
        return self._conn.recv()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _serve(conn, target: str, latency_ms: float, bytes_per_s: float) -> None:
    with Proxy(target, latency_ms, bytes_per_s) as proxy:
        conn.send(proxy.url)
        while conn.recv() != "stop":
            conn.send((proxy.requests, proxy.bytes_down))
