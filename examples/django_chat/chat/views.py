import re
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from channels_groupsvc.tokens import edge_token


def index(request):
    return render(request, "chat/index.html", {})


def room(request, room_name):
    return render(request, "chat/room.html", {"room_name": room_name})


def live(request, room_name):
    """The room with its members and recovery (chat/room_consumer.py)."""
    return render(request, "chat/live.html", {"room_name": room_name})


@login_required
def on_edge(request, room_name):
    """The same room on the C++ edge's page, signed in as this Django user: the
    edge checks the token (channels_groupsvc.tokens) and names the user."""
    if not re.fullmatch(r"\w+", room_name):  # As the rooms' route; no "*" pattern in a token.
        raise Http404("no such room")
    if not settings.CHAT_EDGE_URL or not settings.CHAT_EDGE_SECRET_FILE:
        return HttpResponse("set CHAT_EDGE_URL and CHAT_EDGE_SECRET_FILE (the edges' "
                            "--jwt_secret_file) to chat on the edge\n", status=503,
                            content_type="text/plain")
    token = edge_token(request.user, secret_file=settings.CHAT_EDGE_SECRET_FILE, rooms=[room_name])
    return redirect(f"{settings.CHAT_EDGE_URL}/chat/{quote(room_name)}/?token={token}")
