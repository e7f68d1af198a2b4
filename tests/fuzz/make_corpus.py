#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

    tests/fuzz/make_corpus.py      # from anywhere; needs protoc for attach_fuzz

The outputs are committed; run this again only to change the seeds. Each
target's input layout is described at the top of its .cc file.
"""
import os
import pathlib
import struct
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# ---------------------------------------------------------------- ws_frame_fuzz


def frame(opcode, payload, fin=True, key=b"\x37\xfa\x21\x3d", masked=True):
    """One client frame (RFC 6455 5.2), masked unless told otherwise."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([b0, (0x80 if masked else 0) | n])
    elif n <= 0xFFFF:
        header = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack(">H", n)
    else:
        header = bytes([b0, (0x80 if masked else 0) | 127]) + struct.pack(">Q", n)
    if not masked:
        return header + payload
    return header + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def ws(limit=8, chunk=0, seed=1, round_trip=0x3C, key=0x5A):
    """The 5-byte prefix of ws_frame_fuzz: limit index 8 is 64 KiB, as the edge's
    --max_frame_bytes; chunk 0 is all at once; round trip 0x3C: a text frame of
    the stream's own bytes."""
    return bytes([limit, chunk, seed, round_trip, key])


TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
hello = b'{"message": "hello"}'
seeds_ws = {
    "text": ws() + frame(TEXT, hello),
    "text_bytewise": ws(chunk=1) + frame(TEXT, hello) + frame(TEXT, b'{"message": "2"}'),
    "text_utf8": ws(chunk=3) + frame(TEXT, '{"message": "h\u00e9llo \U0001F600"}'.encode()),
    "text_16bit_length": ws(chunk=7, seed=9) + frame(TEXT, b"x" * 300),
    "fragmented": ws(chunk=5)
    + frame(TEXT, b'{"mess', fin=False)
    + frame(PING, b"in between")
    + frame(CONT, b'age": ', fin=False)
    + frame(CONT, b'"hi"}'),
    "fragmented_too_big": ws(limit=3, chunk=50)
    + frame(TEXT, b"a" * 100, fin=False)
    + frame(CONT, b"b" * 25, fin=False)
    + frame(CONT, b"c" * 100),
    "fragmented_binary": ws() + frame(BINARY, b"\x00\x01", fin=False) + frame(CONT, b"\xff"),
    "ping": ws(round_trip=0x3E) + frame(PING, b"are you there"),
    "pong": ws(round_trip=0x3F) + frame(PONG, b""),
    "close_1000": ws() + frame(CLOSE, struct.pack(">H", 1000) + b"bye"),
    "close_empty": ws() + frame(CLOSE, b""),
    "close_bad_code": ws() + frame(CLOSE, struct.pack(">H", 1005)),
    "binary": ws(round_trip=0x3D) + frame(BINARY, bytes(range(64))),
    "invalid_utf8": ws() + frame(TEXT, b'{"message": "\xc3\x28"}'),
    "unmasked": ws() + frame(TEXT, hello, masked=False),
    "too_big_64bit": ws(limit=6) + bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 20) + b"\0\0\0\0",
    "limit_edge": ws(limit=3, chunk=2) + frame(TEXT, b"a" * 125) + frame(TEXT, b"b" * 126),
    "round_trip_64k": ws(round_trip=0x10) + b"abc",
    "close_round_trip": ws(round_trip=0x3C) + struct.pack(">H", 4000) + b"reason",
}

# ------------------------------------------------------------ http_upgrade_fuzz


