"""The demo's pictures: one captioned row per frame, a class legend, a strip and a GIF.

Each row shows four panels of one frame: the camera image, the ground truth, the node's
overlay (``~/labels_color``) and the LiDAR points painted with their predicted class
(``~/labeled_points``), under a caption that names the condition (day or night), which sensors
the model fused and the frame's mIoU. A sensor that is absent is marked where its panel would
be (hatched grey, red frame, "LiDAR ABSENT"), so a dropout cannot be mistaken for a dark frame.
Pillow draws the text (its built-in scalable font, no font files), numpy the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ABSENT_RED = (220, 40, 40)
FUSED_GREEN = (40, 150, 70)
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
MUTED = (160, 160, 165)
IGNORE_GREY = (60, 60, 60)
CONDITION_STYLE = {  # badge background, text colour
    "sun": ((240, 190, 40), (20, 20, 20)),
    "night": ((30, 50, 140), (255, 255, 255)),
}
CONDITION_TEXT = {"sun": "DAY", "night": "NIGHT"}
CAPTION_BACKGROUND = {"night": (16, 24, 64)}  # a night row's caption is tinted as well
SENSOR_TEXT = {"rgb": "RGB", "depth": "Depth", "thermal": "Thermal", "lidar": "LiDAR",
               "event": "Event"}  # fmt: skip
COLUMNS = (
    "Camera (RGB input)",
    "Ground truth",
    "Prediction (~/labels_color)",
    "LiDAR points, predicted class",
)
CAPTION_HEIGHT = 30
HEADER_HEIGHT = 26
ABSENT_BORDER = 4
LEGEND_SWATCH = 14
LEGEND_ROW = 20
LEGEND_COLUMN = 160
MIOU_NOTE = (
    "frame mIoU: intersection over union of prediction and ground truth per class, averaged "
    "over the classes in the frame. Hatched panel in a red frame: that sensor sent nothing."
)


@dataclass
class DemoFrame:
    """What one row shows; filled while the replay publishes, drawn afterwards."""

    index: int
    stamp_ns: int
    condition: str
    rgb: np.ndarray  # (H, W, 3) uint8 camera image
    truth: np.ndarray | None  # (H, W) class ids (255 = ignore), None without ground truth
    labels: np.ndarray  # (H, W) predicted class ids
    overlay: np.ndarray  # (H, W, 3) uint8, the node's ~/labels_color
    point_pixels: np.ndarray | None  # (N, 2) row, col of painted points; None: no LiDAR
    point_labels: np.ndarray | None  # (N,) their class ids
    present: dict[str, bool]  # model modality → fused in this frame
    miou: float | None  # this frame's mIoU (present classes), None without ground truth


def font(size: int) -> Any:
    """Pillow's built-in scalable font (Pillow >= 10.1 ships one; no file needed)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def colourise(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class colours of ``labels``; ids past the palette (ignore) in dark grey."""
    table = np.tile(np.asarray(IGNORE_GREY, dtype=np.uint8), (256, 1))
    table[: len(palette)] = palette[:256]
    return table[np.clip(labels, 0, 255).astype(np.intp)]


