"""The process's link to groupsvc: one Attach stream per shard, on one thread.

grpc.aio objects belong to the event loop that made them (and grpc.aio keeps
one completion queue per process, which one loop must poll), while Django runs
each ``async_to_sync`` call in a loop of its own. So every link of the process
runs on one loop on a daemon thread (``_shared_loop``): the Attach streams, the
unary calls and the reconnects all run there, and callers on any loop reach it through
``Link.run`` (``run_coroutine_threadsafe``). Deliveries for this process's
channels leave the link through ``on_delivery``, called on its thread.

Per shard, as the C++ edge's GrpcLayer: a stream starts with the hello and the
replay of this process's memberships placed on that shard; commands queue and
leave batched, each acknowledged by request id; when the stream ends, pending
commands fail (UNAVAILABLE if never written, UNKNOWN if written: they may have
been carried out) and the link reconnects with capped exponential backoff and
jitter (0.1 s doubling to 0.5 s, times 0.5 to 1.0).
"""

import asyncio
import logging
import os
import random
import socket
import threading
import time

import grpc

from groupsvc.v1 import layer_pb2 as pb
from groupsvc.v1 import layer_pb2_grpc as pb_grpc

from .placement import channel_owners, group_owners

log = logging.getLogger("channels_groupsvc")

# Commands queued or awaiting an ack on one stream before more are refused.
MAX_PENDING = 10000
# Commands put into one stream message.
MAX_BATCH = 500
# How long a command may wait for its ack.
ACK_TIMEOUT = 10.0


class LinkError(Exception):
    """A command that failed; ``code`` is a grpc.StatusCode."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


_CODES = {c.value[0]: c for c in grpc.StatusCode}


_loop_lock = threading.Lock()
_loop = None


def _shared_loop():
    """The process's gRPC loop, started on first use; it lives as long as the process.

    Nobody waits for its thread to start: what is scheduled on it before then runs first.
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()

            def main():
                asyncio.set_event_loop(loop)
                loop.run_forever()

            threading.Thread(target=main, name="channels-groupsvc", daemon=True).start()
            _loop = loop
        return _loop


class _Shard:
    def __init__(self, index, target, credentials, options):
        self.index = index
        self.target = target
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self.channel = grpc.aio.secure_channel(target, credentials, options=options)
        self.stub = pb_grpc.ChannelLayerStub(self.channel)
        self.ready = False
        self.welcome = None
        self.queue = None  # Commands for the current stream; None while down.
        self.pending = {}  # request_id -> (future, written)
        self.next_id = 1
        self.task = None
        self.bridge_seen = -1  # The bridge count of the last Welcome; -1 before one.


