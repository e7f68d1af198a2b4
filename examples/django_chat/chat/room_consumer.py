"""The tutorial's room, live: who is there, and what a reconnect missed.

Built on channels_groupsvc's extensions (python/README.md): the members from
group_presence and presence events, the messages' places in the room's
history (positions=True), and group_history to recover after a reconnect.
It shares rooms (chat_<room>) with the tutorial's consumers and the C++
edge's pages, and speaks a subset of the edge's chat.v2 frames:

  to the page   {"type": "presence", "members": [{"id", "name"}]}
                {"type": "presence.join" | "presence.leave", "user": {"id", "name"}}
                {"type": "message", "message", "user", "offset", "epoch"}
                {"type": "recovered", "recovered": true | false, "missed": n}
  from the page {"message": "..."}; reconnecting: ?since=<offset>&epoch=<epoch>
"""
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels_groupsvc.tokens import identity


class RoomConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.group = f"chat_{self.scope['url_route']['kwargs']['room_name']}"
        user = self.scope["user"]
        self.author = {"anonymous": True}
        if user.is_authenticated:  # As presence and the edges' tokens name the user.
            user_id, name = identity(user)
            self.author = {"id": user_id, "name": name}
        await self.channel_layer.group_add(self.group, self.channel_name, presence=True,
                                           positions=True,
                                           user=user if user.is_authenticated else None)
        await self.accept()
        members = await self.channel_layer.group_presence(self.group)
        await self.send_json({"type": "presence",
                              "members": [{"id": m["id"], "name": m["name"]} for m in members]})
        query = parse_qs(self.scope["query_string"].decode())
        since = query.get("since", [""])[0]
        if since:
            # A malformed position asks from the start of what groupsvc keeps.
            page = await self.channel_layer.group_history(
                self.group, since=int(since) if since.isdigit() else 0,
                epoch=query.get("epoch", [""])[0] if since.isdigit() else "")
            for offset, event in page["events"]:
                if event.get("type") == "chat.message":
                    await self.chat_message(dict(event, group_offset=offset,
                                                 group_epoch=page["epoch"]))
            await self.send_json({"type": "recovered", "recovered": page["recovered"],
                                  "missed": len(page["events"])})

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content):
        message = content.get("message") if isinstance(content, dict) else None
        if isinstance(message, str):
            await self.channel_layer.group_send(
                self.group, {"type": "chat.message", "message": message, "user": self.author})

    async def chat_message(self, event):
        await self.send_json({"type": "message", "message": event.get("message"),
                              "user": event.get("user") or {"anonymous": True},
                              "offset": event.get("group_offset"),
                              "epoch": event.get("group_epoch")})

    async def presence_join(self, event):
        await self.send_json({"type": "presence.join", "user": event["user"]})

    async def presence_leave(self, event):
        await self.send_json({"type": "presence.leave", "user": event["user"]})
