"""A Django Channels app (the tutorial's, on daphne) and the C++ edge sharing
rooms through groupsvc: real processes, real WebSockets."""

import asyncio
import json

import pytest

from conftest import Daphne, Edge, WsClient


@pytest.fixture
def edge(groupsvc):
    e = Edge(groupsvc.target)
    yield e
    e.stop()


@pytest.mark.parametrize("consumer", ["async", "sync"])
async def test_a_django_consumer_and_an_edge_client_share_a_room(groupsvc, edge, consumer):
    daphne = Daphne(groupsvc.target, consumer)
    try:
        on_django = await WsClient.connect(daphne.port, "/ws/chat/lobby/")
        on_edge = await WsClient.connect(edge.port, "/ws/chat/lobby/")
        elsewhere = await WsClient.connect(edge.port, "/ws/chat/other/")
        await asyncio.sleep(0.2)  # The Django consumer's group_add.
        for i in range(20):
            await on_django.send_json({"message": f"from django {i}"})
        for i in range(20):
            assert await on_edge.recv_json() == {"message": f"from django {i}"}
            assert await on_django.recv_json() == {"message": f"from django {i}"}
        for i in range(20):
            await on_edge.send_json({"message": f"from the edge {i}"})
        for i in range(20):
            assert await on_django.recv_json() == {"message": f"from the edge {i}"}
            assert await on_edge.recv_json() == {"message": f"from the edge {i}"}
        with pytest.raises(asyncio.TimeoutError):
            await elsewhere.recv(timeout=0.3)
        # Markup stays text, both ways.
        await on_edge.send_json({"message": "<img src=x onerror=alert(1)>"})
        assert (await on_django.recv_json())["message"] == "<img src=x onerror=alert(1)>"
        for c in (on_django, on_edge, elsewhere):
            c.close()
    finally:
        daphne.stop()


async def test_group_send_from_a_plain_django_shell_reaches_the_edge(groupsvc, edge):
    daphne = Daphne(groupsvc.target)
    try:
        client = await WsClient.connect(edge.port, "/ws/chat/news/")
        await asyncio.sleep(0.1)
        script = (
            "from asgiref.sync import async_to_sync\n"
            "from channels.layers import get_channel_layer\n"
            "layer = get_channel_layer()\n"
            "for i in range(3):\n"
            "    async_to_sync(layer.group_send)('chat_news', "
            "{'type': 'chat.message', 'message': f'from a view {i}'})\n"
        )
        done = await asyncio.get_running_loop().run_in_executor(
            None, lambda: daphne.manage("shell", "-c", script))
        assert done.returncode == 0, done.stderr
        for i in range(3):
            assert await client.recv_json() == {"message": f"from a view {i}"}
        client.close()
    finally:
        daphne.stop()


async def test_a_django_consumer_survives_a_groupsvc_restart(groupsvc, edge):
    daphne = Daphne(groupsvc.target)
    try:
        on_django = await WsClient.connect(daphne.port, "/ws/chat/phoenix/")
        on_edge = await WsClient.connect(edge.port, "/ws/chat/phoenix/")
        await asyncio.sleep(0.2)
        groupsvc.restart()
        # Both sides re-attach and replay their members; the room works again.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            await on_edge.send(json.dumps({"message": "again"}))
            got = await on_edge.recv_json()
            if got == {"message": "again"}:
                try:
                    assert await on_django.recv_json(timeout=1) == {"message": "again"}
                    break
                except asyncio.TimeoutError:
                    pass
            assert loop.time() < deadline, f"not back within 5 s: {got}"
            await asyncio.sleep(0.2)
        on_django.close()
        on_edge.close()
    finally:
        daphne.stop()
