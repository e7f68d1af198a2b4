import os

from django.urls import re_path

from . import consumers

# CHAT_CONSUMER=async (default): the tutorial's AsyncWebsocketConsumer;
# CHAT_CONSUMER=sync: its WebsocketConsumer with async_to_sync.
_variant = os.environ.get("CHAT_CONSUMER", "async")
_consumer = {"sync": consumers.ChatConsumer, "async": consumers.AsyncChatConsumer}[_variant]

websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", _consumer.as_asgi()),
]
