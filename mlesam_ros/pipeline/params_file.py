"""ROS 2 parameter files read as ROS reads them, and parameters this node does not know reported.

The ROS 2 node gets its parameters from rcl; the transports without ROS (``mlesam node
--transport dds``, ``mlesam replay --params``) read the same files here, by the same rules:

- **Layout** (rcl_yaml_param_parser): the keys above ``ros__parameters`` are joined with ``/``
  into a node name (``front: {mlesam: {ros__parameters: ...}}`` is ``/front/mlesam``) and a
  leading ``/`` is implied. Each name token is a valid ROS name, ``*`` or ``**``; a partial
  wildcard (``mlesam*``, ``/f**``), an empty token (``/front//mlesam``) or a value where a
  node name or ``ros__parameters`` is expected refuses the whole file, as rcl does. Nested
  parameter keys become dotted names (``sync: {timeout_s: 0.1}`` is ``sync.timeout_s``).
- **Which sections apply** (rclcpp's ``parameter_map_from``): a section applies when its
  name matches the node's fully qualified name, ``*`` standing for exactly one token and
  ``**`` for any number (``/**`` every node, ``/*`` every node in the root namespace,
  ``/front/*`` every node in ``/front``, ``/**/mlesam`` a node ``mlesam`` in any namespace).
  Sections for other nodes are ignored.
- **Precedence**: the matching sections apply in the order their names first appear in the
  file, a later one overriding an earlier one; a name that appears twice is one section whose
  later values win (rcl merges them). rclpy, which the ROS 2 node runs on, reads only ``/**``
  and the exact name and lets the exact name win: where a wildcard section after the exact
  one overrides it, the two disagree, and :func:`read_params_file` says so.

Names this node does not declare are ignored by ROS without a word, so a misspelt
``sync.timout_s`` leaves the default in force. :func:`report_unknown_parameters` reports
each once, with the closest known name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlesam_ros.pipeline.parameters import (
    CAMERA_PARAMETERS,
    CAMERA_PREFIX,
    PARAMETERS,
    camera_parameter,
)
from mlesam_ros.text import quote

PARAMS_KEY = "ros__parameters"
ROS_PARAMETERS = ("use_sim_time", "autostart", "start_type_description_service")
"""Parameters of ROS itself (or of the node's lifecycle shell), not of the node core."""
ROS_PARAMETER_PREFIXES = ("qos_overrides.",)
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def node_fqn(name: str, namespace: str = "/") -> str:
    """Return the fully qualified node name: ``("mlesam", "/front")`` → ``/front/mlesam``."""
    namespace = "/" + namespace.strip("/")
    return namespace.rstrip("/") + "/" + name.strip("/")


def is_ros_parameter(name: str) -> bool:
    """Whether ``name`` belongs to ROS (``use_sim_time``, ``qos_overrides.*``, ...)."""
    return name in ROS_PARAMETERS or name.startswith(ROS_PARAMETER_PREFIXES)


def is_node_parameter(name: str) -> bool:
    """Whether ``name`` is a node parameter: the table's, or ``cameras.<camera>.<key>``."""
    if name in PARAMETERS:
        return True
    camera = camera_parameter(name)
    return camera is not None and camera[1] in CAMERA_PARAMETERS


def closest_parameter(name: str) -> str | None:
    """Return the known parameter ``name`` most likely misspells (difflib), or None.

    ``cameras.<camera>.<key>`` is matched on its key against the per-camera parameters.
    """
    camera = camera_parameter(name)
    if camera is not None:
        keys = difflib.get_close_matches(camera[1], list(CAMERA_PARAMETERS), n=1, cutoff=0.6)
        if keys:
            return f"{CAMERA_PREFIX}{camera[0]}.{keys[0]}"
    matches = difflib.get_close_matches(name, list(PARAMETERS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_parameter_text(name: str) -> str:
    """``unknown 'sync.timout_s'; did you mean 'sync.timeout_s'?`` (names quoted short)."""
    closest = closest_parameter(name)
    hint = (f"did you mean {quote(closest)}?" if closest else
            "see config/mlesam.yaml for the names (e.g. topics.rgb, sync.timeout_s)")
    return f"unknown {quote(name)}; {hint}"


def report_unknown_parameters(
    names: Iterable[str],
    warn: Callable[[str], Any],
    source: str,
    cameras: Iterable[str] | None = None,
) -> list[str]:
    """Warn once per name in ``names`` that is neither a node parameter nor ROS's own.

    ``source`` says where the names came from (``params file x.yaml``). With ``cameras`` (the
    node's ``cameras.names``), a camera's parameter of a camera not in that list is reported
    too (the node declares none for it). Returns the unknown names, in order.
    """
    unknown = [name for name in dict.fromkeys(names)
               if not is_node_parameter(name) and not is_ros_parameter(name)]  # fmt: skip
    for name in unknown:
        warn(f"mlesam: {source}: parameter {unknown_parameter_text(name)} It is ignored.")
    if cameras is not None:
        listed = set(cameras)
        for name in dict.fromkeys(names):
            camera = camera_parameter(name)
            if name in unknown or camera is None or camera[0] in listed:
                continue
            unknown.append(name)
            warn(f"mlesam: {source}: parameter {quote(name)}: camera {quote(camera[0])} is not "
                 f"in cameras.names [{', '.join(sorted(listed))}]. It is ignored.")
    return unknown


@dataclass
class ParamsReading:
    """What a params file holds for one node: the parameters, and the sections they came from."""

    parameters: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)  # every section name, in file order
    applied: list[str] = field(default_factory=list)  # those that match the node
    notes: list[str] = field(default_factory=list)  # where rclpy would read it otherwise

    def node_parameters(self) -> dict[str, Any]:
        """Return the node core's parameters (ROS's own, such as ``use_sim_time``, left out)."""
        return {k: v for k, v in self.parameters.items() if not is_ros_parameter(k)}

    def ros_parameters(self) -> dict[str, Any]:
        """Return ROS's own parameters (``use_sim_time``): the transport's to apply."""
        return {k: v for k, v in self.parameters.items() if is_ros_parameter(k)}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _check_section_name(name: str, where: str) -> None:
    """Check a section name as rcl does: ROS name tokens, whole-token wildcards, no gap."""
    if name in ("/**", "/*"):
        return
    tokens = name[1:].split("/")
    for token in tokens:
        if token in ("*", "**"):
            continue
        if not token:
            raise ValueError(f"{where}: node name {quote(name)} contains repeated forward slash")
        if "*" in token:
            raise ValueError(
                f"{where}: node name {quote(name)}: a wildcard must be a whole token (* or **, "
                f"as in /*/mlesam), not part of {quote(token)}"
            )
        if not _NAME_TOKEN.fullmatch(token):
            raise ValueError(
                f"{where}: node name {quote(name)}: {quote(token)} is not a valid ROS name "
                "(letters, digits and _; not starting with a digit)"
            )


def _sections(document: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """Return (node name, flat parameters) per ``ros__parameters`` block, in file order."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(tree: Mapping[Any, Any], path: list[str]) -> None:
        for key, value in tree.items():
            key = str(key)
            if key.startswith(PARAMS_KEY):  # rcl compares the prefix
                if not path:
                    raise ValueError(f"{where}: there is no node name before {PARAMS_KEY}")
                name = "/".join(path)
                name = name if name.startswith("/") else "/" + name
                _check_section_name(name, where)
                block = {} if value is None else value
                if not isinstance(block, Mapping):
                    raise ValueError(
                        f"{where}: {quote(name)} {PARAMS_KEY} must hold name: value pairs, got "
                        f"{type(block).__name__}"
                    )
                found.append((name, _flatten(block)))
            elif isinstance(value, Mapping):
                walk(value, [*path, key])
            else:
                raise ValueError(
                    f"{where}: {quote('/'.join([*path, key]))} holds a value where a node name "
                    f"or {PARAMS_KEY} is expected; write it as "
                    "'/**:\\n  ros__parameters:\\n    name: value'"
                )

    if isinstance(document, Mapping):
        walk(document, [])
    return found


def section_applies(section: str, fqn: str) -> bool:
    """Whether the section called ``section`` applies to the node ``fqn`` (see module)."""
    pattern = "".join(
        r"(/\w+)*" if token == "**" else r"(/\w+)" if token == "*" else "/" + re.escape(token)
        for token in section[1:].split("/")
    )
    return re.fullmatch(pattern, fqn, flags=re.ASCII) is not None


def read_params_file(path: str | Path, fqn: str = "/mlesam") -> ParamsReading:
    """Read the parameters a ROS 2 params file holds for the node ``fqn`` (see module)."""
    path = Path(path)
    where = f"params file {path}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(
            f"{where}:{line}: not valid YAML ({problem}); check the indentation and quoting "
            "there"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a text file") from None
    blocks = _sections(document, where)
    if not blocks:
        raise ValueError(
            f"{where}: no 'ros__parameters' section; write it as "
            "'/**:\\n  ros__parameters:\\n    topics.rgb: /camera/image_raw'"
        )
    merged: dict[str, dict[str, Any]] = {}  # name → parameters, in order of first appearance
    for name, parameters in blocks:
        merged.setdefault(name, {}).update(parameters)
    reading = ParamsReading(sections=list(merged))
    set_by: dict[str, str] = {}
    for name, parameters in merged.items():
        if not section_applies(name, fqn):
            continue
        reading.applied.append(name)
        for key, value in parameters.items():
            earlier = set_by.get(key)
            if earlier == fqn and name != fqn and reading.parameters[key] != value:
                reading.notes.append(
                    f"{where}: {quote(key)} of {fqn} is overridden by the later section "
                    f"{quote(name)} (the order in the file decides, as in rclcpp; the ROS 2 "
                    f"node, on rclpy, keeps the {fqn} value): move {fqn} below it to agree"
                )
            reading.parameters[key] = value
            set_by[key] = name
    return reading


__all__ = ["PARAMS_KEY", "ROS_PARAMETERS", "ParamsReading", "closest_parameter",
           "is_node_parameter", "is_ros_parameter", "node_fqn", "read_params_file",
           "report_unknown_parameters", "section_applies", "unknown_parameter_text"]  # fmt: skip
