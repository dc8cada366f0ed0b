"""Params files read as ROS reads them (rcl's layout and names, rclcpp's matching and order)
and parameters the node does not know reported once, with the closest known name."""

from __future__ import annotations

import logging

import pytest
from conftest import drive_records, write_bag

from mlesam_ros import cli
from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS, command_line_parameters
from mlesam_ros.pipeline.params_file import (
    closest_parameter,
    node_fqn,
    read_params_file,
    report_unknown_parameters,
    section_applies,
)


def _file(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("section", "applies_to", "not_to"),
    [
        ("/**", ["/mlesam", "/front/mlesam", "/a/b/c/mlesam"], []),
        ("/*", ["/mlesam", "/other"], ["/front/mlesam"]),
        ("/mlesam", ["/mlesam"], ["/front/mlesam", "/mlesam2", "/other"]),
        ("/front/mlesam", ["/front/mlesam"], ["/mlesam", "/rear/mlesam", "/x/front/mlesam"]),
        ("/front/*", ["/front/mlesam", "/front/other"], ["/mlesam", "/front/a/mlesam"]),
        ("/front/**", ["/front/mlesam", "/front/a/b/mlesam"], ["/rear/mlesam", "/frontx/a"]),
        ("/**/mlesam", ["/mlesam", "/front/mlesam", "/a/b/mlesam"], ["/front/other"]),
        ("/*/mlesam", ["/front/mlesam"], ["/mlesam", "/a/b/mlesam"]),
        ("/*/*", ["/front/mlesam"], ["/mlesam", "/a/b/mlesam"]),
        ("/robot/**/mlesam", ["/robot/mlesam", "/robot/cams/front/mlesam"], ["/mlesam"]),
    ],
)
def test_which_sections_apply_to_a_node(section, applies_to, not_to) -> None:
    """``*`` is one name token, ``**`` any number of them; everything else must be equal."""
    for fqn in applies_to:
        assert section_applies(section, fqn), (section, fqn)
    for fqn in not_to:
        assert not section_applies(section, fqn), (section, fqn)


def test_node_names_are_fully_qualified() -> None:
    assert node_fqn("mlesam") == "/mlesam" == node_fqn("mlesam", "")
    assert node_fqn("mlesam", "/front") == "/front/mlesam" == node_fqn("mlesam", "front/")
    assert node_fqn("seg", "/robot/cams") == "/robot/cams/seg"


def test_another_nodes_section_is_not_applied(tmp_path) -> None:
    """A section for another node (or namespace) leaves this node at its defaults."""
    path = _file(tmp_path, "other_node:\n  ros__parameters:\n    sync.timeout_s: 0.3\n"
                           "rear:\n  mlesam:\n    ros__parameters:\n      sync.slop_s: 0.05\n")
    warnings: list[str] = []
    assert command_line_parameters(path, warn=warnings.append) == {}
    assert len(warnings) == 1 and "no section applies to node /mlesam" in warnings[0]
    assert "'/other_node'" in warnings[0] and "'/rear/mlesam'" in warnings[0]
    assert command_line_parameters(path, fqn="/rear/mlesam") == {"sync.slop_s": 0.05}
    assert command_line_parameters(path, fqn="/other_node") == {"sync.timeout_s": 0.3}


def test_nested_namespaces_and_wildcards_form_node_names(tmp_path) -> None:
    """Keys above ros__parameters join with '/', and a mapping may hold both a node's own
    ros__parameters and further nodes (rcl's layout)."""
    path = _file(tmp_path, """
/**:
  ros__parameters:
    diagnostics.period_s: 2.0
  mlesam:
    ros__parameters:
      sync.timeout_s: 0.2
robot:
  cams/front:
    mlesam:
      ros__parameters:
        sync: {slop_s: 0.01}
/*:
  ros__parameters:
    output.confidence: true
""")
    reading = read_params_file(path, "/robot/cams/front/mlesam")
    assert reading.sections == ["/**", "/**/mlesam", "/robot/cams/front/mlesam", "/*"]
    assert reading.parameters == {"diagnostics.period_s": 2.0, "sync.timeout_s": 0.2,
                                  "sync.slop_s": 0.01}  # fmt: skip
    root = read_params_file(path, "/mlesam")
    assert root.applied == ["/**", "/**/mlesam", "/*"]
    assert root.parameters == {"diagnostics.period_s": 2.0, "sync.timeout_s": 0.2,
                               "output.confidence": True}  # fmt: skip


