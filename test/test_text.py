"""Bounded text: user values quoted short with their length, every reported line bounded."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from conftest import drive_records, read_bag, write_bag

from mlesam_ros import cli
from mlesam_ros.data import topics
from mlesam_ros.dds.commands import parse_overrides
from mlesam_ros.msgs import array_to_pointcloud2, image_to_rgb8, pointcloud2_to_array
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig, load_params_file
from mlesam_ros.pipeline.tf_buffer import TfBuffer
from mlesam_ros.replay.run import replay_bag
from mlesam_ros.text import LINE_LIMIT, bounded, quote, shown

HUGE = "x" * 1_000_000
LIMIT = 2 * LINE_LIMIT  # a reported line, with its context around the quoted value


def test_quote_and_bounded() -> None:
    assert quote("/camera/image_raw") == "'/camera/image_raw'"
    assert quote(HUGE) == f"{'x' * 60!r}... (1000000 characters)"
    assert quote(HUGE, limit=3) == "'xxx'... (1000000 characters)"
    assert shown(19) == "19" and shown([1.0, 2.0]) == "[1.0, 2.0]"
    assert shown(list(range(10**5))).endswith(f"({len(repr(list(range(10**5))))} characters)")
    assert bounded("short") == "short"
    assert bounded(HUGE) == "x" * LINE_LIMIT + "... (cut, 1000000 characters)"


@pytest.mark.parametrize(
    "fails",
    [
        lambda: NodeConfig.from_parameters({"sync.timeout_s": HUGE}),
        lambda: NodeConfig.from_parameters({HUGE: 1}),
        lambda: NodeConfig.from_parameters({"qos.rgb": HUGE}),
        lambda: parse_overrides([HUGE]),
        lambda: image_to_rgb8(replace(_image(), encoding=HUGE), topic=HUGE),
        lambda: pointcloud2_to_array(_cloud_named(HUGE), HUGE),
    ],
    ids=["value", "parameter-name", "choice", "-p", "encoding", "field-name"],
)
def test_errors_quote_huge_values_short(fails) -> None:
    with pytest.raises(ValueError) as caught:
        fails()
    text = str(caught.value)
    assert len(text) < LIMIT and "(1000000 characters)" in text


def _image():
    from mlesam_ros.msgs import numpy_to_image

    return numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8", 5, "cam")


def _cloud_named(name: str):
    points = np.zeros(3, dtype=[(name, "<f4"), ("y", "<f4"), ("z", "<f4")])
    return array_to_pointcloud2(points, 5, "lidar")


def test_tf_refusals_quote_frame_ids_short() -> None:
    from conftest import tf_message

    buffer = TfBuffer()
    (problem,) = buffer.feed("/tf_static", tf_message(HUGE, HUGE, 5, (0, 0, 0), (0, 0, 0, 1)))
    assert len(problem) < LIMIT and "(1000000 characters)" in problem
    with pytest.raises(LookupError) as caught:
        buffer.lookup(HUGE, "camera", 5)
    assert len(str(caught.value)) < LIMIT


def test_a_huge_topic_name_is_one_short_error_line(tmp_path, frames, model_path, capsys):
    bag = write_bag(tmp_path / "in", drive_records(frames[:1]))
    params = tmp_path / "params.yaml"
    # An explicit key (?): YAML allows implicit keys of at most 1024 characters.
    params.write_text(f"/**:\n  ros__parameters:\n    topics.rgb: /{HUGE}\n"
                      f"    ? {HUGE[:300_000]}\n    : 1\n")  # fmt: skip
    code = cli.main(["replay", "--bag", str(bag), "--out", str(tmp_path / "out"),
                     "--params", str(params), "--model", str(model_path)])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and len(error) < LIMIT and error.count("\n") == 1
    assert "topics.rgb: '/xxx" in error and "(1000001 characters)" in error
    warnings: list[str] = []
    load_params_file(params, warn=warnings.append)
    assert len(warnings) == 1 and len(warnings[0]) < LIMIT and "300000 characters" in warnings[0]


def test_huge_values_from_the_wire_stay_short_in_logs_and_diagnostics(
    tmp_path, frames, model_path, caplog
) -> None:
    """A 1 MB frame_id, encoding and field name reach the log and /diagnostics short."""
    recs = drive_records(frames[:3])

    def first(topic: str, frame: int) -> int:
        return next(i for i, rec in enumerate(recs) if rec.topic == topic and rec.frame == frame)

    depth = first(topics.DEPTH_IMAGE_TOPIC, 0)
    recs[depth] = replace(recs[depth], message=replace(recs[depth].message, encoding=HUGE))
    rgb = first(topics.RGB_IMAGE_TOPIC, 1)
    header = replace(recs[rgb].message.header, frame_id=HUGE)
    recs[rgb] = replace(recs[rgb], message=replace(recs[rgb].message, header=header))
    lidar = first(topics.LIDAR_TOPIC, 2)
    cloud = recs[lidar].message
    fields = [replace(f, name=HUGE) if f.name == "x" else f for f in cloud.fields]
    recs[lidar] = replace(recs[lidar], message=replace(cloud, fields=fields))
    bag = write_bag(tmp_path / "in", recs)
    with caplog.at_level(logging.WARNING):
        result = replay_bag(bag, tmp_path / "out", {"model.path": str(model_path),
                                                     "diagnostics.period_s": 0.05},
                            progress=False)  # fmt: skip
    assert result.frames == 3
    assert caplog.records and all(len(r.getMessage()) < LIMIT for r in caplog.records)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged.count("(1000000 characters)") >= 3
    strings = [text for _, array in read_bag(tmp_path / "out")[m.DIAGNOSTICS_TOPIC]
               for status in array.status
               for text in (status.name, status.message, *(kv.value for kv in status.values))]
    assert max(len(text) for text in strings) < LIMIT
