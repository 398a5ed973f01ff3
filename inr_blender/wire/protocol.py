"""Wire format shared by the Blender side and the backend worker.

A message is one frame::

    4 bytes   big-endian length H of the JSON header
    H bytes   UTF-8 JSON header: {"type": ..., ..., "arrays": [[name, nbytes], ...]}
    then      for each listed array, `nbytes` bytes of a raw ``.npy`` file

Arrays are written with ``np.save(allow_pickle=False)`` and read with
``np.load(allow_pickle=False)``: object arrays cannot cross, and no pickle is
ever read. This module needs only the standard library and numpy, so Blender's
own Python can import it.

Both ends treat what they read as untrusted: a frame is parsed under :class:`Limits` (header size, JSON nesting
depth, length of number literals, text that is valid UTF-8, number and size of arrays, each ``.npy`` payload
exactly as large as its own header says) and anything else is a :class:`ProtocolError`, never another exception.
Payloads are read as they arrive, never allocated from what a peer declares.
"""

from __future__ import annotations

import io
import json
import math
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.lib import format as npy_format

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # a header is small JSON; anything bigger is an attack or a bug
MAX_HELLO_BYTES = 1 << 14  # the hello, read before the token is checked, is smaller still
MAX_DEPTH = 32  # nesting of JSON objects and lists in a header (params hold a few levels at most)
MAX_NUMBER_CHARS = 64  # a JSON number literal longer than this is refused (int() of thousands of digits is slow)
MAX_ARRAYS = 64  # arrays in one frame
MAX_NAME_CHARS = 128  # characters of an array's name
MAX_ARRAY_BYTES = 1 << 34  # 16 GiB per array
MAX_FRAME_BYTES = 1 << 36  # 64 GiB of arrays in one frame (a worker also checks its available memory)
MAX_MESSAGE_CHARS = 500  # an error message crosses as one line of at most this many characters
ARRAY_KINDS = "biufc"  # numpy dtype kinds that cross: bool, integers, floats, complex (no strings, records, objects)
_LEN = struct.Struct("!I")
_CHUNK = 1 << 20  # bytes per recv/send call

# Message kinds: a frame header's "type". The client sends HELLO (with the token), JOB, CANCEL, PING and
# SHUTDOWN; the worker answers WELCOME, PROGRESS, PREVIEW, RESULT, ERROR, PONG and BYE. LOST never crosses the
# wire: the client queues it for a job whose connection went away.
HELLO = "hello"
WELCOME = "welcome"
JOB = "job"
PROGRESS = "progress"
PREVIEW = "preview"  # a fit's live preview: "kind" (PREVIEW_KINDS), "info" and the kind's arrays
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
INTERNAL = "internal"  # a bug in the backend: one line (type and message); the traceback stays in the worker's log
BAD_MESSAGE = "protocol"  # a malformed frame, or one of an unknown type
AUTH = "auth"  # the token was wrong (or too many wrong tokens came from this address)
BUSY = "busy"  # another client is connected: try again when its job is done

# A PREVIEW frame's "kind" and the arrays it carries: a surface in the field's local frame (float vertices (V, 3),
# integer faces (F, 3)) or a view (uint8 rgb (H, W, 3)); at most MAX_PREVIEW_BYTES of arrays, MAX_PREVIEW_SIDE pixels.
PREVIEW_KINDS = {"mesh": ("vertices", "faces"), "image": ("rgb",)}
MAX_PREVIEW_BYTES = 64 << 20
MAX_PREVIEW_SIDE = 4096

# What a checkpoint is called on the wire: the job param of its path (a worker on this machine reads or writes the
# file) or the uint8 array of its bytes (a remote worker); RETURN_CHECKPOINT asks a fit to send its bytes back.
CHECKPOINT = "checkpoint"
CHECKPOINT_PATH = "checkpoint_path"
RETURN_CHECKPOINT = "return_checkpoint"


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or went away."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection."""


class FrameTimeout(ProtocolError):
    """A frame did not arrive before its deadline."""


