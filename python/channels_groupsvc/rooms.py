"""Room queries, the layer extensions no other Channels layer offers (declared
in ``extensions``): a group's size, its channels, its signed-in users, and its
history with chat.v2's recovery semantics. Each asks the group's shard over
this process's Attach stream (no token needed), in order with its own
group_adds: a history asked after a group_add covers what came before it, and
the channel's events cover what comes after.

    size = await layer.group_size("chat_lobby")
    users = await layer.group_presence("chat_lobby")   # [{"id", "name", "connections", "since"}]
    page = await layer.group_history("chat_lobby", since=41, epoch="k3m9x2qa")
    if page["recovered"]: ...  # exactly what came after offset 41
"""

import datetime

import grpc

from groupsvc.v1 import layer_pb2 as pb

from . import codec
from .errors import GroupsvcRefused


class RoomQueries:
    """Mixed into GroupsvcChannelLayer, which provides _check_group, _command and link."""

    room_extensions = ["group_size", "group_channels", "group_presence", "group_history"]

    async def group_size(self, group):
        """How many channels are in ``group`` (0 when none), across every edge and process."""
        members = await self._group(group)
        return members.size if members is not None else 0

    async def group_channels(self, group):
        """The names of the channels in ``group``, sorted."""
        members = await self._group(group)
        return [m.channel for m in members.members] if members is not None else []

    async def group_presence(self, group):
        """The group's signed-in users, one entry per user however many channels (tabs) it
        has: dicts of id, name, connections and since (a UTC datetime), by id."""
        self._check_group(group)
        ack = await self._command(self.link.group_shard(group),
                                  pb.Command(presence=pb.GetPresenceRequest(group=group)))
        return [{"id": m.id, "name": m.name, "connections": m.connections,
                 "since": m.since.ToDatetime(tzinfo=datetime.timezone.utc)}
                for m in ack.presence.members]

    async def group_history(self, group, since=None, epoch=None, limit=0):
        """The group's events after offset ``since`` seen under ``epoch``: a dict with
        ``events`` (a list of (offset, message), oldest first), ``recovered`` (True: exactly
        those after ``since``, or the first ``limit`` of them; False: groupsvc no longer has
        all of them, or the epoch changed, and ``events`` are the latest instead), ``reason``
        (why not, for people; None when recovered or not asked), ``epoch`` and ``latest`` (the
        group's latest offset). Without ``since``: the latest events."""
        self._check_group(group)
        request = pb.GetHistoryRequest(group=group, page_size=limit)
        if since is None:
            request.latest = True
        else:
            request.since_offset, request.epoch = int(since), str(epoch or "")
        ack = await self._command(self.link.group_shard(group), pb.Command(history=request))
        reply = ack.history
        return {"epoch": reply.epoch, "recovered": reply.recovered, "latest": reply.latest_offset,
                "reason": _not_recovered(reply, since, epoch),
                "events": [(d.offset, codec.decode(d.event.json)) for d in reply.events]}

    async def _group(self, group):
        self._check_group(group)
        try:
            ack = await self._command(self.link.group_shard(group),
                                      pb.Command(group=pb.GetGroupRequest(name=group)))
        except GroupsvcRefused as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return ack.group


def _not_recovered(reply, since, epoch):
    """Why a history asked from ``since`` is not exactly what came after it (as the edge tells
    a chat.v2 page), or None."""
    if since is None or reply.recovered:
        return None
    if not reply.epoch:
        return "groupsvc keeps no history (its --history_size is 0)"
    if reply.epoch != str(epoch or ""):
        return (f"the group's history was lost: its epoch is {reply.epoch!r}, not "
                f"{str(epoch or '')!r} (groupsvc restarted, or the group moved to another shard)")
    if int(since) > reply.latest_offset:
        return f"offset {since} is past the group's latest ({reply.latest_offset})"
    return f"groupsvc's history no longer holds every event after offset {since}"
