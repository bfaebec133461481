"""The message protocol of ``regnn serve`` (version 1). Full description: docs/online.md.

Every message is one JSON object in a WebSocket **text** message, with a ``"type"``, except
the compact **binary** form of ``frames`` and of its ``reaction`` reply (below).

Client -> server

* ``{"type": "start", "k": 3, "seed": 0, "sigma": 0.6}`` opens the session (``k``, ``seed``
  and ``sigma`` optional: 1, 0 and the model's default).
* ``{"type": "frames", "seq": 7, "face": [[25 numbers], ...], "audio": {...}}`` sends the next
  speaker frames (``face``: one frame ``[25 numbers]`` or a list of frames, in the REACT
  attribute order) and optionally the audio recorded with them::

      "audio": {"sample_rate": 16000, "encoding": "pcm_s16le", "data": "<base64>",
                "channels": 1}

  ``encoding``: ``pcm_s16le`` (base64 of little-endian int16), ``f32le`` (base64 of
  little-endian float32) or ``float`` (``data`` is a JSON list of numbers in [-1, 1]);
  multi-channel data is interleaved and mixed to mono. ``seq`` is optional and echoed back.
* ``{"type": "end"}`` closes the session (the server replies ``ended`` and closes).

Server -> client

* ``started``: ``session``, ``protocol``, ``k``, ``seed``, ``sigma``, ``fps``, ``hop``,
  ``context``, ``uses_audio``, ``attributes`` (the 25 names), ``model``.
* ``reaction`` (one per ``frames`` message): ``seq``, ``start`` (index of the first listener
  frame returned), ``frames`` (``K`` lists of ``n_out`` frames of 25 numbers; ``n_out`` may be
  0 while audio is missing), ``frames_in`` (speaker frames received so far), ``compute_ms``.
* ``ended``: ``frames_in``, ``frames_out``.
* ``error``: ``code``, ``message`` (and ``seq`` when known). A malformed message is answered
  with an error and the session goes on unchanged; codes: ``bad-json``, ``bad-message``,
  ``no-session``, ``already-started``, ``bad-face``, ``bad-audio``, ``rejected`` (e.g. the face
  frames run too far ahead of the audio), ``busy`` (session limit), ``too-large`` (a message
  over the limit for its state: :data:`MAX_START_BYTES` before ``start``; the connection is
  then closed), ``start-timeout`` (no ``start`` within the server's start timeout; closed),
  ``internal`` (a server fault, logged on the server; the session is closed). Error messages
  never carry raw exception text.

Binary frames (WebSocket **binary** messages; all numbers little-endian). A ``frames`` message
may be sent as :data:`FRAMES_HEADER` (20 bytes: magic ``b"RGF1"``, int64 ``seq``, uint16
``n`` frames (1..250), uint8 audio encoding (0 none, 1 ``pcm_s16le``, 2 ``f32le``), uint8
channels (0 without audio, else 1..8), uint32 sample rate (0 without audio)), then ``n x 25``
float32 face attributes, then the audio bytes. It is answered by a binary ``reaction``:
:data:`REACTION_HEADER` (28 bytes: magic ``b"RGR1"``, int64 ``seq``, uint32 ``start``, uint32
``frames_in``, uint16 ``K``, uint16 ``n_out``, float32 ``compute_ms``), then ``K x n_out x
25`` float32. ``start``, ``end`` and errors stay JSON text. :func:`frames_binary` and
:func:`decode_reaction` write and read them; NumPy alone is enough on the client side.

Limits: a message is at most :data:`MAX_MESSAGE_BYTES` (computed below from 250 frames and
their audio; larger ones close the connection with WebSocket code 1009), at most
:data:`MAX_START_BYTES` before the session has started.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from regnn import schema

PROTOCOL_VERSION = 1
MAX_FRAMES_PER_MESSAGE = 250  # 10 s at 25 fps
MAX_AUDIO_SECONDS = 12.0
MAX_SAMPLE_RATE = 192_000
ENCODINGS = ("pcm_s16le", "f32le", "float")
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_SEQ_CHARS = 64  # a string seq is echoed back: keep it short
MAX_SEQ = 2**63 - 1

#: Characters of the longest JSON text of one float64 (``-2.2250738585072014e-308``).
NUMBER_CHARS = 24
#: Audio the size limit is computed for: the 10 s recorded with 250 frames, mono 48 kHz, as
#: ``f32le`` base64 (the largest binary encoding; 48 kHz stereo ``pcm_s16le`` is the same size).
LIMIT_SAMPLE_RATE = 48_000
#: The largest message the server reads: a ``frames`` message of 250 face frames written at
#: full float64 precision (``[`` + 25 numbers with ``", "`` + ``], ``) plus the audio above
#: (4 base64 characters per 3 bytes), plus 1 KiB for the keys, ``seq`` and the audio fields.
#: = 163,500 + 2,560,000 + 1,024 = 2,724,524 bytes (2.6 MiB). Float-list audio (``float``,
#: ~22 characters a sample) fits ~116,000 samples in a message: send it in smaller messages.
MAX_MESSAGE_BYTES = (
    MAX_FRAMES_PER_MESSAGE * (schema.NUM_ATTRIBUTES * (NUMBER_CHARS + 2) + 4)
    + 4 * math.ceil(MAX_FRAMES_PER_MESSAGE * LIMIT_SAMPLE_RATE // schema.FPS * 4 / 3)
    + 1024)
#: The largest message accepted before ``start`` (a ``start`` is under 100 bytes): a
#: connection without a session cannot make the server read or parse megabytes.
MAX_START_BYTES = 4096


#: Header of a binary ``frames`` message: magic, seq, frames, audio encoding, channels, rate.
FRAMES_HEADER = struct.Struct("<4sqHBBI")
FRAMES_MAGIC = b"RGF1"
#: Header of a binary ``reaction``: magic, seq, start, frames_in, K, n_out, compute_ms.
REACTION_HEADER = struct.Struct("<4sqIIHHf")
REACTION_MAGIC = b"RGR1"
#: Audio encodings of binary ``frames`` by their code (0: no audio).
BINARY_ENCODINGS = {1: "pcm_s16le", 2: "f32le"}
BINARY_CODES = {name: code for code, name in BINARY_ENCODINGS.items()}


class ProtocolError(Exception):
    """A message the server cannot accept; ``code`` is sent back to the client."""

    def __init__(self, code: str, message: str, seq: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.seq = code, message, seq

    def __reduce__(self) -> tuple:  # parsed in a worker process: must survive pickling
        return (ProtocolError, (self.code, self.message, self.seq))

    def reply(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass
class Start:
    k: int = 1
    seed: int = 0
    sigma: float | None = None


@dataclass
class Frames:
    face: np.ndarray  # (n, 25) float32
    samples: np.ndarray | None = None  # (m,) float32 mono
    sample_rate: int | None = None
    seq: Any = None
    binary: bool = False  # sent as a binary message: answered with a binary reaction


@dataclass
class End:
    pass


def parse(raw: str | bytes, k_max: int = 10) -> Start | Frames | End:
    """Validate one client message; raises :class:`ProtocolError` with a precise message."""
    if isinstance(raw, bytes | bytearray | memoryview):
        return _parse_binary(bytes(raw))
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError as exc:  # its text is a position, not the client's data
        raise ProtocolError("bad-json", f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("bad-json", "message is nested too deeply") from None
    except ValueError:  # an integer with more digits than int() converts (4300)
        raise ProtocolError("bad-message", "a number in the message has too many digits") \
            from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad-message", f"a message must be a JSON object, got "
                            f"{type(msg).__name__}")
    seq = msg.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int | str)
                            or (isinstance(seq, int) and not -MAX_SEQ <= seq <= MAX_SEQ)
                            or (isinstance(seq, str) and len(seq) > MAX_SEQ_CHARS)):
        raise ProtocolError("bad-message", "'seq' must be an integer in [-2**63+1, 2**63-1] or "
                            f"a string of at most {MAX_SEQ_CHARS} characters")
    kind = msg.get("type")
    if kind == "start":
        return _parse_start(msg, k_max)
    if kind == "frames":
        face = _parse_face(msg.get("face"), seq)
        samples, rate = _parse_audio(msg.get("audio"), seq)
        return Frames(face, samples, rate, seq)
    if kind == "end":
        return End()
    raise ProtocolError("bad-message", f"unknown message type {kind!r:.40}; expected 'start', "
                        "'frames' or 'end'", seq)


def _parse_binary(raw: bytes) -> Frames:
    """A binary ``frames`` message (see the module docstring)."""
    head = FRAMES_HEADER.size
    if len(raw) < head or raw[:4] != FRAMES_MAGIC:
        raise ProtocolError("bad-message", f"a binary message must be a 'frames' message: "
                            f"{head} header bytes starting with {FRAMES_MAGIC!r}, then the face "
                            f"frames (docs/online.md); got {len(raw)} bytes starting with "
                            f"{raw[:4]!r}")
    _, seq, n, enc_code, channels, rate = FRAMES_HEADER.unpack_from(raw)
    if not 1 <= n <= MAX_FRAMES_PER_MESSAGE:
        raise ProtocolError("bad-face", f"binary frames: {n} face frames in the header; expected "
                            f"1..{MAX_FRAMES_PER_MESSAGE}", seq)
    n_attr = schema.NUM_ATTRIBUTES
    face_bytes = n * n_attr * 4
    if len(raw) < head + face_bytes:
        raise ProtocolError("bad-face", f"binary frames: the header announces {n} frames "
                            f"({face_bytes} bytes of float32), the message has "
                            f"{len(raw) - head} bytes after the header", seq)
    face = np.frombuffer(raw, dtype="<f4", count=n * n_attr, offset=head).reshape(n, n_attr)
    if not np.isfinite(face).all():
        i, j = np.argwhere(~np.isfinite(face))[0]
        raise ProtocolError("bad-face", f"face frame {i}, attribute {j} "
                            f"({schema.ATTRIBUTE_NAMES[j]}) is not finite", seq)
    audio = raw[head + face_bytes:]
    if enc_code == 0:
        if audio or channels or rate:
            raise ProtocolError("bad-audio", f"binary frames without audio (encoding 0) must "
                                f"have channels 0, sample rate 0 and nothing after the face "
                                f"frames; got channels {channels}, rate {rate}, {len(audio)} "
                                "audio bytes", seq)
        return Frames(face.astype(np.float32), None, None, seq, binary=True)
    enc = BINARY_ENCODINGS.get(enc_code)
    if enc is None:
        raise ProtocolError("bad-audio", f"binary frames: audio encoding {enc_code}; expected 0 "
                            "(none), 1 (pcm_s16le) or 2 (f32le)", seq)
    _check_rate_channels(rate, channels, seq)
    samples, rate = _audio_samples(audio, enc, rate, channels, seq)
    return Frames(face.astype(np.float32), samples, rate, seq, binary=True)


def _short(value: Any) -> str:
    """``repr`` of a client value, cut to 40 characters (error messages echo no bulk)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number with too many digits"
    return text if len(text) <= 40 else text[:37] + "..."


