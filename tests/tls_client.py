"""A wss:// peer for tests/tls.rs: the Python `websockets` client (PyPI)
over the standard library's ssl, trusting the test's authority.

    python tls_client.py wss://127.0.0.1:PORT CA.pem

Echoes text, a 70,000-byte text (several TLS records) and binary on `/`,
and prints "ok"; any failure is an exception and a non-zero exit.
"""

import ssl
import sys

from websockets.sync.client import connect


def main() -> None:
    url, ca = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=ca)
    with connect(url + "/", ssl=context, open_timeout=5, close_timeout=5) as ws:
        for message in ["hello over tls", "x" * 70_000, b"\x00\x01\x02\xff"]:
            ws.send(message)
            echoed = ws.recv(timeout=5)
            assert echoed == message, f"sent {len(message)}, got {len(echoed)}"
    print("ok")


if __name__ == "__main__":
    main()
