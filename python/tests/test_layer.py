"""The channel layer spec, against a real groupsvc on a loopback port."""

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from channels.exceptions import ChannelFull

from channels_groupsvc import GroupsvcUnavailable
from channels_groupsvc.placement import (
    channel_owners, channel_shard, fnv1a64, group_owners, group_shard, owner_key)
from conftest import Groupsvc, free_port, sharded_groupsvc


async def nothing_within(layer, channel, seconds):
    try:
        got = await asyncio.wait_for(layer.receive(channel), seconds)
    except asyncio.TimeoutError:
        return True
    pytest.fail(f"{channel} received {got!r}")


def test_placement_matches_the_fixed_vectors_the_cpp_tests_check():
    doc = json.loads((Path(__file__).resolve().parents[2] / "tests/vectors/placement.json").read_text())
    assert len(doc["hash"]) >= 5 and len(doc["owners"]) >= 20
    for v in doc["hash"]:
        assert f"{fnv1a64(v['key'].encode()):016x}" == v["fnv1a64"]
        assert [group_shard(v["key"], n) for n in doc["counts"]] == v["shard"], v["key"]
    split = 0
    for v in doc["owners"]:
        place = group_owners if v["kind"] == "group" else channel_owners
        owners = place(v["name"], v["shards"], v["bridge"], lambda s: s not in v["not_bridging"])
        assert (owners.own, owners.bridged, owners.send) == (v["own"], v["bridged"], v["send"]), v
        split += len(owners.members) == 2
    assert split >= 5
    assert owner_key("specific.py3f9a!0c1d") == "py3f9a!"
    assert owner_key("edge-1!c7") == "edge-1!"
    assert owner_key("plain") == ""
    for n in (2, 3, 8):
        assert channel_shard("specific.ab12cd!x", n) == group_shard("ab12cd!", n)


async def test_send_and_receive_keep_each_senders_order(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    other = make_layer(groupsvc.target)
    for channel in ("queued-1", await layer.new_channel()):
        for i in range(50):
            await other.send(channel, {"type": "test.message", "n": i})
        got = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(50)]
        assert got == list(range(50)), channel
        # Identical events are distinct.
        await other.send(channel, {"type": "same"})
        await other.send(channel, {"type": "same"})
        assert (await layer.receive(channel))["type"] == "same"
        assert (await layer.receive(channel))["type"] == "same"


