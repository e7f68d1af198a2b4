"""GroupsvcChannelLayer: Django Channels' channel layer, served by groupsvc.

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_groupsvc.GroupsvcChannelLayer",
            "CONFIG": {"target": "127.0.0.1:50051"},
        }
    }

One layer object attaches its process to groupsvc like a C++ edge: one Attach
stream per shard (link.py), its own client part in every channel name it
makes (``new_channel()`` gives ``specific.<client>!<random>``), so events for
those channels are pushed to the process, not polled. Channels without '!'
(queued in groupsvc) are read with the unary Receive.

Any event loop may call it (``async_to_sync`` makes a loop per call): the
gRPC work runs on the link's own loop; a ``receive`` waits on a future of the
caller's loop, and an event handed to a receive that is cancelled meanwhile
goes back to the front of its channel's buffer, so no event is lost.
"""

import asyncio
import collections
import datetime
import logging
import random
import re
import threading
import time
import uuid
import warnings

import grpc
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from groupsvc.v1 import layer_pb2 as pb

from . import codec
from .errors import GroupsvcRefused, GroupsvcUnavailable, NotDeliveredToEveryone
from .link import Link, LinkError, status_code
from .placement import owner_key
from .rooms import RoomQueries
from .tokens import identity

log = logging.getLogger("channels_groupsvc")

_STRICT_CHANNEL = re.compile(r"[A-Za-z0-9._-]+(![A-Za-z0-9._-]*)?")
_STRICT_GROUP = re.compile(r"[A-Za-z0-9._-]+")


