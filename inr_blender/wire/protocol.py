"""Wire format shared by the Blender side and the backend worker.

A message is one frame::

    4 bytes   big-endian length H of the JSON header
    H bytes   UTF-8 JSON header: {"type": ..., ..., "arrays": [[name, nbytes], ...]}
    then      for each listed array, `nbytes` bytes of a raw ``.npy`` file

Arrays are written with ``np.save(allow_pickle=False)`` and read with
``np.load(allow_pickle=False)``: object arrays cannot cross, and no pickle is
ever read. This module needs only the standard library and numpy, so Blender's
own Python can import it.
"""

from __future__ import annotations

import io
import json
import socket
import struct
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # a header is small JSON; anything bigger is an attack or a bug
MAX_ARRAY_BYTES = 1 << 34  # 16 GiB per array
_LEN = struct.Struct("!I")

# Message kinds: a frame header's "type". The client sends HELLO (with the token), JOB, CANCEL, PING and
# SHUTDOWN; the worker answers WELCOME, PROGRESS, RESULT, ERROR, PONG and BYE. LOST never crosses the wire:
# the client queues it for a job whose connection went away.
HELLO = "hello"
WELCOME = "welcome"
JOB = "job"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCEL = "cancel"
PING = "ping"
PONG = "pong"
SHUTDOWN = "shutdown"
BYE = "bye"
LOST = "lost"

# An ERROR frame's "kind": why the job (or the connection) ended.
CANCELLED = "cancelled"  # the client's CANCEL stopped the job
INPUT = "input"  # bad input (a JobError), or out of memory: one clear line for the user
INTERNAL = "internal"  # a bug in the backend: the message and a traceback in "detail"
BAD_MESSAGE = "protocol"  # a frame of an unknown type
AUTH = "auth"  # the token was wrong

# What a checkpoint is called on the wire: the job param of its path (a worker on this machine reads or writes the
# file) or the uint8 array of its bytes (a remote worker); RETURN_CHECKPOINT asks a fit to send its bytes back.
CHECKPOINT = "checkpoint"
CHECKPOINT_PATH = "checkpoint_path"
RETURN_CHECKPOINT = "return_checkpoint"


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or went away."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection."""


def encode_array(array: np.ndarray) -> bytes:
    """Serialise one array as the bytes of a ``.npy`` file (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """Read the bytes of a ``.npy`` file; refuses pickled (object) arrays."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_frame(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Build one frame: length-prefixed JSON header, then the ``.npy`` payloads."""
    payloads = [(name, encode_array(np.asarray(a))) for name, a in (arrays or {}).items()]
    head = dict(header)
    head["arrays"] = [[name, len(blob)] for name, blob in payloads]
    raw = json.dumps(head, allow_nan=False).encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes is over the {MAX_HEADER_BYTES}-byte limit")
    return b"".join([_LEN.pack(len(raw)), raw] + [blob for _, blob in payloads])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionClosed("connection closed by the peer")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_header(sock: socket.socket) -> dict[str, Any]:
    """Read only the JSON header of the next frame (the payloads stay unread)."""
    (length,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"header length {length} is over the limit; not a worker peer?")
    try:
        header = json.loads(_recv_exact(sock, length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed frame header: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise ProtocolError("malformed frame header")
    return header


def recv_arrays(sock: socket.socket, header: dict[str, Any]) -> dict[str, np.ndarray]:
    """Read the ``.npy`` payloads that ``header`` announces."""
    arrays = {}
    for entry in header.get("arrays", []):
        name, nbytes = entry
        if not isinstance(nbytes, int) or nbytes < 0 or nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError(f"array {name!r} announces an invalid size {nbytes!r}")
        try:
            arrays[str(name)] = decode_array(_recv_exact(sock, nbytes))
        except ValueError as exc:
            raise ProtocolError(f"array {name!r} is not a plain .npy payload: {exc}") from None
    return arrays


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one whole frame: header and arrays."""
    header = recv_header(sock)
    return header, recv_arrays(sock, header)


def send_frame(sock: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame."""
    sock.sendall(encode_frame(header, arrays))