def request(target, headers, method="GET", body=b""):
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def upgrade(target, host="127.0.0.1:8000", origin="http://127.0.0.1:8000", extra=()):
    headers = [("Host", host)]
    if origin is not None:
        headers.append(("Origin", origin))
    headers += [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    return request(target, headers + list(extra))


seeds_http = {
    "chat_upgrade": b"\x00" + upgrade("/ws/chat/lobby/"),
    "chat_upgrade_bytewise": b"\x01" + upgrade("/ws/chat/room_1/"),
    "echo_upgrade": b"\x10" + upgrade("/ws/echo/", origin=None),
    "chat_https_origin": b"\x00"
    + upgrade("/ws/chat/lobby/?x=1", host="chat.example.com", origin="https://chat.example.com"),
    "foreign_origin": b"\x00" + upgrade("/ws/chat/lobby/", origin="http://evil.example.net"),
    "origin_default_port": b"\x00"
    + upgrade("/ws/echo/", host="Example.COM:80", origin="http://example.com"),
    "ipv6_host": b"\x00" + upgrade("/ws/chat/a/", host="[::1]:8000", origin="http://[::1]:8000"),
    "percent_path": b"\x00" + upgrade("/ws/chat/lob%62y/"),
    "bad_room": b"\x00" + upgrade("/ws/chat/no-dash/"),
    "long_room": b"\x00" + upgrade("/ws/chat/" + "r" * 95 + "/"),
    "keep_alive_then_upgrade": b"\x00"
    + request("/chat/", [("Host", "localhost:8000")])
    + request("/healthz", [("Host", "localhost:8000")])
    + upgrade("/ws/chat/lobby/", host="localhost:8000", origin="http://localhost:8000"),
    "post_body": b"\x00"
    + request(
        "/ws/echo/", [("Host", "h"), ("Content-Length", "11")], method="POST", body=b"hello world"
    ),
    "chunked_body": b"\x03"
    + request("/", [("Host", "h"), ("Transfer-Encoding", "chunked")], method="POST")
    + b"5\r\nhello\r\n0\r\n\r\n",
}

# --------------------------------------------------------------- chat_json_fuzz

seeds_json = {
    "message": b'{"message": "hello"}',
    "message_unicode": '{"message": "h\u00e9llo \U0001F600 \\u00e9\\ud83d\\ude00"}'.encode(),
    "message_escapes": b'{"message": "a\\"b\\\\c\\n\\u0000"}',
    "message_extra_fields": b'{"type": "x", "message": "hi", "n": [1, 2.5e3, true, null]}',
    "message_not_string": b'{"message": 5}',
    "message_duplicate": b'{"message": "a", "message": "b"}',
    "no_message": b'{"text": "hi"}',
    "array": b'["message", "hi"]',
    "not_json": b"hello",
    "empty": b"",
    "deep": b'{"message": "x", "a": ' + b"[" * 40 + b"]" * 40 + b"}",
    "event": b'{"type": "chat.message", "message": "hi"}',
}

# ------------------------------------------------------------------ attach_fuzz

seeds_attach = {
    "hello_and_join": """
hello { edge_id: "edge-1" channel_prefix: "edge-1!" incarnation: "0123456789abcdef" }
commands { request_id: 1 group_add { group: "chat_lobby" channel: "edge-1!c1" } }
commands { request_id: 2 group_add { group: "chat_lobby" channel: "edge-1!c2" } }
""",
    "hello_new_edge": """
hello { edge_id: "edge-3" channel_prefix: "edge-3!" incarnation: "a random secret, 16+" }
commands { request_id: 1 group_add { group: "chat_lobby" channel: "edge-3!c1" } }
commands { request_id: 2 group_send { group: "chat_lobby"
  event { type: "chat.message" json: "{\\"type\\":\\"chat.message\\",\\"message\\":\\"hi\\"}" } } }
""",
    "hello_other_process": """
hello { edge_id: "edge-2" channel_prefix: "edge-2!" incarnation: "not edge-2's secret" }
commands { request_id: 1 group_add { group: "g" channel: "edge-2!x" } }
""",
    "lost_and_back": """
commands { request_id: 9 group_add { group: "chat_lobby" channel: "edge-1!c1" } }
commands { request_id: 137 group_send { group: "chat_lobby" event { type: "t" json: "{}" } } }
commands { request_id: 128 group_send { group: "chat_lobby" event { type: "t" json: "{}" } } }
commands { request_id: 193 group_add { group: "chat_lobby" channel: "edge-1!c1" } }
commands { request_id: 1 group_send { group: "chat_lobby" event { type: "t" json: "{}" } } }
commands { request_id: 63 group_send { group: "chat_lobby" event { type: "t" json: "{}" } } }
""",
    "queued_and_received": """
commands { request_id: 8 group_add { group: "g" channel: "specific.a!b" } }
commands { request_id: 1 send { channel: "specific.a!b" event { type: "t" json: "{}" } } }
commands { request_id: 65 send { channel: "specific.a!b" event { type: "t" json: "{}" } } }
commands { request_id: 63 group_send { group: "g" event { type: "t" json: "{}" } } }
""",
    "full_edge_stream": """
commands { request_id: 9 group_add { group: "room" channel: "edge-2!a" } }
commands { request_id: 2 group_add { group: "room" channel: "edge-2!b" } }
commands { request_id: 3 group_add { group: "room" channel: "edge-1!c" } }
commands { request_id: 4 group_add { group: "room" channel: "queue.q" } }
commands { request_id: 5 group_send { group: "room" event { type: "t" json: "{}" } } }
commands { request_id: 6 send { channel: "edge-2!a" event { type: "t" json: "{}" } } }
""",
    "expired_then_received": """
commands { request_id: 1 send { channel: "queue.q" event { type: "t" json: "{}" } } }
commands { request_id: 2 send { channel: "queue.q" event { type: "t" json: "{}" } } }
commands { request_id: 127 group_add { group: "g" channel: "queue.q" } }
commands { request_id: 65 send { channel: "queue.q" event { type: "t" json: "{}" } } }
""",
    "group_send": """
commands { request_id: 1 group_add { group: "chat_lobby" channel: "edge-1!c1" } }
commands { request_id: 2 group_add { group: "chat_lobby" channel: "queue.x!y" } }
commands { request_id: 3 group_send { group: "chat_lobby"
  event { type: "chat.message" json: "{\\"type\\":\\"chat.message\\",\\"message\\":\\"hi\\"}" } } }
""",
    "discard": """
commands { request_id: 1 group_add { group: "g" channel: "edge-1!a" } }
commands { request_id: 2 group_discard { group: "g" channel: "edge-1!a" } }
commands { request_id: 3 group_discard { group: "g" channel: "edge-1!a" } }
""",
    "send_to_channel": """
commands { request_id: 7 send { channel: "specific.abc!def"
  event { type: "hello" json: "{\\"type\\":\\"hello\\"}" } } }
commands { request_id: 8 send { channel: "edge-1!c1" event { type: "x" json: "{}" } } }
""",
    "bad_names": """
commands { request_id: 1 group_add { group: "bad group" channel: "edge-1!c1" } }
commands { request_id: 2 group_add { group: "chat_lobby" channel: "a!b!c" } }
commands { request_id: 3 group_send { group: "" event { type: "" json: "" } } }
commands { request_id: 4 }
""",
}


def encode_attach(text):
    proto = ROOT / "protos"
    return subprocess.run(
        ["protoc", f"-I{proto}", "--encode=groupsvc.v1.EdgeMessage", "groupsvc/v1/layer.proto"],
        input=text.encode(),
        stdout=subprocess.PIPE,
        check=True,
        cwd=proto,
    ).stdout


def main():
    for target, seeds in [
        ("ws_frame_fuzz", seeds_ws),
        ("http_upgrade_fuzz", seeds_http),
        ("chat_json_fuzz", seeds_json),
    ]:
        for name, data in seeds.items():
            write(target, name, data)
    for name, text in seeds_attach.items():
        write("attach_fuzz", name, encode_attach(text))
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(os.listdir(d))} seeds")


if __name__ == "__main__":
    main()
