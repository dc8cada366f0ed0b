"""package.xml declares exactly what the code needs: ``rosdep install`` gives the node and
the launch file everything they import, and nothing they do not use.

Read both sides: every third-party import in ``mlesam_ros/`` and ``launch/`` is declared in
package.xml (ROS packages) or setup.py (pip: the inference stack rosdep has no keys for), and
every ``exec_depend`` is imported by the code or is a message package the node resolves by
type name.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import name → rosdep key (ROS packages keep their name)
# (tf2_ros's Python module ships in the tf2_ros_py package since Humble).
ROSDEP_KEYS = {"numpy": "python3-numpy", "yaml": "python3-yaml", "tf2_ros": "tf2_ros_py"}
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "rosidl_runtime_py", "ament_index_python",
                "launch", "launch_ros"}
# import name → pip distribution in setup.py
PIP_DISTRIBUTIONS = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml",
                     "segment_anything": "segment-anything", "numpy": "numpy", "onnx": "onnx",
                     "onnxruntime": "onnxruntime", "rosbags": "rosbags", "tqdm": "tqdm",
                     "torch": "torch", "matplotlib": "matplotlib", "tensorrt": "tensorrt",
                     "sam2": "sam2", "cyclonedds": "cyclonedds", "numba": "numba",
                     "cuda": "cuda-python"}


def _third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    files = [*(ROOT / "mlesam_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "mlesam_ros":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _package_xml(tag: str) -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {element.text.strip() for element in root.iter(tag)}


def _message_packages() -> set[str]:
    """Packages of the message types the node subscribes to or publishes (by type name)."""
    text = (ROOT / "mlesam_ros" / "pipeline" / "messages.py").read_text()
    used = {"IMAGE", "POINTCLOUD2", "CAMERA_INFO", "LABEL_INFO", "DIAGNOSTIC_ARRAY"}
    packages = set()
    for name, msgtype in re.findall(r'^([A-Z_0-9]+) = "(\w+)/msg/\w+"', text, re.M):
        if name in used:
            packages.add(msgtype)
    return packages


def test_every_import_is_declared() -> None:
    exec_depends = _package_xml("exec_depend")
    setup = (ROOT / "setup.py").read_text().lower()
    undeclared = {}
    for module, files in _third_party_imports().items():
        if module in ROS_PACKAGES:
            ok = module in exec_depends
        elif module in ROSDEP_KEYS and ROSDEP_KEYS[module] in exec_depends:
            ok = True
        else:
            dist = PIP_DISTRIBUTIONS.get(module)
            ok = ROSDEP_KEYS.get(module) in exec_depends or (
                dist is not None and f'"{dist}' in setup
            )
        if not ok:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not declared in package.xml/setup.py: {undeclared}"


def test_every_declared_dependency_is_used() -> None:
    imports = set(_third_party_imports())
    used = imports | {ROSDEP_KEYS[m] for m in imports if m in ROSDEP_KEYS} | _message_packages()
    unused = _package_xml("exec_depend") - used
    assert not unused, f"declared in package.xml but never imported or resolved: {unused}"
    assert _message_packages() == {"sensor_msgs", "vision_msgs", "diagnostic_msgs"}


def test_visualisation_is_not_a_runtime_dependency() -> None:
    declared = _package_xml("exec_depend") | _package_xml("depend")
    assert "rviz2" not in declared and "cv_bridge" not in declared
    assert "sensor_msgs_py" not in declared


def test_rclpy_is_imported_only_by_the_node_package() -> None:
    files = _third_party_imports()["rclpy"]
    assert files and all(path.startswith("mlesam_ros/node/") for path in files), files


def test_test_dependencies_are_used_by_the_tests() -> None:
    text = "\n".join(path.read_text() for path in (ROOT / "test").glob("*.py"))
    for dependency in _package_xml("test_depend") - {"python3-pytest"}:
        assert re.search(rf"\b{dependency}\b", text), dependency