def _int_field(msg: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad-message", f"'{key}' must be an integer, got {value!r:.40}")
    if not lo <= value <= hi:
        raise ProtocolError("bad-message", f"'{key}' must be in [{lo}, {hi}], got {_short(value)}")
    return value


def _parse_start(msg: dict, k_max: int) -> Start:
    unknown = set(msg) - {"type", "k", "seed", "sigma", "seq"}
    if unknown:
        raise ProtocolError("bad-message", f"unknown field(s) in 'start': {sorted(unknown)}; "
                            "expected k, seed, sigma")
    k = _int_field(msg, "k", 1, 1, k_max)
    seed = _int_field(msg, "seed", 0, 0, 2**63 - 1)
    sigma = msg.get("sigma")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, int | float)
                              or not 0 <= sigma <= 10):
        raise ProtocolError("bad-message",
                            f"'sigma' must be a number in [0, 10], got {_short(sigma)}")
    return Start(k, seed, None if sigma is None else float(sigma))


def _parse_face(face: Any, seq: Any) -> np.ndarray:
    n_attr = schema.NUM_ATTRIBUTES
    if face is None:
        raise ProtocolError("bad-face", "a 'frames' message needs 'face': one frame of "
                            f"{n_attr} numbers or a list of such frames", seq)
    if not isinstance(face, list) or not face:
        raise ProtocolError("bad-face", f"'face' must be a non-empty list, got {face!r:.60}", seq)
    if not isinstance(face[0], list):
        face = [face]
    if len(face) > MAX_FRAMES_PER_MESSAGE:
        raise ProtocolError("bad-face", f"{len(face)} frames in one message; at most "
                            f"{MAX_FRAMES_PER_MESSAGE} (10 s) per message", seq)
    for i, row in enumerate(face):
        if not isinstance(row, list) or len(row) != n_attr:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise ProtocolError("bad-face", f"face frame {i} must be a list of {n_attr} numbers "
                                f"(the REACT attributes, AU1..Contempt), got {got}", seq)
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ProtocolError("bad-face", f"face frame {i}, attribute {j} "
                                    f"({schema.ATTRIBUTE_NAMES[j]}) is not a number: {v!r:.40}",
                                    seq)
            if not -FLOAT32_MAX <= v <= FLOAT32_MAX:  # 10**400 or 1e39: not a float32
                raise ProtocolError("bad-face", f"face frame {i}, attribute {j} "
                                    f"({schema.ATTRIBUTE_NAMES[j]}) is not finite or out of "
                                    "range", seq)
    arr = np.asarray(face, dtype=np.float32)
    if not np.isfinite(arr).all():
        i, j = np.argwhere(~np.isfinite(arr))[0]
        raise ProtocolError("bad-face", f"face frame {i}, attribute {j} "
                            f"({schema.ATTRIBUTE_NAMES[j]}) is not finite", seq)
    return arr


