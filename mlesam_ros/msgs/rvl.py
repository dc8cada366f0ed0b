"""RVL, the lossless depth codec of image_transport's ``compressedDepth`` (Wilson, 2017).

Written by hand: no Python library implements RVL. The loops below are the reference (plain
Python, also the fallback without numba) and are compiled as they are by ``rvl_kernels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.jit import inline, kernel, warm_up_with

RVL_OK, RVL_TRUNCATED, RVL_OVERRUN, RVL_BAD_VALUE = 0, 1, 2, 3
RVL_MAX_PIXELS = 1 << 26
"""Largest RVL image accepted (67 Mpx, 128 MiB of uint16): a corrupt size allocates no more."""
_RVL_ERRORS = {
    RVL_TRUNCATED: "truncated (the words end before the image is complete)",
    RVL_OVERRUN: "corrupt (a run is longer than the image)",
    RVL_BAD_VALUE: "corrupt (a value longer than 32 bits)",
}


def _rvl_decode_loop(words, out):
    """Decode RVL ``words`` (uint32, read from the top nibble) into ``out`` (uint16, flat).

    Returns :data:`RVL_OK` or the error code; never reads past ``words`` or writes past
    ``out``. Each value is nibbles of 3 bits, least significant first, bit 3 set while more
    follow; the stream is (zeros, nonzeros, zigzag deltas of the nonzeros) until full.
    """
    total = out.shape[0]
    count = words.shape[0]
    index = 0
    word = 0
    left = 0
    written = 0
    previous = 0
    phase = 0  # 0: zero-run length next, 1: nonzero-run length next, 2: a delta next
    run = 0
    while written < total:
        value = 0
        shift = 0
        more = True
        while more:
            if left == 0:
                if index >= count:
                    return RVL_TRUNCATED
                word = int(words[index])
                index += 1
                left = 8
            nibble = (word >> 28) & 0xF
            word = (word << 4) & 0xFFFFFFFF
            left -= 1
            if shift > 30:
                return RVL_BAD_VALUE
            value |= (nibble & 0x7) << shift
            shift += 3
            more = (nibble & 0x8) != 0
        if phase == 0:
            if value > total - written:
                return RVL_OVERRUN
            for _ in range(value):
                out[written] = 0
                written += 1
            phase = 1
        elif phase == 1:
            if value > total - written:
                return RVL_OVERRUN
            run = value
            phase = 2 if run > 0 else 0
        else:
            delta = (value >> 1) ^ -(value & 1)
            previous = (previous + delta) & 0xFFFF
            out[written] = previous
            written += 1
            run -= 1
            if run == 0:
                phase = 0
    return RVL_OK


def _rvl_put(value, state, out):
    """Append ``value`` as RVL nibbles; ``state`` = [word, nibbles in word, words written]."""
    while True:
        nibble = value & 0x7
        value >>= 3
        if value:
            nibble |= 0x8
        state[0] = ((state[0] << 4) | nibble) & 0xFFFFFFFF
        state[1] += 1
        if state[1] == 8:
            out[state[2]] = state[0]
            state[2] += 1
            state[1] = 0
            state[0] = 0
        if not value:
            return


def _rvl_encode_loop(pixels, out):
    """Encode ``pixels`` (uint16, flat) into ``out`` (uint32 words); return the words used."""
    total = pixels.shape[0]
    state = np.zeros(3, np.int64)
    previous = 0
    position = 0
    while position < total:
        zeros = 0
        while position < total and pixels[position] == 0:
            position += 1
            zeros += 1
        _rvl_put(zeros, state, out)
        nonzeros = 0
        probe = position
        while probe < total and pixels[probe] != 0:
            probe += 1
            nonzeros += 1
        _rvl_put(nonzeros, state, out)
        for _ in range(nonzeros):
            current = int(pixels[position])
            position += 1
            delta = current - previous
            _rvl_put((delta << 1) ^ (delta >> 31), state, out)
            previous = current
    if state[1]:
        out[state[2]] = (state[0] << (4 * (8 - state[1]))) & 0xFFFFFFFF
        state[2] += 1
    return state[2]


@kernel
def rvl_kernels(njit: Any) -> Any:
    """``(decode, encode)``: the RVL loops above, compiled (``mlesam_ros.jit``)."""
    inline(_rvl_put)
    return njit(_rvl_decode_loop), njit(_rvl_encode_loop)


@warm_up_with(lambda: rvl_kernels())
def _warm_up(kernels: Any) -> None:
    decode, encode = kernels
    words = np.zeros(8, np.uint32)
    encode(np.zeros(4, np.uint16), words)
    decode(words, np.empty(4, np.uint16))


def decode_rvl(payload: np.ndarray, what: str = "RVL image") -> np.ndarray:
    """``cols``, ``rows`` (uint32 LE) + RVL words → ``(rows, cols)`` uint16.

    The size is checked before anything is allocated: no zero side and at most
    :data:`RVL_MAX_PIXELS`. compressed_depth_image_transport also refuses more than five
    pixels per payload byte, which a frame that is mostly without readings (a covered lens)
    exceeds; the decoder here never reads or writes out of bounds, so such frames decode.
    """
    payload = np.asarray(payload, dtype=np.uint8).reshape(-1)
    if payload.size < 8:
        raise ValueError(f"{what}: RVL payload of {payload.size} bytes has no size")
    cols, rows = (int(v) for v in np.frombuffer(payload[:8].tobytes(), dtype="<u4"))
    pixels = rows * cols
    if pixels == 0 or pixels > RVL_MAX_PIXELS:
        raise ValueError(
            f"{what}: RVL payload of {payload.size} bytes says {cols}x{rows}, which it cannot "
            "hold (corrupt)"
        )
    body = payload[8:]
    words = np.frombuffer(body[: body.size // 4 * 4].tobytes(), dtype="<u4")
    out = np.empty(pixels, np.uint16)
    kernels = rvl_kernels()
    status = (kernels[0] if kernels is not None else _rvl_decode_loop)(words, out)
    if status != RVL_OK:
        raise ValueError(f"{what}: RVL payload {_RVL_ERRORS[int(status)]}")
    return out.reshape(rows, cols)


def encode_rvl(image: np.ndarray) -> bytes:
    """``(rows, cols)`` uint16 → ``cols``, ``rows`` (uint32 LE) + RVL words (little endian)."""
    image = np.ascontiguousarray(image, dtype=np.uint16)
    rows, cols = image.shape
    out = np.zeros(image.size + 4, np.uint32)  # at most 8 nibbles per pixel, plus the end
    kernels = rvl_kernels()
    used = (kernels[1] if kernels is not None else _rvl_encode_loop)(image.reshape(-1), out)
    size = np.array([cols, rows], "<u4").tobytes()
    return size + out[: int(used)].astype("<u4").tobytes()


__all__ = ["RVL_MAX_PIXELS", "decode_rvl", "encode_rvl", "rvl_kernels"]