class Link:
    def __init__(self, targets, client, on_delivery, on_welcome=None, credentials=None,
                 metadata=(), min_backoff=0.1, max_backoff=0.5):
        self.client = client
        self.prefix = client + "!"
        self.edge_id = f"py-{socket.gethostname()[:40]}-{os.getpid()}-{client[-6:]}"
        self._incarnation = os.urandom(16)
        self._targets = list(targets)
        self._credentials = credentials
        self._metadata = tuple(metadata)
        self._on_delivery = on_delivery
        self._on_welcome = on_welcome
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        # group -> {channel: Membership}; touched on the link's loop only.
        self.memberships = {}
        self.group_expiry = 86400.0
        self.shards = []
        self.bridge = 0
        self._loop = _shared_loop()
        self._closing = False
        # Not waited for: the caller (maybe an event loop) goes on at once. Whatever
        # is scheduled on the link's loop after this runs after it, in order.
        self.run_soon(self._start_shards())

    # ------------------------------------------------------------ the loop

    async def _start_shards(self):
        options = [
            ("grpc.keepalive_time_ms", 5000),
            ("grpc.keepalive_timeout_ms", 3000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", int(self._min_backoff * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(self._min_backoff * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(self._max_backoff * 1000)),
            ("grpc.max_receive_message_length", 64 << 20),
        ]
        self.shards = [_Shard(i, t, self._credentials, options) for i, t in enumerate(self._targets)]
        for shard in self.shards:
            shard.task = asyncio.ensure_future(self._keep_attached(shard))

    @property
    def closing(self):
        return self._closing

    def run(self, coro):
        """A future of `coro` run on the link's loop, awaitable from any loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def run_soon(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self):
        """Ends the streams (bounded: 5 s)."""
        if self._closing:
            return
        self._closing = True

        async def stop():
            tasks = [shard.task for shard in self.shards if shard.task]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for shard in self.shards:
                await shard.channel.close()
            await asyncio.sleep(0)  # Lets the calls' own tasks see the cancellation.

        try:
            self.run_soon(stop()).result(timeout=5)
        except Exception:  # noqa: BLE001 - closing: nothing more to do
            pass

    # ------------------------------------------------------------ placement

    @property
    def shard_count(self):
        return len(self._targets)

    # While groupsvc reshards (Welcome.bridge_shard_count): the rule of
    # chat::GroupOwners (placement.group_owners), as the C++ edge places.

    def _bridging(self, index):
        return self.shards[index].bridge_seen != 0

    def group_members(self, group, bridge=None):
        """The shards this process's memberships of `group` go to."""
        bridge = self.bridge if bridge is None else bridge
        return group_owners(group, self.shard_count, bridge, self._bridging).members

    def group_shard(self, group):
        """The shard a group_send to `group` goes to."""
        return group_owners(group, self.shard_count, self.bridge, self._bridging).send

    def channel_shard(self, channel):
        return channel_owners(channel, self.shard_count, self.bridge, self._bridging).send

    def _update_bridge(self):
        values = [s.bridge_seen for s in self.shards if 0 < s.bridge_seen < self.shard_count]
        bridge = max(values, default=0)
        previous, self.bridge = self.bridge, bridge
        if previous == bridge:
            return
        log.info("groupsvc_bridge from_shards=%d to_shards=%d", previous, bridge)
        for group, members in self.memberships.items():
            before, after = self.group_members(group, previous), self.group_members(group, bridge)
            for channel in members:
                for index in set(after) - set(before):
                    self._enqueue(index, self.join_command(group, channel))
                for index in set(before) - set(after):
                    self._enqueue(index, pb.Command(
                        group_discard=pb.GroupDiscardRequest(group=group, channel=channel)))

    def _enqueue(self, index, command):
        """A command nobody waits for; the next stream's replay covers it if this one is down."""
        shard = self.shards[index]
        if shard.queue is None:
            return
        command.request_id = shard.next_id
        shard.next_id += 1
        shard.queue.put_nowait(command)

    def ready(self, shard_index=None):
        """Whether any shard's stream is up, or the given shard's."""
        if shard_index is not None:
            return self.shards[shard_index].ready
        return any(s.ready for s in self.shards)

    async def wait_ready(self, timeout, shard_index=None):
        """Waits (bounded) until ready(shard_index); False when the time ran out."""
        deadline = time.monotonic() + timeout
        while not self.ready(shard_index):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # ------------------------------------------------------------ the stream

    def _replay(self, shard):
        now = time.monotonic()
        commands = []
        for group, members in list(self.memberships.items()):
            if shard.index not in self.group_members(group):
                continue
            for channel, membership in list(members.items()):
                if now - membership.added > self.group_expiry:
                    del members[channel]  # Lapsed in groupsvc as well.
                    continue
                commands.append(self.join_command(group, channel))
            if not members:
                del self.memberships[group]
        return commands

    async def _keep_attached(self, shard):
        failures = 0
        while not self._closing:
            try:
                code = await self._attach_once(shard)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not end the reconnects
                log.exception("groupsvc_stream_error target=%s", shard.target)
                code = grpc.StatusCode.UNKNOWN
            if shard.welcome is not None:
                failures = 0
            refused = code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT,
                               grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
            cap = 5.0 if refused else min(self._max_backoff, self._min_backoff * 2 ** failures)
            failures = min(failures + 1, 30)
            await asyncio.sleep(cap * random.uniform(0.5, 1.0))

    async def _attach_once(self, shard):
        """One stream, until it ends; its end's status code, or None when it was up."""
        queue = asyncio.Queue()
        hello = pb.EdgeMessage(
            hello=pb.Hello(edge_id=self.edge_id, channel_prefix=self.prefix,
                           incarnation=self._incarnation))
        for command in self._replay(shard):
            command.request_id = shard.next_id
            shard.next_id += 1
            hello.commands.append(command)
        shard.queue = queue
        shard.welcome = None
        was_up = False

        async def requests():
            yield hello
            while True:
                first = await queue.get()
                if first is None:  # The stream is over.
                    return
                message = pb.EdgeMessage()
                batch = [first]
                while len(batch) < MAX_BATCH and not queue.empty():
                    command = queue.get_nowait()
                    if command is None:
                        queue.put_nowait(None)
                        break
                    batch.append(command)
                live = []
                for command in batch:
                    entry = shard.pending.get(command.request_id)
                    if entry is not None:
                        if entry[0].done():  # Timed out: its caller was told it failed.
                            shard.pending.pop(command.request_id, None)
                            continue
                        shard.pending[command.request_id] = (entry[0], True)
                    live.append(command)
                if live:
                    message.commands.extend(live)
                    yield message

        code = None
        call = shard.stub.Attach(requests(), metadata=self._metadata, wait_for_ready=True)
        try:
            async for message in call:
                if message.HasField("welcome"):
                    welcome = message.welcome
                    count = max(1, welcome.shard_count)
                    if (count != self.shard_count and welcome.bridge_shard_count != self.shard_count) \
                            or welcome.shard_index != shard.index:
                        # Commands placed by our list would reach a shard that
                        # places them elsewhere: stay unready, senders are told.
                        log.error("groupsvc_shard_mismatch target=%s groupsvc_shard=%d/%d "
                                  "expected=%d/%d hint=CONFIG targets must list groupsvc's "
                                  "--shards, in the same order", shard.target,
                                  welcome.shard_index, count, shard.index, self.shard_count)
                        continue
                    shard.welcome = welcome
                    shard.bridge_seen = welcome.bridge_shard_count
                    self._update_bridge()
                    shard.ready = True
                    was_up = True
                    log.info("groupsvc_up target=%s edge=%s prefix=%s", shard.target,
                             self.edge_id, self.prefix)
                    if self._on_welcome:
                        try:
                            self._on_welcome(welcome)
                        except Exception:  # noqa: BLE001 - e.g. -W error on the warning
                            log.exception("channels_groupsvc: on_welcome failed")
                if message.HasField("draining"):
                    shard.ready = False
                for ack in message.acks:
                    entry = shard.pending.pop(ack.request_id, None)
                    if entry is not None and not entry[0].done():
                        entry[0].set_result(ack)
                for delivery in message.deliveries:
                    if delivery.offset and not delivery.epoch and shard.welcome is not None:
                        # Numbered under the shard's epoch (Delivery.epoch).
                        delivery.epoch = shard.welcome.history_epoch
                    self._on_delivery(delivery)
        except grpc.aio.AioRpcError as e:
            code = e.code()
            if code not in (grpc.StatusCode.CANCELLED,):
                log.warning("groupsvc_down target=%s code=%s error=%s", shard.target, code.name,
                            e.details())
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            shard.ready = False
            shard.queue = None
            queue.put_nowait(None)
            pending, shard.pending = shard.pending, {}
            for future, written in pending.values():
                if future.done():
                    continue
                if written:
                    future.set_exception(LinkError(
                        grpc.StatusCode.UNKNOWN,
                        "the link to groupsvc was lost before it confirmed the command; "
                        "it may have been done"))
                else:
                    future.set_exception(LinkError(grpc.StatusCode.UNAVAILABLE,
                                                   "groupsvc is unavailable"))
        return None if was_up and code is None else code

    async def command(self, shard_index, command, require_ready=True):
        """Sends one command on the shard's stream; its Ack (code checked by the caller)."""
        shard = self.shards[shard_index]
        if shard.queue is None or (require_ready and not shard.ready):
            raise LinkError(grpc.StatusCode.UNAVAILABLE,
                            f"groupsvc is unavailable (shard {shard_index}, {shard.target})")
        if len(shard.pending) + shard.queue.qsize() >= MAX_PENDING:
            raise LinkError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many commands waiting for groupsvc")
        command.request_id = shard.next_id
        shard.next_id += 1
        future = self._loop.create_future()
        shard.pending[command.request_id] = (future, False)
        shard.queue.put_nowait(command)
        try:
            return await asyncio.wait_for(asyncio.shield(future), ACK_TIMEOUT)
        except asyncio.TimeoutError:
            # Left in pending, done: the stream skips it if it is still queued.
            if not future.done():
                future.cancel()
            raise LinkError(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"groupsvc did not confirm the command within {ACK_TIMEOUT} s")

    def join_command(self, group, channel):
        """A group_add of `channel`, with the user and presence wish of its latest group_add."""
        request = pb.GroupAddRequest(group=group, channel=channel)
        membership = self.memberships.get(group, {}).get(channel)
        if membership is not None:
            membership.fill(request)
        return pb.Command(group_add=request)

    def note_membership(self, group, channel, added, who=None, positions=False):
        if added:
            self.memberships.setdefault(group, {})[channel] = Membership(who, positions)
        else:
            members = self.memberships.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self.memberships[group]

    def positions(self, group, channel):
        """Whether `channel` asked for `group`'s positions (on the link's loop)."""
        membership = self.memberships.get(group, {}).get(channel)
        return membership is not None and membership.positions


class Membership:
    """One of this process's memberships, as its latest group_add gave it: replayed by
    each shard's next stream, dropped once it lapses (group_expiry) or is discarded."""

    __slots__ = ("added", "who", "positions")

    def __init__(self, who, positions):
        self.added = time.monotonic()
        self.who = who  # (user id, name, watch presence), or None.
        self.positions = positions

    def fill(self, request):
        if self.who is not None:
            user_id, name, watch = self.who
            if user_id:
                request.user.id, request.user.name = user_id, name
            request.watch_presence = watch


def status_code(value):
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)
