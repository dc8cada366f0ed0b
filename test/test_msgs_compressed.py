"""CompressedImage <-> numpy against the byte layouts image_transport_plugins write.

The RVL and compressedDepth bytes below are laid out by hand from the C++ plugin
(``compressed_depth_image_transport``: ``ConfigHeader`` {int32 format, float32 depthParam[2]},
then uint32 cols, rows and 32-bit words read from the top nibble; values in 3-bit groups,
least significant first, bit 3 = more), and the format strings are those the Humble
publishers write, so a decoder that merely agrees with its own encoder cannot pass.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from mlesam_ros.msgs import compressed as c
from mlesam_ros.msgs import image_to_depth_m, image_to_numpy, image_to_rgb8, message_class, rvl
from mlesam_ros.msgs.stamps import make_header

# (pixels, the exact RVL stream after cols/rows): one 32-bit little-endian word each.
HAND_LAID_RVL = [
    # zeros 2, nonzeros 2, +5 (zigzag 10 = 0xA,0x1), +1 (2), zeros 1, nonzeros 0; 7 nibbles
    # padded: word 0x22A12100
    ([0, 0, 5, 6, 0], "0021a122"),
    # zeros 0, nonzeros 1, +300 (zigzag 600 = octal 1130: 0x8,0xB,0x9,0x1), zeros 1, nonzeros 0
    # = 8 nibbles: word 0x018B9110
    ([300, 0], "10918b01"),
    # zeros 0, nonzeros 2, +5 (0xA,0x1), -2 (zigzag 3): word 0x02A13000
    ([5, 3], "0030a102"),
]


def compressed_message(fmt: str, data: bytes, stamp_ns: int = 7) -> object:
    return message_class(c.COMPRESSED_IMAGE)(
        header=make_header(stamp_ns, "cam"), format=fmt, data=np.frombuffer(data, np.uint8)
    )


def depth_header(quant_a: float = 0.0, quant_b: float = 0.0) -> bytes:
    return struct.pack("<iff", c.INV_DEPTH, quant_a, quant_b)


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


# -- RVL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pixels", "words"), HAND_LAID_RVL)
def test_rvl_matches_hand_laid_bytes(pixels, words) -> None:
    image = np.array([pixels], np.uint16)
    laid = struct.pack("<II", len(pixels), 1) + bytes.fromhex(words)
    assert rvl.encode_rvl(image) == laid
    np.testing.assert_array_equal(rvl.decode_rvl(np.frombuffer(laid, np.uint8)), image)


def test_rvl_round_trips_depth_like_images() -> None:
    rng = np.random.default_rng(0)
    # 95 % and 100 % empty compress past the C++ subscriber's 5 pixels per byte: still decoded.
    for shape, zero_share in (((37, 53), 0.3), ((1, 1), 0.0), ((64, 48), 0.95), ((9, 7), 1.0)):
        image = rng.integers(1, 65536, shape).astype(np.uint16)
        image[rng.random(shape) < zero_share] = 0
        payload = np.frombuffer(rvl.encode_rvl(image), np.uint8)
        np.testing.assert_array_equal(rvl.decode_rvl(payload), image)


def test_compiled_rvl_equals_the_python_loops() -> None:
    pytest.importorskip("numba")
    decode, encode = rvl.rvl_kernels()
    rng = np.random.default_rng(1)
    pixels = np.cumsum(rng.integers(-40, 41, 5000)).astype(np.uint16)  # wraps below 0
    pixels[rng.random(5000) < 0.2] = 0
    compiled, reference = np.zeros(5004, np.uint32), np.zeros(5004, np.uint32)
    used = encode(pixels, compiled)
    assert used == rvl._rvl_encode_loop(pixels, reference)
    np.testing.assert_array_equal(compiled[:used], reference[:used])
    out_compiled, out_reference = np.empty(5000, np.uint16), np.empty(5000, np.uint16)
    assert decode(compiled[:used], out_compiled) == rvl._rvl_decode_loop(
        compiled[:used], out_reference) == rvl.RVL_OK  # fmt: skip
    np.testing.assert_array_equal(out_compiled, pixels)
    np.testing.assert_array_equal(out_reference, pixels)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (struct.pack("<II", 5, 1) + bytes.fromhex("0021"), "truncated"),  # half a word
        (struct.pack("<II", 5, 1), "truncated"),  # size, no words
        (struct.pack("<II", 1, 1) + bytes.fromhex("0021a122"), "longer than the image"),
        (struct.pack("<II", 0, 4) + bytes(8), "cannot"),  # a zero side
        (struct.pack("<II", 70000, 70000) + bytes(8), "cannot"),  # 4.9 Gpx: a corrupt size
        (struct.pack("<II", 2, 1) + bytes.fromhex("ffffffffffffffff"), "longer than 32 bits"),
        (b"\x01\x00", "no size"),
    ],
    ids=["half-word", "no-words", "overrun", "zero-side", "too-large", "endless-value", "short"],
)
def test_bad_rvl_is_refused_without_reading_past_the_buffer(payload, needle) -> None:
    with pytest.raises(ValueError, match=needle) as caught:
        rvl.decode_rvl(np.frombuffer(payload, np.uint8), "depth on topic '/d'")
    assert "/d" in str(caught.value) and "\n" not in str(caught.value)


# -- compressedDepth ------------------------------------------------------------------------


def test_compressed_depth_32fc1_png_is_inverse_depth_behind_the_header() -> None:
    """q = A / d + B in uint16, d = A / (q - B), 0 = NaN (compressed_depth_image_transport)."""
    quant_a, quant_b = 100.0 * 101.0, 1.0 - 100.0 * 101.0 / 10.0  # the plugin's defaults
    inverse = np.array([[4041, 2357, 0]], np.uint16)
    msg = compressed_message("32FC1; compressedDepth png",
                             depth_header(quant_a, quant_b) + png(inverse))  # fmt: skip
    image = c.decompress(msg, "/depth/image_raw/compressedDepth")
    assert image.encoding == "32FC1" and image.header.stamp.nanosec == 7
    depth = image_to_numpy(image)
    expected = np.float32(quant_a) / (inverse[0, :2].astype(np.float32) - np.float32(quant_b))
    np.testing.assert_array_equal(depth[0, :2], expected)  # float32 arithmetic, as in C++
    assert depth[0, 0] == 2.0 and np.isnan(depth[0, 2])


@pytest.mark.parametrize("fmt", ["32FC1; compressedDepth", "32FC1", "32FC1; compressedDepth png"])
def test_humble_and_older_formats_mean_png(fmt) -> None:
    inverse = np.full((2, 2), 4041, np.uint16)
    msg = compressed_message(fmt, depth_header(10100.0, -1009.0) + png(inverse))
    np.testing.assert_array_equal(image_to_depth_m(c.decompress(msg)), np.full((2, 2), 2.0))


def test_compressed_depth_16uc1_rvl_keeps_millimetres() -> None:
    millimetres = np.array([[0, 0, 5, 6, 0]], np.uint16)
    laid = depth_header() + struct.pack("<II", 5, 1) + bytes.fromhex("0021a122")
    image = c.decompress(compressed_message("16UC1; compressedDepth rvl", laid))
    assert image.encoding == "16UC1"
    np.testing.assert_array_equal(image_to_numpy(image), millimetres)
    np.testing.assert_array_equal(image_to_depth_m(image)[0, 2:4],
                                  np.float32([5, 6]) * np.float32(0.001))  # fmt: skip


def test_compress_depth_quantises_as_the_publisher() -> None:
    depth = np.array([[2.0, 3.0, np.nan, 10.0, 25.0]], np.float32)  # 10 m = depth_max: none
    for codec in ("png", "rvl"):
        msg = c.compress_depth(depth, "32FC1", 5, "cam", codec=codec)
        assert msg.format == f"32FC1; compressedDepth {codec}"
        data = bytes(msg.data)
        assert struct.unpack("<iff", data[:12]) == (0, 10100.0, -1009.0)
        inverse = (cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
                   if codec == "png" else rvl.decode_rvl(np.frombuffer(data[12:], np.uint8)))
        np.testing.assert_array_equal(inverse, [[4041, 2357, 0, 0, 0]])  # truncation
        back = image_to_numpy(c.decompress(msg))
        assert back[0, 0] == 2.0 and abs(back[0, 1] - 3.0) < 3.0**2 / 10100 + 1e-6
        assert np.isnan(back[0, 2:]).all()


@pytest.mark.parametrize(
    ("fmt", "data", "needle"),
    [
        ("32FC1; compressedDepth png", depth_header(), "no image after its 12-byte header"),
        ("32FC1; compressedDepth zstd", depth_header() + b"abcd", "not compressedDepth png"),
        ("rgb8; compressedDepth png", depth_header() + png(np.zeros((2, 2), np.uint16)),
         "expected 32FC1"),
        ("32FC1; compressedDepth png", depth_header(10.0, 1.0) + png(np.zeros((2, 2), np.uint8)),
         "expected uint16"),
        ("32FC1; compressedDepth png", depth_header(0.0, 1.0) + png(np.ones((2, 2), np.uint16)),
         "corrupt header"),
        ("16UC1; compressedDepth png", depth_header() + png(np.ones((9, 9), np.uint16))[:-20],
         "truncated PNG"),
        ("16UC1; compressedDepth rvl", depth_header() + struct.pack("<II", 5, 1), "truncated"),
    ],
    ids=["header-only", "unknown-codec", "colour", "8-bit-png", "zero-A", "cut-png", "cut-rvl"],
)
def test_bad_compressed_depth_is_one_clear_error(fmt, data, needle) -> None:
    with pytest.raises(ValueError, match=needle) as caught:
        c.decompress(compressed_message(fmt, data), "/depth/image_raw/compressedDepth")
    assert "/depth/image_raw/compressedDepth" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- compressed (JPEG / PNG) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A smooth colour image (JPEG keeps it within a few levels)."""
    rows, cols = np.mgrid[0:48, 0:64]
    return np.stack([rows * 5, cols * 4, 255 - rows * 5], axis=2).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_humble_jpeg_and_png_come_back_in_the_encodings_order(rgb, encoding) -> None:
    """The publisher sends bgr8 ("<enc>; jpeg compressed bgr8"); colours must not swap."""
    sent = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[:, :, ::-1])
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    for codec, tolerance in (("jpeg", 6), ("png", 0)):
        fmt = f"{encoding}; {codec} compressed bgr8"
        data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr)[1].tobytes()
        decoded = image_to_rgb8(c.decompress(compressed_message(fmt, data)))
        assert np.abs(decoded.astype(int) - rgb).max() <= tolerance, codec
        made = c.compress_image(sent, encoding, 5, codec=codec)
        assert made.format == fmt
        assert np.abs(image_to_rgb8(c.decompress(made)).astype(int) - rgb).max() <= tolerance