def _parse_audio(audio: Any, seq: Any) -> tuple[np.ndarray | None, int | None]:
    if audio is None:
        return None, None
    if not isinstance(audio, dict):
        raise ProtocolError("bad-audio", "'audio' must be an object with sample_rate, encoding "
                            "and data", seq)
    unknown = set(audio) - {"sample_rate", "encoding", "data", "channels"}
    if unknown:
        raise ProtocolError("bad-audio", f"unknown field(s) in 'audio': {sorted(unknown)}", seq)
    rate = audio.get("sample_rate")
    channels = audio.get("channels", 1)
    _check_rate_channels(rate, channels, seq)
    enc = audio.get("encoding", "pcm_s16le")
    data = audio.get("data")
    if enc not in ENCODINGS:
        raise ProtocolError("bad-audio", f"'audio.encoding' must be one of {list(ENCODINGS)}, "
                            f"got {enc!r:.40}", seq)
    if enc == "float":
        if not isinstance(data, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in data):
            raise ProtocolError("bad-audio", "'audio.data' must be a list of numbers for "
                                "encoding 'float'", seq)
        try:
            x = np.asarray(data, dtype=np.float32)
        except (OverflowError, ValueError):  # an integer like 10**400
            raise ProtocolError("bad-audio", "'audio.data' holds a number out of range",
                                seq) from None
        return _mono(x, rate, channels, seq)
    if not isinstance(data, str):
        raise ProtocolError("bad-audio", f"'audio.data' must be a base64 string for "
                            f"encoding {enc!r:.40}", seq)
    try:
        buf = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad-audio", "'audio.data' is not valid base64", seq) from None
    return _audio_samples(buf, enc, rate, channels, seq)