def blend(colours: np.ndarray, rgb: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha`` colour over the camera image, as the node's overlay is made."""
    import cv2

    return cv2.addWeighted(colours, alpha, rgb, 1.0 - alpha, 0.0)


def lidar_panel(frame: DemoFrame, palette: np.ndarray) -> np.ndarray:
    """Darken the overlay and draw each painted LiDAR point as a 2x2 dot in its class colour."""
    panel = (0.25 * frame.overlay.astype(np.float32)).astype(np.uint8)
    if frame.point_pixels is None or frame.point_labels is None:
        return panel
    colours = colourise(frame.point_labels, palette)
    height, width = panel.shape[:2]
    rows, cols = frame.point_pixels[:, 0], frame.point_pixels[:, 1]
    for dy in (0, 1):  # 2x2 dots: single pixels vanish in a GIF
        for dx in (0, 1):
            panel[np.clip(rows + dy, 0, height - 1), np.clip(cols + dx, 0, width - 1)] = colours
    return panel


def absent_panel(size: tuple[int, int], sensor: str) -> np.ndarray:
    """Hatched grey panel in a red frame saying ``<SENSOR> ABSENT``: a sensor missing here."""
    from PIL import Image, ImageDraw

    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    stripes = ((rows + cols) // 8) % 2 == 0
    panel = np.where(stripes[..., None], np.uint8(95), np.uint8(70)).astype(np.uint8)
    panel = np.repeat(panel, 3, axis=2) if panel.shape[2] == 1 else panel
    panel[:ABSENT_BORDER] = panel[-ABSENT_BORDER:] = ABSENT_RED
    panel[:, :ABSENT_BORDER] = panel[:, -ABSENT_BORDER:] = ABSENT_RED
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    title = f"{SENSOR_TEXT.get(sensor, sensor)} ABSENT"
    note = "no message: not fused"
    big, small = _fitting_font(draw, title, width // 11, width), _fitting_font(
        draw, note, width // 24, width)
    _centered(draw, (width // 2, height // 2 - height // 12), title, big, ABSENT_RED, box=True)
    _centered(draw, (width // 2, height // 2 + height // 10), note, small, TEXT, box=True)
    return np.asarray(image)


def _fitting_font(draw: Any, text: str, size: int, width: int) -> Any:
    """Return the font of ``size`` px, smaller where ``text`` would not fit in ``width``."""
    size = max(size, 6)
    face = font(size)
    while size > 6 and draw.textlength(text, font=face) > 0.8 * width:
        size -= 1
        face = font(size)
    return face


def _centered(draw: Any, centre: tuple[int, int], text: str, face: Any, fill: tuple,
              box: bool = False) -> None:  # fmt: skip
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    x = centre[0] - (right - left) // 2 - left
    y = centre[1] - (bottom - top) // 2 - top
    if box:
        pad = 5
        draw.rectangle((x + left - pad, y + top - pad, x + right + pad, y + bottom + pad),
                       fill=(20, 20, 20))  # fmt: skip
    draw.text((x, y), text, font=face, fill=fill)


def frame_panels(frame: DemoFrame, palette: np.ndarray, alpha: float) -> list[np.ndarray]:
    """Return the four panels of one frame, left to right as :data:`COLUMNS`."""
    size = frame.labels.shape[:2]
    if frame.truth is not None:
        truth = blend(colourise(frame.truth, palette), frame.rgb, alpha)
    else:
        truth = absent_panel(size, "ground truth")
    if frame.present.get("lidar", False):
        lidar = lidar_panel(frame, palette)
    else:
        lidar = absent_panel(size, "lidar")
    return [frame.rgb, truth, frame.overlay, lidar]


def caption(frame: DemoFrame, width: int, period_s: float) -> np.ndarray:
    """Caption bar: condition badge, frame and time, fused-sensor chips, frame mIoU."""
    from PIL import Image, ImageDraw

    background = CAPTION_BACKGROUND.get(frame.condition, BACKGROUND)
    image = Image.new("RGB", (width, CAPTION_HEIGHT), background)
    draw = ImageDraw.Draw(image)
    face = font(15)
    x = 6
    fill, ink = CONDITION_STYLE.get(frame.condition, ((90, 90, 90), TEXT))
    x = _chip(draw, x, CONDITION_TEXT.get(frame.condition, frame.condition.upper()), face,
              fill=fill, ink=ink)  # fmt: skip
    x += 10
    text = f"frame {frame.index}  t = {frame.index * period_s:.1f} s    fused:"
    draw.text((x, 7), text, font=face, fill=TEXT)
    x += int(draw.textlength(text, font=face)) + 8
    for modality, fused in frame.present.items():
        name = SENSOR_TEXT.get(modality, modality)
        if fused:
            x = _chip(draw, x, name, face, fill=FUSED_GREEN, ink=(255, 255, 255))
        else:
            x = _chip(draw, x, f"{name} absent", face, fill=None, ink=ABSENT_RED,
                      outline=ABSENT_RED, strike=False)  # fmt: skip
        x += 6
    score = "frame mIoU n/a" if frame.miou is None else f"frame mIoU {100 * frame.miou:.1f}%"
    right = width - 8 - int(draw.textlength(score, font=face))
    draw.text((right, 7), score, font=face, fill=TEXT)
    return np.asarray(image)


def _chip(draw: Any, x: int, text: str, face: Any, *, fill: tuple | None, ink: tuple,
          outline: tuple | None = None, strike: bool = False) -> int:  # fmt: skip
    """Draw a rounded label at ``x``; return the x after it."""
    width = int(draw.textlength(text, font=face))
    box = (x, 4, x + width + 12, CAPTION_HEIGHT - 5)
    draw.rounded_rectangle(box, radius=5, fill=fill, outline=outline, width=2)
    draw.text((x + 6, 7), text, font=face, fill=ink)
    if strike:
        draw.line((x + 4, CAPTION_HEIGHT // 2, x + width + 8, CAPTION_HEIGHT // 2), fill=ink,
                  width=2)  # fmt: skip
    return box[2]


def column_header(panel_width: int) -> np.ndarray:
    """Names of the four columns, each centred over its panel."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (panel_width * len(COLUMNS), HEADER_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    face = font(15)
    for column, name in enumerate(COLUMNS):
        _centered(draw, (column * panel_width + panel_width // 2, HEADER_HEIGHT // 2), name,
                  face, MUTED)  # fmt: skip
    return np.asarray(image)


def legend(class_names: Sequence[str], palette: np.ndarray, width: int) -> tuple[np.ndarray, list]:
    """Colour swatch and name of every class; returns the image and ``[(name, (x, y))]``.

    ``(x, y)`` is each swatch's top-left corner (tests read its colour there).
    """
    from PIL import Image, ImageDraw

    face = font(13)
    title = "Classes (same colours in ground truth, prediction and LiDAR points):"
    per_row = max(1, (width - 12) // LEGEND_COLUMN)
    rows = -(-len(class_names) // per_row)
    top = 26
    height = top + rows * LEGEND_ROW + 26
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((8, 5), title, font=face, fill=MUTED)
    draw.text((8, height - 21), MIOU_NOTE, font=face, fill=MUTED)
    entries = []
    for index, name in enumerate(class_names):
        row, column = divmod(index, per_row)
        x, y = 10 + column * LEGEND_COLUMN, top + row * LEGEND_ROW
        colour = tuple(int(v) for v in palette[index]) if index < len(palette) else IGNORE_GREY
        draw.rectangle((x, y, x + LEGEND_SWATCH - 1, y + LEGEND_SWATCH - 1), fill=colour)
        draw.text((x + LEGEND_SWATCH + 6, y - 1), f"{index} {name}", font=face, fill=TEXT)
        entries.append((name, (x, y)))
    return np.asarray(image), entries


def title_bar(text: str, width: int) -> np.ndarray:
    """One line of text on the background, full width."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, 30), BACKGROUND)
    ImageDraw.Draw(image).text((8, 6), text, font=font(17), fill=TEXT)
    return np.asarray(image)


def frame_row(frame: DemoFrame, palette: np.ndarray, alpha: float, period_s: float) -> np.ndarray:
    """Caption above the frame's four panels."""
    panels = np.concatenate(frame_panels(frame, palette, alpha), axis=1)
    return np.concatenate([caption(frame, panels.shape[1], period_s), panels], axis=0)


def strip(frames: Sequence[DemoFrame], class_names: Sequence[str], palette: np.ndarray,
          alpha: float, period_s: float, title: str) -> np.ndarray:  # fmt: skip
    """Title, column names, one captioned row per frame, then the legend."""
    panel_width = frames[0].labels.shape[1]
    width = panel_width * len(COLUMNS)
    parts = [title_bar(title, width), column_header(panel_width)]
    parts += [frame_row(frame, palette, alpha, period_s) for frame in frames]
    parts.append(legend(class_names, palette, width)[0])
    return np.concatenate(parts, axis=0)


def animation_frame(frame: DemoFrame, header: np.ndarray, footer: np.ndarray,
                    palette: np.ndarray, alpha: float, period_s: float) -> np.ndarray:  # fmt: skip
    """One GIF frame: column names, the captioned row, the legend."""
    return np.concatenate([header, frame_row(frame, palette, alpha, period_s), footer], axis=0)


__all__ = [
    "COLUMNS",
    "DemoFrame",
    "absent_panel",
    "animation_frame",
    "caption",
    "frame_panels",
    "legend",
    "strip",
]
