"""Parameters (names, YAML, validation), the tf buffer and the latest-frame slot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mlesam_ros.engine.segmenter import BACKENDS
from mlesam_ros.geometry import invert_transform, make_transform
from mlesam_ros.pipeline.config import (
    DEFAULT_PARAMETERS,
    PARAMETERS,
    NodeConfig,
    load_params_file,
    parameter_table,
)
from mlesam_ros.pipeline.tf_buffer import TfBuffer
from mlesam_ros.pipeline.worker import LatestSlot

CONFIG = Path(__file__).resolve().parents[1] / "config" / "mlesam.yaml"


def test_node_config_is_derived_from_the_parameter_table() -> None:
    """Every NodeConfig field is fed by the table (a field nobody feeds fails to build)."""
    fed = {spec.field.partition("[")[0] for spec in PARAMETERS.values()}
    assert fed == {field.name for field in dataclasses.fields(NodeConfig)}
    config = NodeConfig.from_parameters({"sync.offset_points_s": -0.02, "model.precision": "",
                                         "model.modalities": "rgb, lidar"})  # fmt: skip
    assert config.offsets_ns == {"depth": 0, "thermal": 0, "points": -20_000_000}
    assert config.precision is None and config.modalities == ("rgb", "lidar")
    assert set(config.configured_extrinsics) == {"depth", "thermal", "points"}
    assert config.reliability["camera_info"] == "reliable"


def test_shipped_yaml_lists_exactly_the_defaults() -> None:
    assert load_params_file(CONFIG) == DEFAULT_PARAMETERS
    for name in ("topics.rgb", "topics.rgb_info", "topics.depth", "topics.depth_info",
                 "topics.thermal", "topics.thermal_info", "topics.points"):
        assert name in DEFAULT_PARAMETERS
        assert f"`{name}`" in parameter_table()


def test_params_file_forms_and_errors(tmp_path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("mlesam:\n  ros__parameters:\n    sync: {timeout_s: 0.2}\n"
                      "    topics.points: ''\n")
    params = load_params_file(nested)
    assert params == {"sync.timeout_s": 0.2, "topics.points": ""}
    config = NodeConfig.from_parameters(params)
    assert config.timeout_ns == 200_000_000
    assert config.enabled_inputs == ("rgb", "depth", "thermal")
    plain = tmp_path / "plain.yaml"
    plain.write_text("sync:\n  timeout_s: 0.2\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        load_params_file(plain)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_params_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"topics.rgbb": "/x"}, "unknown 'topics.rgbb'; did you mean 'topics.rgb'"),
    ({"qos.rgb": "best-effort"}, "qos.rgb: choose best_effort or reliable"),
    ({"topics.rgb": ""}, "topics.rgb: the RGB image is required"),
    ({"sync.timeout_s": 0.0}, r"sync.timeout_s: must be in \[1e-06, 60.0\]"),
    ({"output.overlay_alpha": 1.5}, "overlay_alpha: must be in"),
    ({"extrinsics.source": "urdf"}, "extrinsics.source: choose tf or config"),
    ({"extrinsics.rgb_from_points": [0.0, 1.0]}, r"rgb_from_points: expected \[x, y, z"),
    ({"model.backend": "tflite"}, "model.backend: choose from auto"),
    ({"model.modalities": "rgb,sonar"}, "unknown sonar"),
    ({"sync.timeout_s": "abc"}, r"sync\.timeout_s: expected a number in \[1e-06, 60.0\], got 'a"),
    ({"lidar.dilation": -1}, r"lidar\.dilation: must be in \[0, 50\], got -1"),
    ({"model.threads": -2}, r"model\.threads: must be in \[0, 1024\]"),
    ({"lidar.max_range_m": 0.0}, r"lidar\.max_range_m: must be > 0"),
    ({"lidar.intensity_max": -1.0}, r"lidar\.intensity_max: must be > 0"),
    ({"sync.strict": "yes"}, r"sync\.strict: expected true or false, got 'yes'"),
    ({"lidar.dilation": 1.5}, r"lidar\.dilation: expected an integer"),
    ({"model.precision": "fp8"}, r"model\.precision: choose from '', fp16"),
    ({"qos.output_depth": 0}, r"qos\.output_depth: must be in \[1, 100\]"),
])
def test_bad_parameters_name_the_parameter(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        NodeConfig.from_parameters(overrides)


def test_configured_extrinsic_is_translation_then_quaternion() -> None:
    config = NodeConfig.from_parameters(
        {"extrinsics.rgb_from_points": [1.0, 2.0, 3.0, 0.0, 0.0, 0.7071068, 0.7071068]})
    T = config.configured_extrinsics["points"]
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-6)  # yaw 90°


def test_tf_buffer_composes_through_the_common_parent() -> None:
    tf = TfBuffer(max_extrapolation_ns=10)
    T_base_cam = make_transform(np.array([0.5, -0.5, 0.5, -0.5]), (1.6, 0.0, 1.5))
    T_base_lidar = make_transform(None, (0.0, 0.0, 1.9))
    tf.add("base_link", "camera", T_base_cam, 0, static=True)
    tf.add("/base_link", "lidar", T_base_lidar, 0, static=True)
    expected = invert_transform(T_base_cam) @ T_base_lidar
    np.testing.assert_allclose(tf.lookup("camera", "lidar", 123), expected, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("lidar", "camera", 0), invert_transform(expected),
                               atol=1e-12)
    # A moving base: odom -> base_link at two stamps, nearest one wins.
    tf.add("odom", "base_link", make_transform(None, (0, 0, 0)), 100, static=False)
    tf.add("odom", "base_link", make_transform(None, (5, 0, 0)), 200, static=False)
    assert tf.lookup("odom", "lidar", 190)[0, 3] == pytest.approx(5.0)
    assert tf.lookup("odom", "lidar", 120)[0, 3] == pytest.approx(0.0)
    with pytest.raises(LookupError, match="extrapolation"):
        tf.lookup("odom", "lidar", 1_000)
    with pytest.raises(LookupError, match="no connection between 'camera' and 'thermal'"):
        tf.lookup("camera", "thermal", 0)


def test_latest_slot_keeps_only_the_newest() -> None:
    slot = LatestSlot()
    assert slot.take(timeout_s=0) is None
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.take(timeout_s=0) == 3 and slot.take(timeout_s=0) is None
    assert slot.dropped == 2
    slot.close()
    assert slot.take(timeout_s=10) is None  # returns at once once closed


def test_text_booleans_and_numbers_read_as_what_they_say() -> None:
    config = NodeConfig.from_parameters({"sync.strict": "false", "output.confidence": "False",
                                         "output.labels_color": "true", "sync.timeout_s": "0.2",
                                         "lidar.dilation": "3"})
    assert config.strict is False and config.confidence is False and config.labels_color
    assert config.timeout_ns == 200_000_000 and config.lidar_dilation == 3


def test_parameter_spec_choices_match_the_engine() -> None:

    assert PARAMETERS["model.backend"].choices == BACKENDS


def test_yaml_comments_are_the_spec_descriptions() -> None:
    """config/mlesam.yaml documents each parameter with the spec's own description."""

    text = CONFIG.read_text()
    for name, spec in PARAMETERS.items():
        assert f"# {spec.description}" in text, name


