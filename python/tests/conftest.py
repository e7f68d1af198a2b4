"""Real processes on loopback ports for the layer's tests: groupsvc and the
edge from the build (CHAT_BUILD_DIR), daphne with the example Django project,
and a minimal WebSocket client (RFC 6455 text frames, masked, as a browser's)."""

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("CHAT_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "django_chat"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child whose stderr and stdout lines are collected; killed at the end."""

    def __init__(self, args, env=None, cwd=None):
        self.args = args
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern, timeout=20.0, start=0):
        """The first match of `pattern` in a line from `start` on."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{self.args[0]}: no line matching {pattern!r}:\n"
                                         + "\n".join(self.lines[-40:]))
                self._cond.wait(min(left, 0.1))

    def wait_for_or_stop(self, pattern, timeout=20.0):
        try:
            return self.wait_for(pattern, timeout)
        except AssertionError:
            self.stop()
            raise

    def output(self):
        return "\n".join(self.lines)

    def stop(self, sig=None):
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Groupsvc:
    def __init__(self, port=None, flags=()):
        self.port = port or free_port()
        self.flags = list(flags)
        self.process = None
        self.start()

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.process = Process([str(BUILD / "groupsvc" / "groupsvc"), f"--listen={self.target}",
                                "--metrics_listen=", "--warmup=0s", *self.flags])
        self.process.wait_for_or_stop(" listening ")

    def restart(self):
        self.process.stop()
        self.start()

    def stop(self):
        self.process.stop()


class Edge:
    def __init__(self, groupsvc_target, edge_id="edge-py", flags=()):
        self.process = Process([str(BUILD / "edge" / "edge"), "--listen=127.0.0.1:0",
                                "--metrics_listen=", f"--groupsvc={groupsvc_target}",
                                f"--edge_id={edge_id}", *flags])
        self.port = int(self.process.wait_for_or_stop(r" listening .*? port=(\d+)").group(1))
        self.process.wait_for_or_stop("layer_up")

    def stop(self):
        self.process.stop()


class Daphne:
    """The example Django project on daphne, with our layer pointed at `target`."""

    def __init__(self, target, consumer="async"):
        self.port = free_port()
        # The project's database, removed with it (one per run, none left behind).
        self.db_dir = tempfile.mkdtemp(prefix="chat-django-")
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "CHAT_GROUPSVC": target,
            "CHAT_CONSUMER": consumer,
            "CHAT_DJANGO_DB": os.path.join(self.db_dir, "db.sqlite3"),
            "PYTHONPATH": str(EXAMPLE),
        })
        self.env = env
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                       cwd=EXAMPLE, env=env, check=True)
        self.process = Process([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                                str(self.port), "chatsite.asgi:application"], env=env, cwd=EXAMPLE)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.proc.poll() is not None or time.monotonic() > deadline:
                    self.process.stop()
                    raise AssertionError("daphne did not listen:\n" + self.process.output())
                time.sleep(0.05)

    def manage(self, *args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def stop(self):
        self.process.stop()
        shutil.rmtree(self.db_dir, ignore_errors=True)


class WsClient:
    """A browser-like WebSocket client: text frames only, masked."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port, path, origin=None, protocol=None):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        origin = origin or f"http://127.0.0.1:{port}"
        asks = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{asks}"
                      f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b"\r\n")[0]
        assert b" 101 " in status, f"upgrade refused: {status!r}"
        return cls(reader, writer)

    async def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        await self.writer.drain()

    async def send_json(self, obj):
        await self.send(json.dumps(obj))

    async def recv(self, timeout=5.0):
        async def read():
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            return b0 & 0x0F, payload

        while True:
            opcode, payload = await asyncio.wait_for(read(), timeout)
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x8:
                raise ConnectionError(f"closed: {payload[:2].hex()} {payload[2:]!r}")

    async def recv_json(self, timeout=5.0):
        return json.loads(await self.recv(timeout))

    def close(self):
        self.writer.close()


@contextlib.contextmanager
def sharded_groupsvc(count, flags=()):
    """`count` groupsvc shards on loopback ports; yields their addresses, in shard order."""
    ports = [free_port() for _ in range(count)]
    targets = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    try:
        for i, port in enumerate(ports):
            procs.append(Groupsvc(port=port, flags=[f"--shards={','.join(targets)}",
                                                    f"--shard_index={i}", *flags]))
        yield targets
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def groupsvc():
    g = Groupsvc()
    yield g
    g.stop()


@pytest.fixture
def make_layer():
    """Layers made by the test, closed at its end."""
    from channels_groupsvc import GroupsvcChannelLayer

    made = []

    def make(target, **config):
        layer = GroupsvcChannelLayer(target=target, **config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        if layer._link is not None:
            layer._link.close()
