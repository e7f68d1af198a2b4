import os

from django.urls import re_path

from . import consumers
from .room_consumer import RoomConsumer

# CHAT_CONSUMER=async (default): the tutorial's AsyncWebsocketConsumer;
# CHAT_CONSUMER=sync: its WebsocketConsumer with async_to_sync.
_variant = os.environ.get("CHAT_CONSUMER", "async")
_consumer = {"sync": consumers.ChatConsumer, "async": consumers.AsyncChatConsumer}[_variant]

websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", _consumer.as_asgi()),
    # The live room page (/chat/<room>/live/): members and recovery.
    re_path(r"ws/room/(?P<room_name>\w+)/$", RoomConsumer.as_asgi()),
]
