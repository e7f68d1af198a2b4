"""The operator's calls from Django code: a user signed in on the C++ edge is
found, removed from a room and disconnected through the layer (real
groupsvc, real edge, real WebSockets)."""

import asyncio
import subprocess

import pytest

from channels_groupsvc.placement import group_shard
from conftest import BUILD, Edge, WsClient, sharded_groupsvc


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "jwt-secret"
    path.write_text("python-users-secret-0123456789abcdef\n")
    return path


def mint(secret, who):
    done = subprocess.run([str(BUILD / "edge" / "edge"), f"--jwt_secret_file={secret}",
                           f"--mint_token={who}"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def wait_connections(layer, user_id, n):
    for _ in range(100):
        if len(await layer.get_user(user_id)) == n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user_id} never had {n} connections")


async def test_django_code_finds_removes_and_disconnects_an_edge_user(groupsvc, secret,
                                                                     make_layer):
    edge = Edge(groupsvc.target, flags=[f"--jwt_secret_file={secret}"])
    try:
        token = mint(secret, "ann:Ann")
        lobby = await WsClient.connect(edge.port, f"/ws/chat/lobby/?token={token}")
        garden = await WsClient.connect(edge.port, f"/ws/chat/garden/?token={token}")
        layer = make_layer(groupsvc.target)
        await wait_connections(layer, "ann", 2)
        rooms = sorted(c["room"] for c in await layer.get_user("ann"))
        assert rooms == ["garden", "lobby"]
        assert all(c["edge_id"] == "edge-py" for c in await layer.get_user("ann"))

        assert await layer.remove_from_group("ann", "chat_garden", reason="off topic") == 1
        assert "[disconnected] off topic" in await garden.recv()
        with pytest.raises(ConnectionError, match="0fab"):  # 4011
            await garden.recv()
        await wait_connections(layer, "ann", 1)

        assert await layer.disconnect_user("ann", code=4100, reason="bye") == 1
        assert "[disconnected] bye" in await lobby.recv()
        with pytest.raises(ConnectionError, match="1004 b'bye'"):  # 4100
            await lobby.recv()
        assert await layer.get_user("ann") == []

        with pytest.raises(ValueError, match="4000 to 4999"):
            await layer.disconnect_user("ann", code=1000)
    finally:
        edge.stop()


async def test_every_shard_finds_removes_and_disconnects_and_only_an_admin_token_may(
        secret, tmp_path, make_layer):
    # Three users whose connections are counted on three different shards.
    users = {}
    for i in range(100):
        users.setdefault(group_shard(f"user{i}", 3), f"user{i}")
    assert len(users) == 3
    tokens = tmp_path / "api-tokens"
    tokens.write_text("ops read,send,admin ops-token-0123456789abcdef\n"
                      "web send web-token-0123456789abcdef\n")
    with sharded_groupsvc(3, flags=[f"--api_tokens_file={tokens}"]) as targets:
        edge = Edge(",".join(targets), flags=[f"--jwt_secret_file={secret}"])
        try:
            sockets = {}
            for shard, user in users.items():
                token = mint(secret, f"{user}:{user.title()}")
                sockets[user] = await WsClient.connect(edge.port, f"/ws/chat/lobby/?token={token}")
            web = make_layer(None, targets=targets, token="web-token-0123456789abcdef")
            with pytest.raises(PermissionError):
                await web.get_user(users[0])
            with pytest.raises(PermissionError):
                await web.disconnect_user(users[0], reason="not yours to do")
            ops = make_layer(None, targets=targets, token="ops-token-0123456789abcdef")
            for shard, user in users.items():
                await wait_connections(ops, user, 1)
                [connection] = await ops.get_user(user)
                assert connection["room"] == "lobby"
            first, second, third = (users[i] for i in range(3))
            assert await ops.remove_from_group(first, "chat_lobby", reason="elsewhere") == 1
            assert "[disconnected] elsewhere" in await sockets[first].recv()
            assert await ops.disconnect_user(second, reason="bye") == 1
            assert "[disconnected] bye" in await sockets[second].recv()
            await wait_connections(ops, first, 0)
            await wait_connections(ops, second, 0)
            assert len(await ops.get_user(third)) == 1  # Untouched.
        finally:
            edge.stop()