class Receiver(Protocol):
    """What frames are read from: a socket, or a wrapper around one."""

    def recv(self, bufsize: int, /) -> bytes: ...

    def settimeout(self, value: float | None, /) -> None: ...


@dataclass(frozen=True)
class Limits:
    """What a frame may hold; anything beyond is a :class:`ProtocolError` before it is read."""

    header_bytes: int = MAX_HEADER_BYTES
    depth: int = MAX_DEPTH
    number_chars: int = MAX_NUMBER_CHARS
    arrays: int = MAX_ARRAYS
    array_bytes: int = MAX_ARRAY_BYTES
    frame_bytes: int = MAX_FRAME_BYTES


LIMITS = Limits()
HELLO_LIMITS = Limits(header_bytes=MAX_HELLO_BYTES)


def one_line(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters (what an error message may be on the wire)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def encode_array(array: np.ndarray) -> bytes:
    """Serialise one array as the bytes of a ``.npy`` file (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """Read the bytes of a ``.npy`` file; refuses pickled (object) arrays, other than plain numeric dtypes, and a
    payload whose size is not what its own header's shape and dtype say (ValueError)."""
    buf = io.BytesIO(data)
    try:
        version = npy_format.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(buf)
        else:
            raise ValueError(f".npy format version {version} is not accepted")
    except ValueError:
        raise
    except Exception as exc:  # a crafted header: whatever the parser raised, it is not a valid array
        raise ValueError(f"unreadable .npy header ({type(exc).__name__})") from None
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"arrays of dtype {dtype.str!r} do not cross the wire")
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"negative shape {shape}")
    expected = math.prod(int(n) for n in shape) * dtype.itemsize
    if expected != len(data) - buf.tell():
        raise ValueError(f"the payload holds {len(data) - buf.tell()} bytes of data, its header says {expected}")
    buf.seek(0)
    try:
        return np.load(buf, allow_pickle=False)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"unreadable .npy payload ({type(exc).__name__})") from None