async def test_new_channel_names_are_channels_own_and_owned_by_this_process(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    other = make_layer(groupsvc.target)
    name = await layer.new_channel()
    assert name.startswith(f"specific.{layer.client_prefix}!")
    ws = await layer.new_channel("websocket")
    assert ws.startswith(f"websocket.{layer.client_prefix}!") and ws != name
    # Another process's channel: Channels' layers refuse to receive it.
    with pytest.raises(AssertionError):
        await other.receive(name)
    # Sent from another process through groupsvc, pushed to the owner.
    await other.send(ws, {"type": "hello"})
    assert (await asyncio.wait_for(layer.receive(ws), 5))["type"] == "hello"


async def test_a_full_queued_channel_raises_channel_full(make_layer):
    g = Groupsvc(flags=["--capacity=5"])
    try:
        layer = make_layer(g.target, capacity=5)
        for i in range(5):
            await layer.send("full-channel", {"type": "x", "n": i})
        with pytest.raises(ChannelFull):
            await layer.send("full-channel", {"type": "x", "n": 5})
        assert (await layer.receive("full-channel"))["n"] == 0
        await layer.send("full-channel", {"type": "x", "n": 6})  # Room again.
    finally:
        g.stop()


async def test_undelivered_events_expire(make_layer):
    g = Groupsvc(flags=["--expiry=1s"])
    try:
        layer = make_layer(g.target, expiry=1)
        await layer.send("expiring", {"type": "old"})
        local = await layer.new_channel()
        await layer.send(local, {"type": "old"})
        await asyncio.sleep(1.5)
        await nothing_within(layer, "expiring", 1.0)
        await nothing_within(layer, local, 0.3)
        await layer.send("expiring", {"type": "new"})
        assert (await asyncio.wait_for(layer.receive("expiring"), 5))["type"] == "new"
    finally:
        g.stop()


async def test_group_add_discard_and_send(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    sender = make_layer(groupsvc.target)
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", a)
    await layer.group_add("room", b)
    await layer.group_add("room", a)  # Idempotent.
    await sender.group_send("room", {"type": "chat.message", "message": "one"})
    assert (await asyncio.wait_for(layer.receive(a), 5))["message"] == "one"
    assert (await asyncio.wait_for(layer.receive(b), 5))["message"] == "one"
    await layer.group_discard("room", b)
    await layer.group_discard("room", b)  # Not a member: no error.
    await layer.group_discard("no-such-group", b)
    await sender.group_send("room", {"type": "chat.message", "message": "two"})
    assert (await asyncio.wait_for(layer.receive(a), 5))["message"] == "two"
    await nothing_within(layer, b, 0.3)
    await layer.group_send("empty-group", {"type": "x"})  # No members: fine.


async def test_memberships_lapse_after_group_expiry(make_layer):
    g = Groupsvc(flags=["--group_expiry=1s"])
    try:
        layer = make_layer(g.target, group_expiry=1)
        a = await layer.new_channel()
        await layer.group_add("brief", a)
        await layer.group_send("brief", {"type": "x"})
        assert (await asyncio.wait_for(layer.receive(a), 5))["type"] == "x"
        await asyncio.sleep(2.5)
        await layer.group_send("brief", {"type": "late"})
        await nothing_within(layer, a, 0.5)
    finally:
        g.stop()


async def test_flush_empties_channels_and_groups(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    a = await layer.new_channel()
    await layer.group_add("room", a)
    await layer.send("queued", {"type": "x"})
    await layer.flush()
    await nothing_within(layer, "queued", 0.5)
    await layer.group_send("room", {"type": "x"})
    await nothing_within(layer, a, 0.3)


async def test_concurrent_receivers_on_local_channels_each_get_their_own(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    sender = make_layer(groupsvc.target)
    channels = [await layer.new_channel() for _ in range(10)]
    waiting = [asyncio.ensure_future(layer.receive(c)) for c in channels]
    await asyncio.sleep(0.05)
    for i, c in enumerate(channels):
        await sender.send(c, {"type": "x", "n": i})
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [e["n"] for e in got] == list(range(10))


async def test_a_cancelled_receive_loses_no_event(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    sender = make_layer(groupsvc.target)
    for channel in (await layer.new_channel(), "queued-cancel"):
        # One receive cancelled before anything came: the event goes to the next.
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await sender.send(channel, {"type": "x", "n": -1})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == -1
        # Receives cut short by timeouts while 200 events arrive: each event once, in order.
        n = 200

        async def send_all():
            for i in range(n):
                await sender.send(channel, {"type": "x", "n": i})

        task = asyncio.ensure_future(send_all())
        got = []
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            try:
                got.append((await asyncio.wait_for(layer.receive(channel), 0.002))["n"])
            except asyncio.TimeoutError:
                pass
        await task
        assert got == list(range(n)), channel


async def test_invalid_names_raise_type_error(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    for bad in ("has space", "a!b!c", "!x", "x" * 100, "trailing\n", "ünïcode", 7):
        with pytest.raises(TypeError):
            await layer.send(bad, {"type": "x"})
        with pytest.raises(TypeError):
            await layer.group_add("room", bad)
    for bad in ("bad/group", "a!b", "", "x" * 100):
        with pytest.raises(TypeError):
            await layer.group_send(bad, {"type": "x"})
    with pytest.raises(AssertionError):
        await layer.send("fine", {"no": "type"})
    with pytest.raises(TypeError, match="a set is not a type the Channels spec allows"):
        await layer.send("fine", {"type": "x", "blob": {"a set"}})


async def test_groupsvc_restart_mid_test_memberships_come_back(groupsvc, make_layer):
    layer = make_layer(groupsvc.target)
    sender = make_layer(groupsvc.target)
    a = await layer.new_channel()
    await layer.group_add("room", a)
    await sender.group_send("room", {"type": "x", "n": 1})
    assert (await asyncio.wait_for(layer.receive(a), 5))["n"] == 1
    groupsvc.stop()
    # While it is down the sender is told; nothing is silently lost.
    with pytest.raises(GroupsvcUnavailable):
        await sender.group_send("room", {"type": "x", "n": 2})
    groupsvc.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            await sender.group_send("room", {"type": "x", "n": 3})
            got = await asyncio.wait_for(layer.receive(a), 1)
            break
        except (GroupsvcUnavailable, asyncio.TimeoutError):
            assert time.monotonic() < deadline, "the membership was not replayed within 5 s"
            await asyncio.sleep(0.1)
    assert got["n"] == 3


def test_several_event_loops_in_one_process(groupsvc, make_layer):
    """async_to_sync runs each call in a loop of its own, from any thread."""
    layer = make_layer(groupsvc.target)
    channel = asyncio.run(layer.new_channel())
    asyncio.run(layer.group_add("loops", channel))
    results = []

    def in_thread():
        results.append(asyncio.run(layer.group_send("loops", {"type": "x", "n": 1})))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert results == [None]
    got = asyncio.run(asyncio.wait_for(layer.receive(channel), 5))
    assert got["n"] == 1


async def test_differing_config_is_a_warning_not_a_crash(make_layer):
    g = Groupsvc(flags=["--capacity=100", "--expiry=60s"])
    try:
        layer = make_layer(g.target, capacity=50, expiry=30)
        with pytest.warns(RuntimeWarning, match="capacity=50 but groupsvc enforces capacity=100"):
            await layer.send("anything", {"type": "x"})
            await asyncio.sleep(0.1)
        assert (await layer.receive("anything"))["type"] == "x"
    finally:
        g.stop()


async def test_sharded_groupsvc_every_group_and_channel_on_its_owner(make_layer):
    with sharded_groupsvc(2) as targets:
        layer = make_layer(None, targets=targets)
        sender = make_layer(None, targets=targets)
        groups = [f"g{i}" for i in range(8)]
        assert {group_shard(g, 2) for g in groups} == {0, 1}
        channel = await layer.new_channel()
        for g in groups:
            await layer.group_add(g, channel)
        for g in groups:
            await sender.group_send(g, {"type": "x", "group": g})
        got = [(await asyncio.wait_for(layer.receive(channel), 5))["group"] for _ in groups]
        assert sorted(got) == sorted(groups)
        queued = [f"q{i}" for i in range(6)]
        assert {channel_shard(q, 2) for q in queued} == {0, 1}
        for q in queued:
            await sender.send(q, {"type": "x", "to": q})
        for q in queued:
            assert (await asyncio.wait_for(layer.receive(q), 5))["to"] == q


async def test_while_resharding_layers_on_both_lists_share_every_group(make_layer):
    """groupsvc --bridge_shards (docs/sharding.md): shards on the list of
    three bridging to two, one process on each list."""
    from conftest import free_port

    ports = [free_port() for _ in range(3)]
    three = [f"127.0.0.1:{p}" for p in ports]
    procs = [Groupsvc(port=p, flags=[f"--shards={','.join(three)}", f"--shard_index={i}",
                                     "--bridge_shards=2"]) for i, p in enumerate(ports)]
    try:
        new = make_layer(None, targets=three)
        old = make_layer(None, targets=three[:2])
        moved = [g for g in (f"room{i}" for i in range(40)) if group_shard(g, 2) != group_shard(g, 3)]
        assert len(moved) >= 3
        a, b = await new.new_channel(), await old.new_channel()
        for g in moved[:3]:
            await new.group_add(g, a)
            await old.group_add(g, b)
        for g in moved[:3]:
            await new.group_send(g, {"type": "x", "g": g, "from": "new"})
            await old.group_send(g, {"type": "x", "g": g, "from": "old"})
        for channel in (a, b):
            got = sorted((e["g"], e["from"]) for e in
                         [await asyncio.wait_for(new.receive(channel) if channel == a
                                                 else old.receive(channel), 5) for _ in range(6)])
            assert got == sorted((g, f) for g in moved[:3] for f in ("new", "old")), channel
    finally:
        for p in procs:
            p.stop()


async def test_making_the_link_never_waits_for_the_links_loop(groupsvc, make_layer):
    first = make_layer(groupsvc.target)
    await first.group_add("warm", await first.new_channel())  # The shared loop is running.
    # The link's loop is busy for a while (a slow callback of another layer's)...
    busy = threading.Event()

    async def hold_the_loop():
        busy.set()
        time.sleep(0.6)  # Blocks the loop, as a slow callback would.

    first.link.run_soon(hold_the_loop())
    assert busy.wait(5)
    # ...and a new layer's link is made on this event loop without waiting for it.
    second = make_layer(groupsvc.target)
    started = time.monotonic()
    link = second.link
    assert time.monotonic() - started < 0.2
    assert link is not None
    # Once the loop is free, the new link works.
    channel = await second.new_channel()
    await second.group_add("fresh", channel)
    await first.group_send("fresh", {"type": "hello"})
    assert (await asyncio.wait_for(second.receive(channel), 5))["type"] == "hello"


async def test_a_command_waits_for_its_own_shards_stream_not_any(make_layer):
    """Shard 0's stream is up, shard 1's groupsvc is still starting: a send to a channel on
    shard 1 waits (bounded) for shard 1's stream instead of failing UNAVAILABLE at once."""
    ports = [free_port() for _ in range(2)]
    targets = [f"127.0.0.1:{p}" for p in ports]

    def start(i):
        return Groupsvc(port=ports[i], flags=[f"--shards={','.join(targets)}", f"--shard_index={i}"])

    shards = [start(0)]
    try:
        layer = make_layer(None, targets=targets)
        await layer.new_channel()  # Returns once a stream (shard 0's) is up.
        channel = next(f"worker-{i}" for i in range(100) if channel_shard(f"worker-{i}", 2) == 1)
        starting = asyncio.get_running_loop().run_in_executor(None, start, 1)
        await layer.send(channel, {"type": "job", "n": 1})
        shards.append(await starting)
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 1
    finally:
        for shard in shards:
            shard.stop()


async def test_a_queued_channel_receives_a_group_placed_on_another_shard(make_layer):
    """A background worker on a named channel (no '!') that joins groups: the group's copies
    wait on the group's shard, and receive asks every shard."""
    with sharded_groupsvc(3) as targets:
        worker = make_layer(None, targets=targets)
        sender = make_layer(None, targets=targets)
        group = "jobs"
        channel = next(f"worker-{i}" for i in range(100)
                       if channel_shard(f"worker-{i}", 3) != group_shard(group, 3))
        await worker.group_add(group, channel)
        await sender.group_send(group, {"type": "job", "n": 1, "via": "group"})
        await sender.send(channel, {"type": "job", "n": 2, "via": "send"})
        got = [await asyncio.wait_for(worker.receive(channel), 5) for _ in range(2)]
        assert sorted((m["n"], m["via"]) for m in got) == [(1, "group"), (2, "send")]
        assert await worker.group_channels(group) == [channel]
