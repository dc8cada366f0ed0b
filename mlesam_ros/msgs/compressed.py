"""``sensor_msgs/CompressedImage`` <-> numpy, as ROS 2's image_transport plugins lay it out.

Robots record and stream cameras through image_transport's ``compressed`` transport (JPEG or
PNG in a ``CompressedImage`` on ``<base topic>/compressed``) and depth through
``compressedDepth`` (``<base topic>/compressedDepth``). The layouts read and written here are
those of ``compressed_image_transport`` and ``compressed_depth_image_transport``
(image_transport_plugins, Humble and later):

``compressed``
    ``format`` is ``"<encoding>; <jpeg|png|tiff> compressed <target>"``: the image was
    converted to ``bgr8``/``bgr16`` (colour) or kept mono, then encoded; the subscriber decodes
    it, reorders colour back when the target is ``bgr*`` and, for a 16-bit encoding sent as
    JPEG, scales the 8-bit values by 256. A ``format`` without ``;`` (old publishers) means
    mono8 or bgr8 by channel count.
``compressedDepth``
    ``format`` is ``"<encoding>; compressedDepth[ png| rvl]"`` (Humble writes PNG with no
    codec word). ``data`` starts with a 12-byte ``ConfigHeader`` (int32 format, float32
    ``depthParam[2]``; little endian), then the codec's bytes. ``32FC1`` depth was quantised
    to inverse depth ``q = A / d + B`` in uint16 (0 = no reading) and comes back as
    ``d = A / (q - B)`` in float32 metres (NaN for 0); ``16UC1`` is sent as is. RVL
    (Wilson's run-length and variable-length coding) starts with uint32 ``cols``, ``rows``,
    then 32-bit little-endian words, each read from its top nibble down.

Decoding returns an ``Image`` message with the original encoding, so the raw path (step,
encoding and depth rules of :mod:`mlesam_ros.msgs.image`) handles it unchanged; JPEG and PNG
go through OpenCV (imported on use). A payload that does not decode raises ``ValueError``
naming the topic, the codec and what is wrong (empty, truncated, corrupt, wrong size).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlesam_ros.msgs._typestore import message_class
from mlesam_ros.msgs.image import IMAGE_ENCODINGS, message_bytes, numpy_to_image
from mlesam_ros.msgs.rvl import decode_rvl, encode_rvl
from mlesam_ros.msgs.stamps import make_header

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
TRANSPORTS = ("raw", "compressed", "compressedDepth")
"""image_transport names: the topic is ``<base>`` (raw) or ``<base>/<transport>``."""

CONFIG_HEADER_BYTES = 12
"""``compressed_depth_image_transport::ConfigHeader``: int32 format + float32[2]."""
INV_DEPTH = 0
"""``ConfigHeader.format`` of every compressedDepth message (``compressionFormat::INV_DEPTH``)."""
DEFAULT_DEPTH_MAX_M = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0
"""compressed_depth_image_transport's defaults (``depth_max``, ``depth_quantization``)."""

_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_COLOUR = re.compile(r"^(rgb|bgr)a?(8|16)$")


def transport_topic(base_topic: str, transport: str) -> str:
    """Return the topic image_transport uses for ``transport`` of ``base_topic``."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport: choose from {', '.join(TRANSPORTS)}, got {transport!r}")
    return base_topic if transport == "raw" else f"{base_topic.rstrip('/')}/{transport}"


def transport_msgtype(transport: str) -> str:
    """Return the message type carried by ``transport`` (Image or CompressedImage)."""
    return IMAGE if transport == "raw" else COMPRESSED_IMAGE


def is_compressed(msg: Any) -> bool:
    """Whether ``msg`` is a ``CompressedImage`` (it has ``format`` where an Image has sizes)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _where(topic: str) -> str:
    return f"compressed image on topic '{topic}'" if topic else "compressed image"


def _bit_depth(encoding: str) -> int:
    base = IMAGE_ENCODINGS.get(encoding, ("u1", 1))[0]
    return np.dtype(base).itemsize * 8


def _codec_of(payload: np.ndarray) -> str:
    head = payload[:8].tobytes()
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    return "unknown"


