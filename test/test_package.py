"""The package's promises to users: cheap import, no ROS outside the node shell, a working CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import mlesam_ros
from mlesam_ros import cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "mlesam_ros"
ROS_ONLY_MODULES = {
    "rclpy",
    "sensor_msgs",
    "sensor_msgs_py",
    "std_msgs",
    "vision_msgs",
    "diagnostic_msgs",
    "tf2_ros",
    "cv_bridge",
    "launch",
    "launch_ros",
    "builtin_interfaces",
    "geometry_msgs",
    "tf2_msgs",
}


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_import_does_not_load_heavy_or_ros_modules() -> None:
    code = (
        "import sys, mlesam_ros, mlesam_ros.cli\n"
        "heavy = ['torch', 'onnxruntime', 'rclpy', 'tensorrt', 'cv2', 'segment_anything']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_only_node_package_imports_ros() -> None:
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if "node" in path.relative_to(PACKAGE_DIR).parts[:1]:
            continue
        ros_imports = _imported_top_modules(path) & ROS_ONLY_MODULES
        if ros_imports:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(ros_imports)}")
    assert offenders == []


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlesam_ros {mlesam_ros.__version__}"

    assert cli.main([]) == 0
    assert "usage: mlesam" in capsys.readouterr().out


def test_cli_rejects_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_registered_command_has_a_handler() -> None:
    parser = cli.build_parser()
    subparsers = next(
        action for action in parser._actions if action.dest == "command"
    )
    for name, subparser in subparsers.choices.items():
        assert subparser.get_default("handler") is not None, name


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlesam_ros", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "mlesam" in result.stdout


def test_package_xml_is_ament_python_format_3() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "mlesam_ros"
    assert root.findtext("version") == mlesam_ros.__version__
    assert root.find("export/build_type").text == "ament_python"
    exec_depends = {element.text for element in root.findall("exec_depend")}
    # tf2_ros's Python module ships in tf2_ros_py since Humble (see test_package_xml.py).
    assert {"rclpy", "sensor_msgs", "vision_msgs", "tf2_ros_py", "launch_ros"} <= exec_depends
    assert (ROOT / "resource" / "mlesam_ros").is_file()