def _check_rate_channels(rate: Any, channels: Any, seq: Any) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError("bad-audio", f"'audio.sample_rate' must be an integer in "
                            f"[1000, {MAX_SAMPLE_RATE}] Hz, got {_short(rate)}", seq)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 8:
        raise ProtocolError("bad-audio", f"'audio.channels' must be an integer in [1, 8], "
                            f"got {_short(channels)}", seq)


def _audio_samples(buf: bytes, enc: str, rate: Any, channels: Any, seq: Any
                   ) -> tuple[np.ndarray, int]:
    """Raw ``pcm_s16le`` / ``f32le`` bytes (base64-decoded, or a binary message's tail) ->
    mono float32 samples, checked (``rate`` and ``channels`` already checked)."""
    width = 2 if enc == "pcm_s16le" else 4
    if len(buf) % (width * channels):
        raise ProtocolError("bad-audio", f"'audio.data' has {len(buf)} bytes, not a "
                            f"multiple of {width * channels} ({channels} channel(s) of "
                            f"{enc})", seq)
    if enc == "pcm_s16le":
        x = np.frombuffer(buf, dtype="<i2").astype(np.float32) / 32768.0
    else:
        x = np.frombuffer(buf, dtype="<f4").astype(np.float32)
    return _mono(x, rate, channels, seq)


def _mono(x: np.ndarray, rate: int, channels: int, seq: Any) -> tuple[np.ndarray, int]:
    if x.size % channels:
        raise ProtocolError("bad-audio", f"{x.size} samples is not a multiple of "
                            f"{channels} channels", seq)
    if not np.isfinite(x).all():
        raise ProtocolError("bad-audio", "audio samples contain NaN or infinite values", seq)
    if x.size / channels > MAX_AUDIO_SECONDS * rate:
        raise ProtocolError("bad-audio", f"more than {MAX_AUDIO_SECONDS:g} s of audio in one "
                            "message", seq)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, rate