class GroupsvcChannelLayer(RoomQueries, BaseChannelLayer):
    extensions = ["groups", "flush", *RoomQueries.room_extensions]

    def __init__(self, target=None, targets=None, expiry=60, group_expiry=86400, capacity=100,
                 channel_capacity=None, token=None, tls=None, unsettled="warn",
                 receive_timeout=5.0, **unknown):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if unknown:
            warnings.warn(f"channels_groupsvc: CONFIG keys not used: {sorted(unknown)}",
                          stacklevel=2)
        if targets is None:
            targets = [target or "127.0.0.1:50051"]
        elif isinstance(targets, str):
            targets = [t for t in targets.split(",") if t]
        if not targets:
            raise ValueError("channels_groupsvc: CONFIG needs target (HOST:PORT) or targets (a list)")
        if unsettled not in ("warn", "raise"):
            raise ValueError('channels_groupsvc: CONFIG unsettled must be "warn" or "raise"')
        self.targets = list(targets)
        self.group_expiry = group_expiry
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.unsettled = unsettled
        self.receive_timeout = receive_timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._credentials = _credentials(tls)
        self.client_prefix = uuid.uuid4().hex[:16]
        self._link = None
        self._link_lock = threading.Lock()
        # Per channel: events not yet received, and the receives waiting.
        self._lock = threading.Lock()
        self._buffers = collections.defaultdict(collections.deque)
        self._waiters = collections.defaultdict(collections.deque)
        self._pollers = set()
        self._compared = False
        self.dropped = 0

    # ------------------------------------------------------------ the link

    @property
    def link(self):
        with self._link_lock:
            if self._link is None:
                self._link = Link(self.targets, self.client_prefix, self._on_delivery,
                                  on_welcome=self._on_welcome, credentials=self._credentials,
                                  metadata=self._metadata)
                self._link.group_expiry = self.group_expiry
            return self._link

    def _on_welcome(self, welcome):
        if self._compared:
            return
        self._compared = True
        ours = {"capacity": self.capacity, "expiry": self.expiry, "group_expiry": self.group_expiry}
        theirs = {"capacity": welcome.capacity, "expiry": welcome.expiry_seconds,
                  "group_expiry": welcome.group_expiry_seconds}
        for key, value in ours.items():
            if theirs[key] and float(theirs[key]) != float(value):
                message = (f"channels_groupsvc: CONFIG {key}={value} but groupsvc enforces "
                           f"{key}={theirs[key]} (its --{key} flag): groupsvc's value applies")
                log.warning(message)
                warnings.warn(message, RuntimeWarning)
        if self.channel_capacity:
            log.warning("channels_groupsvc: CONFIG channel_capacity applies to this process's "
                        "buffers; queued channels follow groupsvc's --capacity_overrides")

    async def _ready_link(self, shard=None):
        """The link, once a shard's stream is up (the given shard's, if any), or after 2 s."""
        link = self.link
        await link.run(link.wait_ready(2.0, shard))
        return link

    async def _command(self, shard, command, require_ready=True):
        link = await self._ready_link(shard if require_ready else None)
        try:
            ack = await link.run(link.command(shard, command, require_ready))
        except LinkError as e:
            # Our own backlog toward groupsvc, not a full channel.
            raise GroupsvcUnavailable(str(e)) from None
        if ack.code != 0:
            code = status_code(ack.code)
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and command.HasField("send"):
                raise ChannelFull(ack.message)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise TypeError(ack.message)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
                raise GroupsvcUnavailable(ack.message)
            raise GroupsvcRefused(code, ack.message)
        return ack

    # ------------------------------------------------------------ names

    def _check_channel(self, name):
        self.valid_channel_name(name)
        if not _STRICT_CHANNEL.fullmatch(name):
            raise TypeError(self.invalid_name_error.format("Channel", name))

    def _check_group(self, name):
        self.valid_group_name(name)
        if not _STRICT_GROUP.fullmatch(name):
            raise TypeError(self.invalid_name_error.format("Group", name))

    def _is_mine(self, channel):
        return owner_key(channel) == self.client_prefix + "!"

    @staticmethod
    def _wire(message):
        assert isinstance(message, dict), "message is not a dict"
        assert "type" in message, "message does not have a type"
        return pb.WireEvent(type=str(message["type"]), json=codec.encode(message))

    # ------------------------------------------------------------ the interface

    async def send(self, channel, message):
        self._check_channel(channel)
        event = self._wire(message)
        if self._is_mine(channel):
            # Our own channel: straight into its buffer, as groupsvc would deliver it.
            if not self._dispatch(channel, codec.decode(event.json)):
                raise ChannelFull(channel)
            return
        link = self.link
        await self._command(link.channel_shard(channel),
                            pb.Command(send=pb.StreamSend(channel=channel, event=event)))

    async def group_add(self, group, channel, *, user=None, presence=False, positions=False):
        """Channels' group_add. Extensions: ``user`` (a Django user, or a dict with "id" and
        "name") lists the channel's user in ``group_presence``; ``presence=True`` sends the
        channel ``presence.join`` and ``presence.leave`` events as users come and go;
        ``positions=True`` (this process's channels) adds ``group_offset`` and ``group_epoch``
        to the group's events it receives: their place in the group's history, from which
        ``group_history`` recovers after a reconnect."""
        await self._membership(group, channel, True, _who(user, presence), positions)

    async def group_discard(self, group, channel):
        await self._membership(group, channel, False)

    async def _membership(self, group, channel, add, who=None, positions=False):
        self._check_group(group)
        self._check_channel(channel)
        link = self.link
        mine = self._is_mine(channel)
        if mine:
            # Ours: replayed by each shard's next stream (a discard: not replayed).
            await link.run(_noted(link, group, channel, add, who, positions))
        if add:
            request = pb.Command(group_add=pb.GroupAddRequest(group=group, channel=channel))
            if who is not None:
                if who[0]:
                    request.group_add.user.id, request.group_add.user.name = who[0], who[1]
                request.group_add.watch_presence = who[2]
        else:
            request = pb.Command(group_discard=pb.GroupDiscardRequest(group=group, channel=channel))
        shards = await link.run(_members(link, group))
        for i, shard in enumerate(shards):
            command = pb.Command()
            command.CopyFrom(request)
            try:
                await self._command(shard, command, require_ready=not mine)
            except (GroupsvcUnavailable, RuntimeError) as e:
                if i > 0:
                    continue  # The bridged owner, while resharding: best effort.
                if mine and isinstance(e, GroupsvcUnavailable):
                    continue  # Ours: the next stream replays it (a discard: drops it).
                raise

    async def group_send(self, group, message):
        self._check_group(group)
        event = self._wire(message)
        link = self.link
        ack = await self._command(link.group_shard(group),
                                  pb.Command(group_send=pb.StreamGroupSend(group=group, event=event)))
        if ack.dropped:
            log.info("group_send group=%s dropped=%d (full or gone members)", group, ack.dropped)
        if ack.unsettled:
            text = (f"group_send to {group!r}: groupsvc cannot see every member right now (it "
                    "restarted, or an edge was lost, moments ago); it may not have reached everyone")
            if self.unsettled == "raise":
                raise NotDeliveredToEveryone(text)
            log.warning(text)

    async def new_channel(self, prefix="specific"):
        # Attached first (bounded), so that events sent to the name find its owner.
        await self._ready_link()
        return f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex}"

    async def receive(self, channel):
        self._check_channel(channel)
        if "!" in channel:
            assert self._is_mine(channel), "Wrong client prefix"
        while True:
            received, event = await self._next(channel)
            # Past `expiry` in our buffer: dropped, as groupsvc would have.
            if time.monotonic() - received <= self.expiry:
                return event
            with self._lock:
                self.dropped += 1

    async def _next(self, channel):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            buffer = self._buffers.get(channel)
            if buffer:
                item = buffer.popleft()
                if not buffer:
                    del self._buffers[channel]
                return item
            waiter = (loop, future)
            self._waiters[channel].append(waiter)
            # A queued channel: its sends wait on its shard, a group_send's copies on
            # the group's (any shard), so each shard is asked.
            poll = [] if "!" in channel else [
                i for i in range(len(self.targets)) if (channel, i) not in self._pollers]
            self._pollers.update((channel, i) for i in poll)
        if poll:
            link = self.link
            for index in poll:
                link.run_soon(self._poll(link, channel, index))
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                if future.done() and not future.cancelled():
                    # Handed to us as we were cancelled: the next receive gets it.
                    self._buffers[channel].appendleft(future.result())
                else:
                    try:
                        self._waiters[channel].remove(waiter)
                    except ValueError:
                        pass
                if not self._waiters.get(channel):
                    self._waiters.pop(channel, None)
                    # A Receive in flight is left to finish (cancelling it could
                    # lose the event groupsvc is handing over): what it brings
                    # waits in this process's buffer for the next receive.
            raise

    async def flush(self):
        link = await self._ready_link()
        await link.run(_unary(link, "Flush", pb.FlushRequest(), self._metadata))
        with self._lock:
            self._buffers.clear()
        await link.run(_forget_all(link))

    # ------------------------------------------------------------ users (operators)
    # groupsvc's operator calls, for Django admin actions: they need a token
    # with the "admin" scope (CONFIG "token") and reach the users' WebSockets
    # on every edge, whichever shard holds them.

    async def get_user(self, user_id):
        """The user's WebSockets, oldest first: dicts of channel, edge_id, room and since
        (a UTC datetime); [] when the user is not connected."""
        response = await self._admin("GetUser", pb.GetUserRequest(user_id=user_id))
        return [{"channel": c.channel, "edge_id": c.edge_id, "room": c.room,
                 "since": c.since.ToDatetime(tzinfo=datetime.timezone.utc)}
                for c in response.connections]

    async def disconnect_user(self, user_id, code=0, reason=""):
        """Closes every WebSocket of the user on every edge with ``code`` (4000 to 4999;
        0: 4010) and ``reason``; returns how many it closed."""
        response = await self._admin("Disconnect", pb.DisconnectRequest(
            user_id=user_id, code=code, reason=reason))
        return response.connections

    async def remove_from_group(self, user_id, group, code=0, reason=""):
        """Closes the user's WebSockets that are in ``group`` (0: code 4011); its other
        rooms stay open. Returns how many edges were told."""
        self._check_group(group)
        response = await self._admin("RemoveFromGroup", pb.RemoveFromGroupRequest(
            user_id=user_id, group=group, code=code, reason=reason))
        return response.edges

    async def _admin(self, method, request):
        link = await self._ready_link()
        try:
            return await link.run(_unary(link, method, request, self._metadata))
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(f"groupsvc {method}: {e.details()}") from None
            if e.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise PermissionError(f"groupsvc {method}: {e.details()}") from None
            raise GroupsvcUnavailable(f"groupsvc {method}: {e.details()}") from e

    async def close(self):
        with self._link_lock:
            link, self._link = self._link, None
        if link is not None:
            await asyncio.get_running_loop().run_in_executor(None, link.close)

    # ------------------------------------------------------------ deliveries

    def _on_delivery(self, delivery):
        """On the link's thread: one groupsvc delivery for some of our channels."""
        link = self._link
        try:
            event = codec.decode(delivery.event.json)
        except ValueError:
            log.warning("channels_groupsvc: an event that is not JSON was dropped")
            return
        positioned = None
        if delivery.offset:
            positioned = dict(event, group_offset=delivery.offset, group_epoch=delivery.epoch)
        for channel in delivery.channels:
            if (positioned is not None and link is not None
                    and link.positions(delivery.group, channel)):
                self._dispatch(channel, dict(positioned))
            else:
                self._dispatch(channel, event if len(delivery.channels) == 1 else dict(event))

    def _dispatch(self, channel, event):
        """False when the channel's buffer is full (the event is dropped)."""
        item = (time.monotonic(), event)
        with self._lock:
            return self._hand_locked(channel, item)

    def _hand_locked(self, channel, item):
        waiters = self._waiters.get(channel)
        while waiters:
            loop, future = waiters.popleft()
            if future.done() or loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(self._resolve, channel, future, item)
                return True
            except RuntimeError:  # The loop closed meanwhile.
                continue
        buffer = self._buffers[channel]
        if len(buffer) >= self.get_capacity(channel):
            self.dropped += 1
            log.warning("channels_groupsvc: channel %s is full (%d events); one dropped",
                        channel, len(buffer))
            return False
        buffer.append(item)
        return True

    def _resolve(self, channel, future, item):
        """On the receiver's loop: hand over, or put back for the next receive."""
        with self._lock:
            if future.done():
                self._buffers[channel].appendleft(item)
                buffer = self._buffers[channel]
                if self._waiters.get(channel):
                    self._hand_locked(channel, buffer.popleft())
                return
            future.set_result(item)

    async def _poll(self, link, channel, index):
        """On the link's loop: Receive on a queued channel from shard ``index`` while anyone
        waits for it (its own queue there, ReceiveRequest.this_shard, unless that shard is the
        channel's, where a plain Receive goes)."""
        failures = 0
        again = False
        try:
            while True:
                with self._lock:
                    if not self._waiters.get(channel):
                        return
                request = pb.ReceiveRequest(channel=channel,
                                            this_shard=index != link.channel_shard(channel))
                request.timeout.FromSeconds(int(self.receive_timeout))
                try:
                    response = await link.shards[index].stub.Receive(
                        request, metadata=self._metadata, timeout=self.receive_timeout + 5,
                        wait_for_ready=True)
                    failures = 0
                except asyncio.CancelledError:
                    if link.closing:
                        raise
                    continue  # The last waiter left; the loop's check ends this.
                except grpc.aio.AioRpcError as e:
                    if e.code() == grpc.StatusCode.CANCELLED and not link.closing:
                        continue
                    if e.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.PERMISSION_DENIED,
                                    grpc.StatusCode.UNAUTHENTICATED) or link.closing:
                        self._fail_waiters(channel, RuntimeError(
                            f"groupsvc refused Receive({channel}): {e.code().name}: {e.details()}"))
                        return
                    failures += 1
                    await asyncio.sleep(min(0.5, 0.1 * 2 ** failures) * random.uniform(0.5, 1.0))
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. the channel closed under us
                    self._fail_waiters(channel, GroupsvcUnavailable(str(e)))
                    return
                if response.json:
                    try:
                        event = codec.decode(response.json)
                    except ValueError:
                        self.dropped += 1
                        log.warning("channels_groupsvc: an event for %s that is not JSON was "
                                    "dropped", channel)
                        continue
                    self._dispatch(channel, event)
        finally:
            with self._lock:
                self._pollers.discard((channel, index))
                again = bool(self._waiters.get(channel)) and not link.closing
                if again:
                    self._pollers.add((channel, index))
            if again:
                await asyncio.sleep(0.05)
                link.run_soon(self._poll(link, channel, index))

    def _fail_waiters(self, channel, error):
        with self._lock:
            waiters = self._waiters.pop(channel, ())
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_set_exception, future, error)
            except RuntimeError:
                pass


def _set_exception(future, error):
    if not future.done():
        future.set_exception(error)


async def _members(link, group):
    return link.group_members(group)


async def _noted(link, group, channel, added, who=None, positions=False):
    link.note_membership(group, channel, added, who, positions)


def _who(user, presence):
    """(user id, name, watch presence) for a group_add, or None when it gives neither."""
    if user is None and not presence:
        return None
    if user is None or not getattr(user, "is_authenticated", True):
        return ("", "", bool(presence))  # Anonymous (Django's AnonymousUser).
    user_id, name = identity(user)
    if not user_id or len(user_id.encode()) > 256 or len(name.encode()) > 256:
        raise TypeError("channels_groupsvc: a group_add's user needs an id, and its id and name "
                        "are at most 256 bytes each")
    return (user_id, name, bool(presence))


async def _forget_all(link):
    link.memberships.clear()


async def _unary(link, method, request, metadata):
    # Any shard answers Flush (and ListGroups, Stats) for every shard.
    return await getattr(link.shards[0].stub, method)(request, metadata=metadata, timeout=10)


def _credentials(tls):
    if not tls:
        return None

    def read(path):
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.get("ca")),
        private_key=read(tls.get("key")),
        certificate_chain=read(tls.get("cert")))