# -- parameter files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("    sync.slop_s: .nan\n", ["sync.slop_s", "finite"]),
        ("    extrinsics:\n      rgb_from_points: [0, 0, .inf, 0, 0, 0, 1]\n",
         ["extrinsics.rgb_from_points", "finite"]),
        ("    topics.rgb: '/a\n", ["not valid YAML", "line"]),
        ("    - a list\n", ["ros__parameters", "name: value"]),
    ],
    ids=["nan", "inf-in-list", "unclosed-quote", "not-a-mapping"],
)
def test_params_file_errors_name_the_problem(tmp_path, body, needles) -> None:

    with pytest.raises(ValueError) as caught:
        load_params_file(_params_file(tmp_path, body))
    for needle in needles:
        assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


# -- parameter typing ----------------


@pytest.mark.parametrize(
    ("parameters", "name"),
    [
        ({"sync.timeout_s": "abc"}, "sync.timeout_s"),
        ({"lidar.dilation": -1}, "lidar.dilation"),
        ({"model.threads": -2}, "model.threads"),
        ({"lidar.max_range_m": 0.0}, "lidar.max_range_m"),
        ({"lidar.intensity_max": 0.0}, "lidar.intensity_max"),
    ],
)
def test_bad_parameter_values_fail_at_start_up_naming_the_parameter(parameters, name) -> None:

    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        NodeConfig.from_parameters(parameters)


def test_the_string_false_is_not_true() -> None:

    try:
        config = NodeConfig.from_parameters({"sync.strict": "false"})
    except ValueError as error:  # refusing a string for a bool is as good as reading it
        assert "sync.strict" in str(error)
    else:
        assert config.strict is False


def _params_file(tmp_path, body: str):
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n" + body)
    return path