def _imdecode(payload: np.ndarray, what: str) -> np.ndarray:
    """OpenCV decode of a JPEG/PNG/TIFF payload, with the truncation libjpeg lets through.

    libjpeg fills a JPEG cut short with grey and only warns, and a PNG cut after its last
    image row decodes too; a missing end marker (JPEG EOI, PNG IEND) is therefore checked here.
    """
    import cv2

    codec = _codec_of(payload)
    if payload.size == 0:
        raise ValueError(f"{what}: empty payload (0 bytes)")
    if codec == "unknown":
        raise ValueError(
            f"{what}: payload of {payload.size} bytes is not JPEG, PNG or TIFF (starts "
            f"{payload[:4].tobytes().hex()}); corrupt"
        )
    tail = payload[-16:].tobytes()
    if (codec == "jpeg" and _JPEG_END not in tail) or (codec == "png" and _PNG_END not in tail):
        raise ValueError(
            f"{what}: truncated {codec.upper()} payload ({payload.size} bytes, no end marker)"
        )
    image = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(
            f"{what}: corrupt {codec.upper()} payload ({payload.size} bytes) does not decode"
        )
    return image


@dataclass(frozen=True)
class DecodedImage:
    """A decompressed image: the array laid out as ``encoding`` (raw-path conventions)."""

    array: np.ndarray
    encoding: str


def decode_compressed(msg: Any, topic: str = "") -> DecodedImage:
    """Decode a ``compressed`` (JPEG/PNG/TIFF) message the way compressed_image_transport does.

    Colour comes back in the order its encoding names; a 16-bit encoding sent as JPEG is
    scaled by 256 (the subscriber's rule); mono and 16-bit PNG keep their values.
    """
    what = _where(topic)
    fmt = str(msg.format)
    encoding, separator, rest = (part.strip() for part in fmt.partition(";"))
    image = _imdecode(message_bytes(msg.data), what)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1 and image.ndim == 3:
        image = image[:, :, 0]
    if not separator:
        # Old publishers: mono8 or bgr8 by what the payload holds.
        depth = "16" if image.dtype == np.uint16 else "8"
        encoding = {1: f"mono{depth}", 3: f"bgr{depth}", 4: f"bgra{depth}"}.get(channels, "")
        rest = "compressed bgr"
    colour = _COLOUR.match(encoding)
    if colour:
        if channels not in (3, 4):
            raise ValueError(
                f"{what}: format '{fmt}' names a colour encoding but the payload has "
                f"{channels} channel(s); publish colour, or set the encoding the camera sends"
            )
        # The payload holds what the publisher encoded: bgr* (its target), or, for old
        # publishers without "compressed bgr", the camera's rgb order.
        order = "bgr" if "compressed bgr" in rest else "rgb"
        alpha = "a" if channels == 4 else ""
        bits = "16" if image.dtype == np.uint16 else "8"
        if "jpeg" in rest and colour.group(2) == "16":
            image, bits = image.astype(np.uint16) * np.uint16(256), "16"
        encoding = f"{order}{alpha}{bits}"
    else:
        if channels != 1:
            raise ValueError(
                f"{what}: format '{fmt}' names a single-channel encoding but the payload has "
                f"{channels} channels"
            )
        wanted = _bit_depth(encoding) if encoding in IMAGE_ENCODINGS else 8 * image.itemsize
        if wanted == 16 and image.dtype == np.uint8:
            image = image.astype(np.uint16) * np.uint16(256)  # JPEG of a 16-bit image
        if encoding not in IMAGE_ENCODINGS or _bit_depth(encoding) != 8 * image.itemsize:
            encoding = "mono16" if image.dtype == np.uint16 else "mono8"
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(
            f"{what}: format '{fmt}' decodes to {image.dtype.name} x{channels}, which the node "
            "cannot read; publish rgb8/bgr8/mono8/mono16"
        )
    return DecodedImage(image, encoding)


def _depth_codec(fmt: str, what: str) -> str:
    """Return ``png`` or ``rvl`` for a compressedDepth format (the plugin's own rules)."""
    _, separator, rest = fmt.partition(";")
    if not separator or "compressedDepth png" in rest:
        return "png"
    if "compressedDepth rvl" in rest:
        return "rvl"
    if "compressedDepth" in rest and "compressedDepth " not in rest:
        return "png"  # Humble: "<encoding>; compressedDepth" is PNG
    raise ValueError(
        f"{what}: format '{fmt}' is not compressedDepth png or rvl; is the topic the "
        "compressedDepth transport?"
    )


