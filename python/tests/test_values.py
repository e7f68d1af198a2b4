"""Every value the Channels layer spec allows, both ways: between Python
processes (through process-local and queued channels, and groups), and from
Python to the C++ edge. The wire format is channels_groupsvc.codec's."""

import asyncio
import math

import pytest

from channels_groupsvc import codec
from conftest import Edge, WsClient

# One of each: byte strings (empty, binary, text), ints past 64 bits, floats
# that JSON cannot write, nesting, and dicts that look like the extension.
EVERYTHING = {
    "type": "test.values",
    "bytes": b"\x00\xff\xfe binary",
    "empty_bytes": b"",
    "text": "héllo \u2603 \U0001F600",
    "int": 7,
    "negative": -3,
    "huge": 2**80 + 1,
    "huge_negative": -(2**70),
    "float": 0.1,
    "tiny": 5e-324,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", b"3", [4.5, None], {"five": b"5"}],
    "tuple": (1, (2, b"x")),
    "nested": {"a": {"b": {"c": [b"deep"]}}},
    "looks_like_bytes": {"$bytes": "not really"},
    "dollar_key": {"$ref": 1},
    "dollars": {"$a": 1, "$b": 2},
    "empty": {},
}


def expected():
    """EVERYTHING as it comes back: tuples are lists (as with channels_redis)."""
    e = dict(EVERYTHING)
    e["tuple"] = [1, [2, b"x"]]
    return e


def typed(value):
    """`value` with every leaf's type beside it: 7 and 7.0, True and 1 differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def same(got, want):
    assert typed(got) == typed(want)
    return True


def test_the_codec_round_trips_everything_and_nan():
    assert same(codec.decode(codec.encode(EVERYTHING)), expected())
    back = codec.decode(codec.encode({"type": "x", "nan": math.nan}))
    assert math.isnan(back["nan"])
    # The documented extension, as grpcurl shows it.
    assert codec.encode({"type": "x", "b": b"\x00\x01"}) == b'{"type":"x","b":{"$bytes":"AAE="}}'


def test_what_the_spec_does_not_allow_is_a_type_error_naming_the_key():
    with pytest.raises(TypeError, match=r"message\['when'\].*datetime"):
        import datetime
        codec.encode({"type": "x", "when": datetime.datetime.now()})
    with pytest.raises(TypeError, match=r"message\['d'\]: its key 1 is a int"):
        codec.encode({"type": "x", "d": {1: "one"}})
    with pytest.raises(TypeError, match=r"message\['l'\]\[1\].*set"):
        codec.encode({"type": "x", "l": [1, {2}]})


async def test_every_allowed_value_travels_between_python_processes(groupsvc, make_layer):
    sender = make_layer(groupsvc.target)
    receiver = make_layer(groupsvc.target)
    local = await receiver.new_channel()
    await receiver.group_add("values", local)
    # A process-local channel (pushed on the stream), a queued one (the unary
    # Receive), a group, and our own channel (never leaves the process).
    await sender.send(local, EVERYTHING)
    assert same(await asyncio.wait_for(receiver.receive(local), 5), expected())
    await sender.send("queued-values", EVERYTHING)
    assert same(await asyncio.wait_for(receiver.receive("queued-values"), 5), expected())
    await sender.group_send("values", EVERYTHING)
    assert same(await asyncio.wait_for(receiver.receive(local), 5), expected())
    await receiver.send(local, EVERYTHING)
    assert same(await asyncio.wait_for(receiver.receive(local), 5), expected())


async def test_a_message_that_cannot_be_encoded_raises_before_anything_is_sent(groupsvc,
                                                                             make_layer):
    layer = make_layer(groupsvc.target)
    with pytest.raises(TypeError, match=r"message\['oops'\]"):
        await layer.group_send("values", {"type": "x", "oops": object()})


async def test_bytes_from_python_reach_the_edges_pages_as_text(groupsvc, make_layer):
    edge = Edge(groupsvc.target)
    try:
        page = await WsClient.connect(edge.port, "/ws/chat/bytes/")
        layer = make_layer(groupsvc.target)
        await asyncio.sleep(0.1)
        await layer.group_send("chat_bytes", {"type": "chat.message",
                                              "message": "hé, bytes".encode()})
        assert await page.recv_json() == {"message": "hé, bytes"}
        await layer.group_send("chat_bytes", {"type": "chat.message", "message": "plain",
                                              "big": 2**70, "extra": b"\xff"})
        assert await page.recv_json() == {"message": "plain"}
        # A chat.v2 page: the author may be bytes too, and a Django pk an int.
        typed = await WsClient.connect(edge.port, "/ws/chat/bytes/", protocol="chat.v2")
        await asyncio.sleep(0.1)
        await layer.group_send("chat_bytes", {"type": "chat.message", "message": b"from Ann",
                                              "user": {"id": 7, "name": "Ann Lée".encode()}})
        assert await page.recv_json() == {"message": "from Ann"}
        while (frame := await typed.recv_json())["type"] != "joined":
            pass  # The room's latest messages come first.
        frame = await typed.recv_json()
        assert frame["message"] == "from Ann"
        assert frame["user"] == {"id": "7", "name": "Ann Lée"}
        # No "message" at all: not a chat message to show; the page gets nothing.
        await layer.group_send("chat_bytes", {"type": "chat.message", "text": "no message"})
        await layer.group_send("chat_bytes", {"type": "chat.message", "message": "after"})
        assert await page.recv_json() == {"message": "after"}
        page.close()
        typed.close()
    finally:
        edge.stop()
