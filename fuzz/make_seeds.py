#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: real requests as
browsers, curl and our own load generator send them, Autobahn-style frames
(every opcode, the three length forms, fragments with interleaved control
frames, close codes), permessage-deflate messages, and server responses.
Run from anywhere: python3 fuzz/make_seeds.py (the files are committed)."""

import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def write(target: str, name: str, data: bytes) -> None:
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


UPGRADE = (b"GET /ws/news?since=3 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wsreactor.json\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
REQUESTS = {
    "upgrade": UPGRADE,
    "chrome": (b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
               b"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0\r\nUpgrade: websocket\r\n"
               b"Origin: http://localhost:9001\r\nSec-WebSocket-Version: 13\r\n"
               b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
               b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
               b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"),
    "publish": b"POST /pub/news HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "publish_expect": (b"POST /pub/a%3Ab HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n"
                       b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"),
    "poll": b"GET /poll/news?since=10 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "sse": b"GET /sse/news HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 42\r\n\r\n",
    "absolute": b"GET http://127.0.0.1:9001/metrics HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n",
    "head10": b"HEAD /healthz HTTP/1.0\r\n\r\n",
    "smuggle": (b"GET /poll/c?since=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n\r\n"
                b"POST /pub/v HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
    "chunked": b"POST /pub/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}
for name, raw in REQUESTS.items():
    # The first byte is the split point for http_head.
    write("http_head", name, bytes([len(raw) % 256]) + raw)

FRAMINGS = {
    "length": b"Host: x\r\nContent-Length: 5",
    "lengths_same": b"Host: x\r\nContent-Length: 5, 5\r\nContent-Length: 5",
    "lengths_differ": b"Host: x\r\nContent-Length: 0\r\nContent-Length: 65",
    "plus": b"Host: x\r\nContent-Length: +5",
    "huge": b"Host: x\r\nContent-Length: 99999999999999999999999",
    "te": b"Host: x\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3",
    "no_host": b"Content-Length: 1",
}
for name, lines in FRAMINGS.items():
    write("body_framing", name, lines)


def frame(fin: bool, opcode: int, payload: bytes, rsv: int = 0, mask: bool = True) -> bytes:
    out = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n <= 125:
        out += bytes([m | n])
    elif n <= 0xFFFF:
        out += bytes([m | 126]) + struct.pack("!H", n)
    else:
        out += bytes([m | 127]) + struct.pack("!Q", n)
    if mask:
        out += KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


FRAMES = {
    "text": frame(True, 1, b"Hello"),
    "binary_126": frame(True, 2, bytes(range(256)) * 1),
    "binary_127": frame(True, 2, b"\x00" * 70000),
    "fragments_with_ping": frame(False, 1, b"Hel") + frame(True, 9, b"p") + frame(True, 0, b"lo"),
    "utf8_split": frame(False, 1, "κόσ".encode()[:3]) + frame(True, 0, "κόσ".encode()[3:]),
    "bad_utf8": frame(True, 1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
    "close_1000": frame(True, 8, struct.pack("!H", 1000) + b"bye"),
    "close_bad_code": frame(True, 8, struct.pack("!H", 1005)),
    "unmasked": frame(True, 1, b"x", mask=False),
    "rsv": frame(True, 1, b"x", rsv=2),
    "big_ping": frame(True, 9, b"x" * 126),
    "declared_16mib": bytes([0x82, 0xFF]) + struct.pack("!Q", 16 << 20) + KEY + b"y",
}
for name, raw in FRAMES.items():
    write("frames", name, bytes([len(name)]) + raw)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


DEFLATES = {
    "hello": (0x80, deflate(b"Hello, Hello, Hello")),
    "json": (0x82, deflate(b'{"id":1,"data":"' + b"abc" * 200 + b'"}')),
    "bomb": (0x01, deflate(b"\x00" * (1 << 20))),
    "empty": (0x80, b"\x00"),
    "stored": (0x03, b"\x01\x05\x00\xfa\xffhello"),
    "garbage": (0x80, b"\xff\xff\xff\xff"),
}
for name, (shape, payload) in DEFLATES.items():
    write("inflate", name, bytes([shape]) + payload)

RESPONSES = {
    "switching": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi"),
    "published": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
                  b'{"id":12,"subscribers":100}'
                  b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n"),
    "timeout": b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "refused": b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
}
for name, raw in RESPONSES.items():
    write("load_response", name, raw)