def decode_compressed_depth(msg: Any, topic: str = "") -> DecodedImage:
    """Decode a ``compressedDepth`` message (PNG or RVL behind the 12-byte config header).

    ``32FC1`` comes back as float32 metres (NaN where the sender had no reading or was beyond
    its ``depth_max``), ``16UC1`` as the uint16 millimetres that were sent.
    """
    what = _where(topic)
    fmt = str(msg.format)
    encoding = fmt.partition(";")[0].strip()
    codec = _depth_codec(fmt, what)
    data = message_bytes(msg.data)
    if encoding not in ("32FC1", "16UC1", "mono16"):
        raise ValueError(
            f"{what}: compressedDepth carries '{encoding}'; expected 32FC1 (m) or 16UC1 (mm)"
        )
    if data.size <= CONFIG_HEADER_BYTES:
        raise ValueError(
            f"{what}: compressedDepth payload of {data.size} bytes has no image after its "
            f"{CONFIG_HEADER_BYTES}-byte header"
        )
    header = data[:CONFIG_HEADER_BYTES].tobytes()
    quant_a, quant_b = np.frombuffer(header, dtype="<f4", offset=4, count=2)
    payload = data[CONFIG_HEADER_BYTES:]
    if codec == "rvl":
        inverse = decode_rvl(payload, what)
    else:
        inverse = _imdecode(payload, f"{what} (compressedDepth png)")
        if inverse.dtype != np.uint16 or inverse.ndim != 2:
            raise ValueError(
                f"{what}: compressedDepth PNG holds {inverse.dtype.name} with "
                f"{1 if inverse.ndim == 2 else inverse.shape[2]} channel(s), expected uint16 "
                "single channel"
            )
    if encoding != "32FC1":
        return DecodedImage(inverse, "16UC1" if encoding == "16UC1" else encoding)
    if not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a == 0:
        raise ValueError(
            f"{what}: compressedDepth header has quantisation A={quant_a}, B={quant_b}; a 32FC1 "
            "image needs finite A != 0 (corrupt header)"
        )
    return DecodedImage(_inverse_depth_table(float(quant_a), float(quant_b))[inverse], "32FC1")


@functools.lru_cache(maxsize=8)
def _inverse_depth_table(quant_a: float, quant_b: float) -> np.ndarray:
    """Every uint16 inverse depth → metres, as the subscriber computes it (float32; 0 → NaN).

    One lookup per pixel instead of a subtract, a divide and a mask over the image.
    """
    codes = np.arange(65536, dtype=np.float32)
    with np.errstate(divide="ignore"):
        table = np.float32(quant_a) / (codes - np.float32(quant_b))
    table[0] = np.nan
    table.flags.writeable = False  # shared by every frame with these parameters
    return table


def decompress(msg: Any, topic: str = "") -> Any:
    """``CompressedImage`` (compressed or compressedDepth) → the ``Image`` message it stands for.

    The Image keeps the header; its data is the decoded array (shared, not copied).
    """
    fmt = str(msg.format)
    # The first compressedDepth publishers wrote the bare encoding as format.
    depth = "compressedDepth" in fmt or fmt.strip() in ("32FC1", "16UC1")
    decoded = decode_compressed_depth(msg, topic) if depth else decode_compressed(msg, topic)
    array = np.ascontiguousarray(decoded.array)
    if array.base is None:
        array.flags.writeable = False  # fresh and owned: the message shares it
    return numpy_to_image(array, decoded.encoding, msg.header, str(msg.header.frame_id))


# -- encoding (the synthetic recorder and tests) ----------------------------------------------


def _compressed_message(header_or_stamp: Any, frame_id: str, fmt: str, data: bytes) -> Any:
    return message_class(COMPRESSED_IMAGE)(
        header=make_header(header_or_stamp, frame_id),
        format=fmt,
        data=np.frombuffer(data, dtype=np.uint8).copy(),
    )


