"""The demo's pictures: panel layout, the absent-sensor mark, captions and the class legend."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.demo import render
from mlesam_ros.demo.render import DemoFrame

pytest.importorskip("PIL")

SIZE = (90, 120)  # (H, W) of one panel
CLASSES = ("road", "car", "tree")
PALETTE = np.array([[128, 64, 128], [0, 0, 142], [107, 142, 35]], dtype=np.uint8)
RNG = np.random.default_rng(7)


def make_frame(index: int, condition: str, lidar: bool) -> DemoFrame:
    labels = RNG.integers(0, len(CLASSES), SIZE).astype(np.uint8)
    rgb = RNG.integers(0, 256, (*SIZE, 3)).astype(np.uint8)
    pixels = np.array([[10, 10], [30, 50]]) if lidar else None
    return DemoFrame(
        index=index,
        stamp_ns=1_000 + index,
        condition=condition,
        rgb=rgb,
        truth=labels.copy(),
        labels=labels,
        overlay=render.blend(render.colourise(labels, PALETTE), rgb, 0.5),
        point_pixels=pixels,
        point_labels=np.array([1, 2], dtype=np.uint32) if lidar else None,
        present={"rgb": True, "depth": True, "lidar": lidar},
        miou=0.5,
    )


FRAMES = [make_frame(2, "sun", True), make_frame(5, "sun", False), make_frame(9, "night", True)]


def panel_box(row: int, column: int, legend_top_offset: int = 0) -> tuple[slice, slice]:
    """Where panel (row, column) of the strip lies: below title, header and the captions."""
    top = 30 + render.HEADER_HEIGHT + row * (render.CAPTION_HEIGHT + SIZE[0])
    top += render.CAPTION_HEIGHT
    return slice(top, top + SIZE[0]), slice(column * SIZE[1], (column + 1) * SIZE[1])


def make_strip() -> np.ndarray:
    return render.strip(FRAMES, CLASSES, PALETTE, 0.5, 0.1, "title")


def test_strip_has_four_columns_three_rows_and_the_legend() -> None:
    strip = make_strip()
    legend_height = render.legend(CLASSES, PALETTE, 4 * SIZE[1])[0].shape[0]
    rows = 3 * (render.CAPTION_HEIGHT + SIZE[0])
    assert strip.shape == (30 + render.HEADER_HEIGHT + rows + legend_height, 4 * SIZE[1], 3)
    for row, frame in enumerate(FRAMES):
        # Column 0 is the camera image, column 2 the node's overlay, both unchanged.
        assert np.array_equal(strip[panel_box(row, 0)], frame.rgb)
        assert np.array_equal(strip[panel_box(row, 2)], frame.overlay)
        # Column 1 is the ground truth in the same colours and blend as the overlay.
        assert np.array_equal(strip[panel_box(row, 1)], frame.overlay)


def test_absent_lidar_panel_is_hatched_in_a_red_frame() -> None:
    strip = make_strip()
    border = render.ABSENT_BORDER
    absent = strip[panel_box(1, 3)]
    red = np.array(render.ABSENT_RED, dtype=np.uint8)
    for edge in (absent[:border], absent[-border:], absent[:, :border], absent[:, -border:]):
        assert (edge == red).all()
    # Hatching: the inside alternates between two greys (where no text box is drawn).
    corner = absent[border : border + 12, border : border + 12]
    assert set(np.unique(corner[..., 0])) == {70, 95}
    assert (corner[..., 0] == corner[..., 1]).all() and (corner[..., 1] == corner[..., 2]).all()
    # ... and the text's red is there: "LIDAR ABSENT" is written inside, not just the frame.
    inside = absent[border:-border, border:-border].astype(int)
    reddish = (inside[..., 0] > 150) & (inside[..., 1] < 110) & (inside[..., 2] < 110)
    assert reddish.sum() > 30
    # A frame with LiDAR shows its painted points instead: no red frame.
    present = strip[panel_box(0, 3)]
    assert not (present[:border] == red).all()
    assert tuple(present[10, 10]) == tuple(PALETTE[1])  # the painted point's class colour
    assert tuple(present[30, 50]) == tuple(PALETTE[2])


def test_caption_marks_absent_sensors_and_night() -> None:
    red = np.array(render.ABSENT_RED, dtype=np.uint8)
    present_caption = render.caption(FRAMES[0], 4 * SIZE[1] * 3, 0.1)
    absent_caption = render.caption(FRAMES[1], 4 * SIZE[1] * 3, 0.1)
    assert not (present_caption == red).all(axis=-1).any()
    assert (absent_caption == red).all(axis=-1).sum() > 30  # the "LiDAR absent" chip
    night_caption = render.caption(FRAMES[2], 4 * SIZE[1] * 3, 0.1)
    night, day = (np.array(colour, np.uint8) for colour in
                  (render.CAPTION_BACKGROUND["night"], render.BACKGROUND))  # fmt: skip
    assert (night_caption[:, -2] == night).all() and (present_caption[:, -2] == day).all()
    badge = np.array(render.CONDITION_STYLE["night"][0], np.uint8)
    assert (night_caption == badge).all(axis=-1).sum() > 100  # the NIGHT badge


def test_legend_lists_every_class_with_its_colour() -> None:
    image, entries = render.legend(CLASSES, PALETTE, 4 * SIZE[1])
    assert [name for name, _ in entries] == list(CLASSES)
    for index, (_, (x, y)) in enumerate(entries):
        swatch = image[y : y + render.LEGEND_SWATCH, x : x + render.LEGEND_SWATCH]
        assert (swatch == PALETTE[index]).all()
    # The strip ends with this legend.
    strip = make_strip()
    assert np.array_equal(strip[-image.shape[0] :], image)


def test_animation_frame_is_header_row_and_legend() -> None:
    header = render.column_header(SIZE[1])
    footer = render.legend(CLASSES, PALETTE, 4 * SIZE[1])[0]
    picture = render.animation_frame(FRAMES[1], header, footer, PALETTE, 0.5, 0.1)
    expected = header.shape[0] + render.CAPTION_HEIGHT + SIZE[0] + footer.shape[0]
    assert picture.shape == (expected, 4 * SIZE[1], 3)
    top = header.shape[0] + render.CAPTION_HEIGHT
    assert np.array_equal(picture[top : top + SIZE[0], : SIZE[1]], FRAMES[1].rgb)


def test_ignore_pixels_of_the_ground_truth_are_grey() -> None:
    labels = np.array([[0, 255], [2, 1]], dtype=np.uint8)
    colours = render.colourise(labels, PALETTE)
    assert tuple(colours[0, 1]) == render.IGNORE_GREY
    assert tuple(colours[1, 0]) == tuple(PALETTE[2])