def test_precedence_is_the_order_of_first_appearance(tmp_path) -> None:
    """Later matching sections override earlier ones; a name seen again is merged into its
    first appearance (rcl keeps one entry per node name)."""
    specific_last = _file(tmp_path, "/**:\n  ros__parameters: {sync.timeout_s: 0.1}\n"
                                    "/mlesam:\n  ros__parameters: {sync.timeout_s: 0.2}\n")
    reading = read_params_file(specific_last, "/mlesam")
    assert reading.parameters == {"sync.timeout_s": 0.2} and reading.notes == []
    specific_first = _file(tmp_path, "/mlesam:\n  ros__parameters: {sync.timeout_s: 0.2}\n"
                                     "/*:\n  ros__parameters: {sync.timeout_s: 0.1}\n")
    reading = read_params_file(specific_first, "/mlesam")
    assert reading.parameters == {"sync.timeout_s": 0.1}
    (note,) = reading.notes  # rclpy would keep 0.2 here: the user is told
    assert "overridden by the later section '/*'" in note and "rclpy" in note
    merged = _file(tmp_path, "/**:\n  ros__parameters: {sync.timeout_s: 0.1}\n"
                             "/mlesam:\n  ros__parameters: {sync.timeout_s: 0.2}\n"
                             "/**:\n  ros__parameters: {sync.timeout_s: 0.3, sync.slop_s: 0.04}\n")
    assert read_params_file(merged, "/mlesam").parameters == {"sync.timeout_s": 0.2,
                                                              "sync.slop_s": 0.04}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/mlesam*:\n  ros__parameters: {a: 1}\n", "a wildcard must be a whole token"),
        ("/**mlesam:\n  ros__parameters: {a: 1}\n", "a wildcard must be a whole token"),
        ("/m*lesam:\n  ros__parameters: {a: 1}\n", "a wildcard must be a whole token"),
        ("/**/node**:\n  ros__parameters: {a: 1}\n", "a wildcard must be a whole token"),
        ("/front:\n  /*:\n    ros__parameters: {a: 1}\n", "repeated forward slash"),
        ("/front//mlesam:\n  ros__parameters: {a: 1}\n", "repeated forward slash"),
        ("/9lives:\n  ros__parameters: {a: 1}\n", "'9lives' is not a valid ROS name"),
        ("/my-node:\n  ros__parameters: {a: 1}\n", "'my-node' is not a valid ROS name"),
        ("mlesam: 5\n", "holds a value where a node name or ros__parameters is expected"),
        ("ros__parameters: {a: 1}\n", "no node name before ros__parameters"),
        ("mlesam:\n  ros__parameters: [1, 2]\n", "must hold name: value pairs"),
    ],
)
def test_files_rcl_refuses_are_refused(tmp_path, text, error) -> None:
    with pytest.raises(ValueError, match=error):
        read_params_file(_file(tmp_path, text), "/mlesam")


def test_unknown_parameters_are_reported_once_with_the_closest_name(tmp_path) -> None:
    path = _file(tmp_path, """
/**:
  ros__parameters:
    use_sim_time: true
    sync.timout_s: 0.3
    qos_overrides./tf.subscription.depth: 10
/mlesam:
  ros__parameters:
    sync: {timout_s: 0.4, slop_s: 0.02}
    completely_unrelated_name: 1
""")
    warnings: list[str] = []
    parameters = command_line_parameters(path, warn=warnings.append)
    assert parameters == {"use_sim_time": True, "sync.slop_s": 0.02,
                          "qos_overrides./tf.subscription.depth": 10}  # fmt: skip
    assert len(warnings) == 2
    assert "'sync.timout_s'; did you mean 'sync.timeout_s'?" in warnings[0]
    assert "'completely_unrelated_name'" in warnings[1] and "did you mean" not in warnings[1]
    assert all("ignored" in warning for warning in warnings)


def test_the_ros_node_reports_its_unknown_overrides_the_same_way() -> None:
    """The rclpy node passes rcl's overrides (name → Parameter) to the same report."""
    warnings: list[str] = []
    overrides = {"sync.timeout_s": object(), "outptu.confidence": object(),
                 "use_sim_time": object(), "autostart": object()}  # fmt: skip
    unknown = report_unknown_parameters(overrides, warnings.append, "params file / -p")
    assert unknown == ["outptu.confidence"]
    assert warnings == ["mlesam: params file / -p: parameter unknown 'outptu.confidence'; did "
                        "you mean 'output.confidence'? It is ignored."]
    for name in DEFAULT_PARAMETERS:
        assert closest_parameter(name) == name


def test_replay_warns_about_a_misspelt_parameter_and_runs(tmp_path, frames, model_path,
                                                          caplog) -> None:  # fmt: skip
    bag = write_bag(tmp_path / "in", drive_records(frames[:2]))
    params = _file(tmp_path, f"/**:\n  ros__parameters:\n    model.path: {model_path}\n"
                             "    sync.timout_s: 0.3\n    use_sim_time: true\n")
    with caplog.at_level(logging.WARNING):
        code = cli.main(["replay", "--bag", str(bag), "--out", str(tmp_path / "out"),
                         "--params", str(params), "--quiet"])  # fmt: skip
    assert code == 0
    warned = [r.getMessage() for r in caplog.records if "timout" in r.getMessage()]
    assert len(warned) == 1 and "did you mean 'sync.timeout_s'?" in warned[0]