# -- encoding helpers used by clients ---------------------------------------------------------
def encode_audio(samples: np.ndarray, sample_rate: int, encoding: str = "pcm_s16le"
                 ) -> dict[str, Any]:
    """The ``audio`` object of a ``frames`` message for mono float samples in [-1, 1]."""
    if encoding == "float":
        data: Any = np.asarray(samples, dtype=np.float32).reshape(-1).tolist()
    elif encoding in BINARY_CODES:
        data = base64.b64encode(_audio_bytes(samples, encoding)).decode("ascii")
    else:
        raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {ENCODINGS}")
    return {"sample_rate": int(sample_rate), "encoding": encoding, "data": data}


def _audio_bytes(samples: np.ndarray, encoding: str) -> bytes:
    """Mono float samples in [-1, 1] as little-endian ``pcm_s16le`` or ``f32le`` bytes."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if encoding == "pcm_s16le":
        return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


def frames_message(face: np.ndarray, samples: np.ndarray | None = None,
                   sample_rate: int | None = None, seq: Any = None,
                   encoding: str = "pcm_s16le") -> str:
    """A ``frames`` message (JSON text) for ``face (n, 25)`` and optional mono samples."""
    msg: dict[str, Any] = {"type": "frames", "face": np.asarray(face, np.float32)
                           .reshape(-1, schema.NUM_ATTRIBUTES).round(5).tolist()}
    if seq is not None:
        msg["seq"] = seq
    if samples is not None and np.size(samples):
        if sample_rate is None:
            raise ValueError("sample_rate is required with audio samples")
        msg["audio"] = encode_audio(samples, sample_rate, encoding)
    return json.dumps(msg)


def frames_binary(face: np.ndarray, samples: np.ndarray | None = None,
                  sample_rate: int | None = None, seq: int = 0,
                  encoding: str = "pcm_s16le") -> bytes:
    """A binary ``frames`` message for ``face (n, 25)`` and optional mono samples in [-1, 1]
    (``encoding`` ``pcm_s16le`` or ``f32le``); ``seq`` an integer, echoed back."""
    f = np.asarray(face, dtype="<f4").reshape(-1, schema.NUM_ATTRIBUTES)
    if samples is None or not np.size(samples):
        return FRAMES_HEADER.pack(FRAMES_MAGIC, int(seq), f.shape[0], 0, 0, 0) + f.tobytes()
    if sample_rate is None:
        raise ValueError("sample_rate is required with audio samples")
    if encoding not in BINARY_CODES:
        raise ValueError(f"binary frames carry audio as {sorted(BINARY_CODES)}, not "
                         f"{encoding!r}")
    return (FRAMES_HEADER.pack(FRAMES_MAGIC, int(seq), f.shape[0], BINARY_CODES[encoding], 1,
                               int(sample_rate)) + f.tobytes() + _audio_bytes(samples, encoding))


def reaction_binary(frames: np.ndarray, seq: int, start: int, frames_in: int,
                    compute_ms: float) -> bytes:
    """The binary ``reaction`` reply: header then ``frames (K, n_out, 25)`` as float32."""
    out = np.ascontiguousarray(frames, dtype="<f4")
    k, n = out.shape[:2]
    return REACTION_HEADER.pack(REACTION_MAGIC, int(seq), int(start), int(frames_in), k, n,
                                float(compute_ms)) + out.tobytes()


def decode_reaction(raw: bytes) -> dict[str, Any]:
    """A binary ``reaction`` -> ``{"type": "reaction", "seq", "start", "frames_in", "compute_ms",
    "frames" (K, n_out, 25) float32}``."""
    head = REACTION_HEADER.size
    if len(raw) < head or raw[:4] != REACTION_MAGIC:
        raise ValueError(f"not a binary reaction: {len(raw)} bytes starting with {raw[:4]!r}")
    _, seq, start, frames_in, k, n, ms = REACTION_HEADER.unpack_from(raw)
    want = head + k * n * schema.NUM_ATTRIBUTES * 4
    if len(raw) != want:
        raise ValueError(f"binary reaction of K={k}, n_out={n} needs {want} bytes, got {len(raw)}")
    frames = np.frombuffer(raw, dtype="<f4", offset=head).reshape(k, n, schema.NUM_ATTRIBUTES)
    return {"type": "reaction", "seq": seq, "start": start, "frames_in": frames_in,
            "compute_ms": ms, "frames": frames}