def test_sixteen_bit_images_keep_their_values_in_png_and_scale_from_jpeg() -> None:
    counts = (np.arange(48 * 64).reshape(48, 64) * 13 + 1000).astype(np.uint16)
    msg = compressed_message("mono16; png compressed ", png(counts))
    image = c.decompress(msg)
    assert image.encoding == "mono16"
    np.testing.assert_array_equal(image_to_numpy(image), counts)
    eight_bit = (counts >> 8).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", eight_bit, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    scaled = image_to_numpy(c.decompress(compressed_message("mono16; jpeg compressed mono8",
                                                            jpeg)))  # fmt: skip
    assert scaled.dtype == np.uint16  # the subscriber's convertTo(CV_16U, 256)
    assert np.abs(scaled.astype(int) - eight_bit.astype(int) * 256).max() <= 2 * 256
    colour16 = np.stack([counts, counts // 2, counts // 3], axis=2)
    image = c.decompress(compressed_message("rgb16; png compressed bgr16",
                                            png(np.ascontiguousarray(colour16[:, :, ::-1]))))
    assert image.encoding == "bgr16"
    np.testing.assert_array_equal(image_to_rgb8(image), (colour16 >> 8).astype(np.uint8))


def test_format_without_encoding_is_mono8_or_bgr8(rgb) -> None:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert c.decompress(compressed_message("png", png(bgr))).encoding == "bgr8"
    assert c.decompress(compressed_message("jpeg", png(rgb[:, :, 0].copy()))).encoding == "mono8"


def test_decoded_image_is_shared_not_copied(rgb) -> None:
    image = c.decompress(c.compress_image(rgb, "rgb8", 5, codec="png"))
    array = image_to_numpy(image)
    assert not array.flags.writeable  # read-only view of the decoded buffer
    assert image.step == 64 * 3 and (image.height, image.width) == (48, 64)


@pytest.mark.parametrize(
    ("fmt", "data", "needle"),
    [
        ("rgb8; jpeg compressed bgr8", b"", "empty payload"),
        ("rgb8; jpeg compressed bgr8", b"\x00\x01\x02\x03garbage", "not JPEG, PNG or TIFF"),
        ("rgb8; jpeg compressed bgr8", "JPEG_CUT", "truncated JPEG"),
        ("rgb8; png compressed bgr8", "PNG_CUT", "truncated PNG"),
        ("rgb8; jpeg compressed bgr8", "JPEG_SCRAMBLED", "does not decode"),
        ("rgb8; png compressed bgr8", "PNG_MONO", "colour encoding"),
        ("mono8; png compressed ", "PNG_COLOUR", "single-channel"),
    ],
    ids=["empty", "garbage", "cut-jpeg", "cut-png", "scrambled", "mono-as-rgb", "rgb-as-mono"],
)
def test_bad_compressed_payloads_are_one_clear_error(rgb, fmt, data, needle) -> None:
    jpeg = cv2.imencode(".jpg", rgb)[1].tobytes()
    made = {
        "JPEG_CUT": jpeg[: len(jpeg) // 2],
        "PNG_CUT": png(rgb)[:-30],
        "JPEG_SCRAMBLED": jpeg[:2] + b"\xff\xc0" + bytes(40) + jpeg[-2:],
        "PNG_MONO": png(rgb[:, :, 0].copy()),
        "PNG_COLOUR": png(rgb),
    }
    with pytest.raises(ValueError, match=needle) as caught:
        c.decompress(compressed_message(fmt, made.get(data, data)), "/cam/image/compressed")
    assert "/cam/image/compressed" in str(caught.value) and "\n" not in str(caught.value)


def test_transport_topics_follow_image_transport() -> None:
    assert c.transport_topic("/cam/image_raw", "raw") == "/cam/image_raw"
    assert c.transport_topic("/cam/image_raw/", "compressed") == "/cam/image_raw/compressed"
    assert c.transport_topic("/d", "compressedDepth") == "/d/compressedDepth"
    assert c.transport_msgtype("compressed") == c.COMPRESSED_IMAGE
    with pytest.raises(ValueError, match="theora"):
        c.transport_topic("/cam", "theora")
