#!/usr/bin/env python3
"""A plaintext-to-TLS relay for the Autobahn run over TLS (tests/autobahn.sh --tls).

kosoku speaks only ws://, so each connection it makes to this relay is
carried over a TLS connection of its own to the server under test: every
Autobahn case then runs through the server's TLS transport (rustls in the
reactor), its record reassembly, close_notify and all.

    tls_relay.py LISTEN_PORT TARGET_HOST TARGET_PORT

Listens on 127.0.0.1:LISTEN_PORT. The server's certificate is not checked
(the test makes a throwaway one). A plaintext EOF from kosoku closes the
TLS side (close_notify); the server's EOF closes the plaintext side.
"""

import asyncio
import ssl
import sys


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, ssl.SSLError, OSError, RuntimeError):
            pass


async def main():
    listen_port, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])

    async def relay(plain_reader, plain_writer):
        try:
            tls_reader, tls_writer = await asyncio.open_connection(host, port, ssl=ctx)
        except (ConnectionError, ssl.SSLError, OSError):
            plain_writer.close()
            return
        await asyncio.gather(pump(plain_reader, tls_writer), pump(tls_reader, plain_writer))

    server = await asyncio.start_server(relay, "127.0.0.1", listen_port)
    print(f"relaying 127.0.0.1:{listen_port} to TLS {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