def encode_frame(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Build one frame: length-prefixed JSON header, then the ``.npy`` payloads."""
    payloads = [(name, encode_array(np.asarray(a))) for name, a in (arrays or {}).items()]
    head = dict(header)
    head["arrays"] = [[name, len(blob)] for name, blob in payloads]
    raw = json.dumps(head, allow_nan=False).encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes is over the {MAX_HEADER_BYTES}-byte limit")
    return b"".join([_LEN.pack(len(raw)), raw] + [blob for _, blob in payloads])


def _recv_exact(sock: Receiver, n: int, deadline: float | None = None) -> bytes:
    """``n`` bytes as they arrive (never allocated up front); by ``deadline`` (time.monotonic) when given."""
    chunks = []
    remaining = n
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout("timed out waiting for a frame")
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, _CHUNK))
        except TimeoutError:
            raise FrameTimeout("timed out waiting for a frame") from None
        if not chunk:
            raise ConnectionClosed("connection closed by the peer")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# The JSON tokens that nest, found outside strings: a string literal (skipped) or a bracket.
_NESTING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_depth(raw: bytes, limit: int) -> None:
    depth = 0
    for match in _NESTING.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise ProtocolError(f"frame header nests deeper than {limit} levels")
        elif token in (b"]", b"}"):
            depth -= 1


class _Refused(Exception):
    """Raised by the JSON hooks below; turned into a ProtocolError."""


def _parse_json(raw: bytes, limits: Limits) -> Any:
    _check_depth(raw, limits.depth)

    def number(text: str, kind: type) -> Any:
        if len(text) > limits.number_chars:
            raise _Refused(f"a number literal of {len(text)} characters (the limit is {limits.number_chars})")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise _Refused(f"the number {text[:20]} is not finite")
        return value

    def constant(text: str) -> Any:
        raise _Refused(f"{text} is not a JSON number")

    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_int=lambda t: number(t, int), parse_float=lambda t: number(t, float), parse_constant=constant)
    except _Refused as exc:
        raise ProtocolError(f"malformed frame header: {exc}") from None
    except UnicodeDecodeError:
        raise ProtocolError("malformed frame header: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"malformed frame header: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProtocolError(f"malformed frame header: {type(exc).__name__}") from None


def _check_text(value: Any) -> None:
    """Every string (and key) in ``value`` encodes as UTF-8: JSON's \\ud800 escapes make lone surrogates, which
    ``str.encode`` refuses later, wherever the text is used."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ProtocolError("malformed frame header: a string is not valid Unicode text (a lone surrogate)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_header(header: Any, limits: Limits = LIMITS) -> dict[str, Any]:
    """``header`` as a valid frame header (a JSON object with a string "type" and a well-formed "arrays" list), or
    :class:`ProtocolError`."""
    if not isinstance(header, dict):
        raise ProtocolError("malformed frame header: not a JSON object")
    _check_text(header)
    if not isinstance(header.get("type"), str):
        raise ProtocolError("malformed frame header: no message type")
    entries = header.get("arrays", [])
    if not isinstance(entries, list):
        raise ProtocolError("malformed frame header: 'arrays' is not a list")
    if len(entries) > limits.arrays:
        raise ProtocolError(f"a frame announces {len(entries)} arrays; the limit is {limits.arrays}")
    names, total = set(), 0
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ProtocolError("malformed frame header: an 'arrays' entry is not [name, nbytes]")
        name, nbytes = entry
        if not 0 < len(name) <= MAX_NAME_CHARS or name in names:
            raise ProtocolError(f"malformed frame header: array name {name[:MAX_NAME_CHARS]!r} is empty, too long or repeated")
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or not 0 <= nbytes <= limits.array_bytes:
            raise ProtocolError(f"array {name!r} announces an invalid size {str(nbytes)[:40]}")
        names.add(name)
        total += nbytes
    if total > limits.frame_bytes:
        raise ProtocolError(f"a frame announces {total} bytes of arrays; the limit is {limits.frame_bytes}")
    header["arrays"] = entries
    return header


def recv_header(sock: Receiver, limits: Limits = LIMITS, deadline: float | None = None) -> dict[str, Any]:
    """Read and check only the JSON header of the next frame (the payloads stay unread)."""
    (length,) = _LEN.unpack(_recv_exact(sock, _LEN.size, deadline))
    if length > limits.header_bytes:
        raise ProtocolError(f"header length {length} is over the {limits.header_bytes}-byte limit; not a worker peer?")
    return check_header(_parse_json(_recv_exact(sock, length, deadline), limits), limits)


def array_bytes(header: dict[str, Any]) -> int:
    """The bytes of arrays a checked header announces."""
    return sum(nbytes for _, nbytes in header.get("arrays", []))


def recv_arrays(sock: Receiver, header: dict[str, Any], deadline: float | None = None) -> dict[str, np.ndarray]:
    """Read the ``.npy`` payloads that a checked ``header`` announces."""
    arrays = {}
    for name, nbytes in header.get("arrays", []):
        data = _recv_exact(sock, nbytes, deadline)
        try:
            arrays[name] = decode_array(data)
        except ValueError as exc:
            raise ProtocolError(f"array {name!r} is not a plain .npy payload: {exc}") from None
        except MemoryError:
            raise ProtocolError(f"array {name!r} does not fit in memory") from None
    return arrays


def recv_frame(sock: Receiver, limits: Limits = LIMITS, deadline: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one whole frame: header and arrays."""
    header = recv_header(sock, limits, deadline)
    return header, recv_arrays(sock, header, deadline)


def send_bytes(sock: socket.socket, data: bytes) -> None:
    """Write ``data`` in pieces, so that a socket timeout bounds each piece's wait (a stalled peer), not the whole."""
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        sock.sendall(view[start : start + _CHUNK])


def send_frame(sock: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame."""
    send_bytes(sock, encode_frame(header, arrays))