def compress_image(
    array: np.ndarray,
    encoding: str,
    header_or_stamp: Any,
    frame_id: str = "",
    codec: str = "jpeg",
    jpeg_quality: int = 95,
    png_level: int = 3,
) -> Any:
    """Build a ``compressed`` ``CompressedImage`` as compressed_image_transport publishes it.

    Colour is sent as ``bgr8`` (JPEG) or ``bgr8``/``bgr16`` (PNG), mono as it is (PNG) or
    8-bit (JPEG of a 16-bit image keeps its top byte, as cv_bridge's conversion does).
    """
    import cv2

    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec: choose jpeg or png, got {codec!r}")
    array = np.asarray(array)
    colour = _COLOUR.match(encoding)
    bits = _bit_depth(encoding)
    if colour:
        order, alpha = colour.group(1), "a" in encoding
        image = array[:, :, :3] if alpha else array
        image = image[:, :, ::-1] if order == "rgb" else image  # to BGR
        target = "bgr8" if codec == "jpeg" else f"bgr{bits}"
    else:
        image, target = array, ("mono8" if codec == "jpeg" else "")
    if codec == "jpeg" and image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        if codec == "jpeg"
        else [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    )
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png",
                            np.ascontiguousarray(image), params)  # fmt: skip
    if not ok:
        raise ValueError(f"compress_image: OpenCV could not encode {encoding} as {codec}")
    return _compressed_message(
        header_or_stamp, frame_id, f"{encoding}; {codec} compressed {target}", data.tobytes()
    )


def compress_depth(
    depth: np.ndarray,
    encoding: str,
    header_or_stamp: Any,
    frame_id: str = "",
    codec: str = "png",
    depth_max_m: float = DEFAULT_DEPTH_MAX_M,
    depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION,
    png_level: int = 3,
) -> Any:
    """Build a ``compressedDepth`` ``CompressedImage`` as compressed_depth_image_transport does.

    ``32FC1`` (metres; NaN or >= ``depth_max_m`` → no reading) is quantised to inverse depth
    with float32 arithmetic and truncation to uint16, as the C++ publisher does; ``16UC1``
    (millimetres) is sent as is, readings beyond ``depth_max_m`` zeroed.
    """
    import cv2

    if codec not in ("png", "rvl"):
        raise ValueError(f"codec: choose png or rvl, got {codec!r}")
    depth = np.asarray(depth)
    quant_a = quant_b = np.float32(0.0)
    if encoding == "32FC1":
        z0, depth_max = np.float32(depth_quantization), np.float32(depth_max_m)
        quant_a = z0 * (z0 + np.float32(1.0))
        quant_b = np.float32(1.0) - quant_a / depth_max
        valid = depth < depth_max  # NaN compares false: no reading
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            safe = np.where(valid, depth, np.float32(1.0)).astype(np.float32)
            inverse = quant_a / safe + quant_b
        # C++ float → unsigned short: truncation (values past 65535 wrap there; clipped here).
        inverse = np.where(valid, np.clip(inverse, 0, 65535), 0).astype(np.uint16)
    elif encoding in ("16UC1", "mono16"):
        limit = np.uint16(min(65535, int(np.float32(depth_max_m) * np.float32(1000.0))))
        inverse = np.where(depth > limit, 0, depth).astype(np.uint16)
    else:
        raise ValueError(f"compress_depth: encoding must be 32FC1 or 16UC1, got {encoding!r}")
    header = np.array([INV_DEPTH], "<i4").tobytes() + np.array([quant_a, quant_b], "<f4").tobytes()
    if codec == "png":
        ok, body = cv2.imencode(".png", inverse, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        if not ok:
            raise ValueError("compress_depth: OpenCV could not encode the depth PNG")
        body = body.tobytes()
    else:
        body = encode_rvl(inverse)
    return _compressed_message(
        header_or_stamp, frame_id, f"{encoding}; compressedDepth {codec}", header + body
    )


__all__ = [
    "COMPRESSED_IMAGE",
    "CONFIG_HEADER_BYTES",
    "TRANSPORTS",
    "DecodedImage",
    "compress_depth",
    "compress_image",
    "decode_compressed",
    "decode_compressed_depth",
    "decode_rvl",
    "decompress",
    "encode_rvl",
    "is_compressed",
    "transport_msgtype",
    "transport_topic",
]
