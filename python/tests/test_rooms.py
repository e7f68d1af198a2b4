"""The room queries (layer extensions): size, channels, presence and its
events, history with recovery; against a real groupsvc, sharded too."""

import asyncio

import pytest

from channels_groupsvc.placement import group_shard
from conftest import Groupsvc, sharded_groupsvc


@pytest.fixture
def quick_presence():
    g = Groupsvc(flags=["--presence_debounce=200ms"])
    yield g
    g.stop()


async def test_the_extensions_are_declared(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    for name in ("groups", "flush", "group_size", "group_channels", "group_presence",
                 "group_history"):
        assert name in layer.extensions


async def test_size_and_channels_count_every_process(groupsvc, make_layer):
    a, b = make_layer(groupsvc.target), make_layer(groupsvc.target)
    ca, cb = await a.new_channel(), await b.new_channel()
    assert await a.group_size("room") == 0
    assert await a.group_channels("room") == []
    await a.group_add("room", ca)
    await b.group_add("room", cb)
    await b.group_add("room", "queued-member")
    assert await a.group_size("room") == 3
    assert await b.group_channels("room") == sorted([ca, cb, "queued-member"])
    await b.group_discard("room", cb)
    assert await a.group_size("room") == 2


async def test_presence_lists_users_once_and_tells_only_the_channels_that_ask(quick_presence,
                                                                             make_layer):
    a, b = make_layer(quick_presence.target), make_layer(quick_presence.target)
    ann1, ann2, bo, quiet = (await a.new_channel(), await a.new_channel(), await b.new_channel(),
                             await b.new_channel())
    ann = {"id": "ann", "name": "Ann"}
    await b.group_add("room", bo, user={"id": "bo", "name": "Bo"}, presence=True)
    await b.group_add("room", quiet)  # Anonymous, does not ask for presence events.
    await a.group_add("room", ann1, user=ann)
    await a.group_add("room", ann2, user=ann)  # A second tab: no second join.
    assert await asyncio.wait_for(b.receive(bo), 5) == {
        "type": "presence.join", "user": {"id": "ann", "name": "Ann"}}
    users = await a.group_presence("room")
    assert [(u["id"], u["name"], u["connections"]) for u in users] == [("ann", "Ann", 2),
                                                                      ("bo", "Bo", 1)]
    assert users[0]["since"].tzinfo is not None
    await a.group_discard("room", ann1)
    await a.group_discard("room", ann2)
    assert await asyncio.wait_for(b.receive(bo), 5) == {
        "type": "presence.leave", "user": {"id": "ann", "name": "Ann"}}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(b.receive(quiet), 0.5)
    with pytest.raises(TypeError, match="needs an id"):
        await a.group_add("room", ann1, user={"name": "no id"})


async def test_history_recovers_exactly_what_came_after_or_says_it_cannot(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    for i in range(3):
        await layer.group_send("chat_history", {"type": "chat.message", "message": f"m{i}",
                                                "raw": b"\x00"})
    latest = await layer.group_history("chat_history")
    assert [m["message"] for _, m in latest["events"]] == ["m0", "m1", "m2"]
    assert latest["events"][0][1]["raw"] == b"\x00"
    first = latest["events"][0][0]
    after = await layer.group_history("chat_history", since=first, epoch=latest["epoch"])
    assert after["recovered"] is True
    assert [m["message"] for _, m in after["events"]] == ["m1", "m2"]
    assert after["latest"] == latest["events"][-1][0]
    assert after["reason"] is None
    elsewhere = await layer.group_history("chat_history", since=first, epoch="another-epoch")
    assert elsewhere["recovered"] is False
    assert "history was lost" in elsewhere["reason"]
    assert [m["message"] for _, m in elsewhere["events"]] == ["m0", "m1", "m2"]  # The latest.
    ahead = await layer.group_history("chat_history", since=99, epoch=latest["epoch"])
    assert ahead["recovered"] is False and "past the group's latest" in ahead["reason"]
    assert await layer.group_history("nothing-here") == {
        "epoch": latest["epoch"], "recovered": False, "latest": 0, "reason": None, "events": []}


async def test_history_that_no_longer_holds_the_gap_says_so(make_layer):
    short = Groupsvc(flags=["--history_size=2"])
    try:
        layer = make_layer(short.target)
        for i in range(4):
            await layer.group_send("chat_short", {"type": "chat.message", "message": f"m{i}"})
        latest = await layer.group_history("chat_short")
        assert [m["message"] for _, m in latest["events"]] == ["m2", "m3"]
        gap = await layer.group_history("chat_short", since=1, epoch=latest["epoch"])
        assert gap["recovered"] is False
        assert gap["reason"] == "groupsvc's history no longer holds every event after offset 1"
        assert [m["message"] for _, m in gap["events"]] == ["m2", "m3"]
    finally:
        short.stop()


async def test_history_without_a_history_says_so(make_layer):
    off = Groupsvc(flags=["--history_size=0"])
    try:
        layer = make_layer(off.target)
        await layer.group_send("chat_none", {"type": "chat.message", "message": "m"})
        page = await layer.group_history("chat_none", since=0, epoch=None)
        assert page["recovered"] is False and page["events"] == []
        assert page["reason"] == "groupsvc keeps no history (its --history_size is 0)"
    finally:
        off.stop()


async def test_every_query_reaches_the_groups_own_shard(make_layer):
    with sharded_groupsvc(2) as targets:
        layer = make_layer(None, targets=targets)
        groups = [f"g{i}" for i in range(6)]
        assert {group_shard(g, 2) for g in groups} == {0, 1}
        channel = await layer.new_channel()
        for g in groups:
            await layer.group_add(g, channel, user={"id": "u", "name": "U"})
            await layer.group_send(g, {"type": "x", "group": g})
        for g in groups:
            assert await layer.group_channels(g) == [channel]
            assert [u["id"] for u in await layer.group_presence(g)] == ["u"]
            assert [m["group"] for _, m in (await layer.group_history(g))["events"]] == [g]


async def test_positions_put_each_group_event_in_the_groups_history(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    placed, plain = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat_positions", placed, positions=True)
    await layer.group_add("chat_positions", plain)
    await layer.group_send("chat_positions", {"type": "chat.message", "message": "one"})
    event = await asyncio.wait_for(layer.receive(placed), 5)
    history = await layer.group_history("chat_positions")
    assert (event["group_offset"], event["group_epoch"]) == (history["latest"], history["epoch"])
    assert "group_offset" not in await asyncio.wait_for(layer.receive(plain), 5)
    # From there, a reconnect recovers exactly what it missed.
    await layer.group_send("chat_positions", {"type": "chat.message", "message": "two"})
    missed = await layer.group_history("chat_positions", since=event["group_offset"],
                                       epoch=event["group_epoch"])
    assert missed["recovered"] and [m["message"] for _, m in missed["events"]] == ["two"]
