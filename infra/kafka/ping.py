"""Ask a Kafka broker for its API versions: the smallest real client request there is.

Standard library only, so `infra/kafka/start` can wait for the broker before any virtual
environment exists. Exit 0 when the broker answers ApiVersions with error code 0.
Wire format: Kafka protocol guide, ApiVersions (api key 18) version 0.
"""

from __future__ import annotations

import socket
import struct
import sys


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    client_id = b"cehub-ping"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            response = _read_exact(sock, size)
    except OSError:
        return False
    correlation_id, error_code = struct.unpack(">ih", response[:6])
    return correlation_id == 7 and error_code == 0


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return chunks


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    sys.exit(0 if api_versions_ok(host, port) else 1)
