"""ROS 2 message types as cyclonedds topic types, generated from rosbags' typestore.

Choice: **generated type, raw CDR bytes.** Each ROS type (``sensor_msgs/msg/Image``) becomes
an :class:`cyclonedds.idl.IdlStruct` built with the documented
:func:`cyclonedds.idl.make_idl_struct` from the field definitions the project typestore
already holds (rosbags parsed them from the ``.msg`` files; ``vision_msgs/LabelInfo`` is
registered from its ``.msg`` in :mod:`mlesam_ros.pipeline.messages`), named the way ROS 2
names DDS types (``sensor_msgs::msg::dds_::Image_``), final and unkeyed — what
rmw_cyclonedds_cpp announces, so matching by type name (Humble) and by XTypes type object
(cyclonedds peers) both work. Nothing is written out per type.

The sample bytes, however, are rosbags' CDR codec (``serialize_cdr``/``deserialize_cdr``),
the same bytes rosbag2 records and rmw puts on the wire. The generated class gets
:class:`RosCdrSample`'s ``serialize``/``deserialize`` — the two methods ``DataWriter.write``
and ``DataReader.take`` call — so a sample carries those bytes. Why: cyclonedds-python's own
machine serialises ``sequence<uint8>`` element by element (a 1080p image: ~250 ms out, ~75 ms
in, per the feasibility probe), while rosbags handles the block as one numpy buffer; the node
core already reads rosbags messages (replay), so no field-by-field conversion is needed
either. A test checks that cyclonedds' own serialiser and rosbags give identical bytes.

Pitfalls this module avoids (from the feasibility probe): keyed types never match ROS 2
endpoints (no keys here), appendable types are refused as incompatible (default final), a
Python ``bytes`` field breaks type-object construction (``sequence[uint8]`` is used), and a
writer's shutdown delivers an invalid sample (``deserialize_key`` yields ``None`` and readers
skip it, see :mod:`mlesam_ros.dds.endpoints`).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from mlesam_ros.pipeline.messages import decode, encode, ensure_vision_msgs
from mlesam_ros.text import quote

# rosbags base type names -> cyclonedds.idl.types names (ROS ``char`` is IDL uint8, ``byte``
# is octet, as in rosidl's .msg -> .idl mapping).
_BASE_TYPES = {
    "bool": "bool",
    "byte": "byte",
    "char": "uint8",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "float32": "float32",
    "float64": "float64",
}


GRAPH_LAYOUTS = ("humble", "jazzy")
"""Layouts of the ROS graph's own messages (``rmw_dds_common``): Humble's GIDs are 24 bytes,
Iron's and later 16. Every other message this package sends is the same in both."""


def graph_layout(ros_distro: str | None) -> str:
    """``humble`` for Humble and older distributions, ``jazzy`` for Iron and later.

    ``None`` or an empty name (no ROS shell) takes Jazzy's, the current long-term release.
    """
    distro = (ros_distro or "jazzy").strip().lower()
    return "humble" if distro in ("foxy", "galactic", "humble") else "jazzy"


GRAPH_PACKAGE = "rmw_dds_common/"


def typestore_for(layout: str = "humble") -> Any:
    """Return the project typestore (Humble definitions), or one with Jazzy's graph messages."""
    if layout == "humble":
        return ensure_vision_msgs()
    if layout not in GRAPH_LAYOUTS:
        raise ValueError(f"graph layout: choose from {', '.join(GRAPH_LAYOUTS)}, got {layout!r}")
    return _jazzy_graph_store()


def _as_uint8(node: Any) -> Any:
    """Return a field node with ``char`` made ``uint8``, recursively (arrays, sequences)."""
    kind, detail = node
    if int(kind) == 1 and detail[0] == "char":
        return (kind, ("uint8", detail[1]))
    if int(kind) in (3, 4):
        return (kind, (_as_uint8(detail[0]), detail[1]))
    return node


@cache
def _jazzy_graph_store() -> Any:
    """Jazzy's ``rmw_dds_common`` messages, with ``char`` as rosidl reads it.

    rosidl maps a ``.msg`` ``char`` to ``uint8`` (in the IDL, and in the type description
    its type hash is computed from); rosbags keeps ``char``, which gives the Gid message
    another hash than Jazzy's. Same bytes on the wire either way.
    """
    from rosbags.typesys import Stores, get_typestore

    jazzy, store = get_typestore(Stores.ROS2_JAZZY), get_typestore(Stores.EMPTY)
    store.register({
        name: (constants, [(field, _as_uint8(node)) for field, node in fields])
        for name, (constants, fields) in jazzy.fielddefs.items()
        if name.startswith(GRAPH_PACKAGE)
    })  # fmt: skip
    return store


def type_hash(msgtype: str, layout: str = "humble") -> str:
    """Return the ROS 2 type hash (REP 2011, ``RIHS01_<sha256>``) of ``msgtype``.

    Computed by rosbags from the message definitions the way rosidl does (the type
    description, hashed), so it equals what a Jazzy node announces for the same type (for
    the graph's own messages, from Jazzy's definitions: ``layout="jazzy"``).
    """
    try:
        return typestore_for(layout).hash_rihs01(msgtype)
    except KeyError:
        raise ValueError(f"type hash: unknown message type {msgtype!r}") from None


def type_hash_user_data(msgtype: str, layout: str = "humble") -> bytes:
    """Endpoint user data announcing the type hash, as rmw_dds_common encodes it.

    Empty for a type the typestore cannot describe: the endpoint then looks like a Humble
    one (no hash), which Jazzy peers still match.
    """
    try:
        return f"typehash={type_hash(msgtype, layout)};".encode()
    except ValueError:
        return b""


def dds_type_name(msgtype: str) -> str:
    """``sensor_msgs/msg/Image`` → ``sensor_msgs::msg::dds_::Image_`` (ROS 2's DDS name)."""
    package, kind, name = _split(msgtype)
    return f"{package}::{kind}::dds_::{name}_"


def dds_topic_name(topic: str) -> str:
    """ROS topic ``/mlesam/labels`` → DDS topic ``rt/mlesam/labels``."""
    if not topic.startswith("/"):
        raise ValueError(
            f"topic {quote(topic)}: the DDS transport needs absolute topic names (start with '/')"
        )
    return "rt" + topic


def _split(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type {quote(msgtype)}: expected 'package/msg/Name'")
    return parts[0], parts[1], parts[2]


class RosCdrSample:
    """What every generated topic type does: a sample is the CDR bytes of one ROS message.

    ``DataWriter.write(sample)`` calls ``sample.serialize()`` and ``DataReader.take()`` calls
    ``Type.deserialize(data)``; both go to rosbags' codec here (see the module docstring).
    """

    ros_type: ClassVar[str] = ""
    layout: ClassVar[str] = "humble"
    cdr: bytes

    @classmethod
    def from_message(cls, message: Any) -> RosCdrSample:
        """Serialise a rosbags message of this type with the core's codec."""
        if cls.layout != "humble":
            return cls.from_cdr(bytes(typestore_for(cls.layout).serialize_cdr(message,
                                                                              cls.ros_type)))
        return cls.from_cdr(encode(message, cls.ros_type))

    @classmethod
    def from_cdr(cls, data: bytes) -> RosCdrSample:
        """Wrap CDR bytes (with their 4-byte encapsulation header) without decoding them."""
        sample = cls.__new__(cls)
        sample.cdr = bytes(data)
        return sample

    def message(self) -> Any:
        """Decode into a rosbags message object with the core's codec."""
        if self.layout != "humble":
            return typestore_for(self.layout).deserialize_cdr(self.cdr, self.ros_type)
        return decode(self.cdr, self.ros_type)

    def serialize(self, buffer: Any = None, endianness: Any = None, use_version_2: Any = None):
        """Return the carried CDR bytes (XCDR1, as ROS 2 sends them)."""
        if use_version_2:
            raise ValueError("ROS 2 CDR is XCDR1; create the writer with XCDR1 representation")
        return self.cdr

    @classmethod
    def deserialize(cls, data: bytes, has_header: bool = True, use_version_2: Any = None):
        """Wrap the received bytes; decoding waits for :meth:`message`."""
        return cls.from_cdr(data)

    @classmethod
    def deserialize_key(cls, data: bytes, has_header: bool = True, use_version_2: Any = None):
        """Unkeyed types: an invalid sample (writer gone) has no key worth decoding."""
        return None

    def __repr__(self) -> str:
        return f"<{self.ros_type} sample, {len(self.cdr)} CDR bytes>"


_CARRIER_ATTRIBUTES = (
    "from_message",
    "from_cdr",
    "message",
    "serialize",
    "deserialize",
    "deserialize_key",
    "__repr__",
)


@cache
def idl_struct(msgtype: str, carrier: bool = True, layout: str = "humble") -> type:
    """Return the cyclonedds type for ``msgtype`` generated from the typestore definition.

    ``carrier=True`` (topics) gives the :class:`RosCdrSample` flavour; ``carrier=False`` the
    plain IdlStruct whose cyclonedds serialiser is used to cross-check the bytes in tests.
    Nested types are always plain (they only shape the type object). ``layout`` picks the
    definitions (:func:`graph_layout`); peers match only a type object of the same layout.
    """
    from cyclonedds.idl import make_idl_struct
    from cyclonedds.idl import types as t

    store = typestore_for(layout)
    if msgtype not in store.fielddefs:
        raise ValueError(
            f"message type {quote(msgtype)} is not in the typestore; register its .msg first"
        )

    def field_type(node: tuple[Any, Any]) -> Any:
        kind, detail = node
        kind = int(kind)
        if kind == 1:  # BASE: (name, string bound)
            name, bound = detail
            if name == "string":
                return t.bounded_str[bound] if bound else str
            if name not in _BASE_TYPES:
                raise ValueError(f"{msgtype}: base type {name!r} has no DDS mapping")
            return bool if name == "bool" else getattr(t, _BASE_TYPES[name])
        if kind == 2:  # NAME: nested message
            return idl_struct(detail, carrier=False, layout=layout)
        if kind == 3:  # ARRAY: (element, length)
            element, length = detail
            return t.array[field_type(element), length]
        if kind == 4:  # SEQUENCE: (element, bound)
            element, bound = detail
            return t.sequence[field_type(element), bound] if bound else t.sequence[
                field_type(element)
            ]
        raise ValueError(f"{msgtype}: unsupported field node {node!r}")

    _constants, fields = store.fielddefs[msgtype]
    annotations = {name: field_type(node) for name, node in fields}
    class_name = _split(msgtype)[2] + ("Cdr" if carrier else "")
    cls = make_idl_struct(
        class_name, dds_type_name(msgtype), annotations, dataclassify=not carrier
    )
    if carrier:
        # Copied onto the class rather than inherited: cyclonedds reads a struct's first base
        # as an IDL base struct, which would change the type object ROS 2 peers see.
        for name in _CARRIER_ATTRIBUTES:
            setattr(cls, name, RosCdrSample.__dict__[name])
        cls.ros_type, cls.layout = msgtype, layout
    return cls


__all__ = [
    "GRAPH_LAYOUTS",
    "RosCdrSample",
    "dds_topic_name",
    "dds_type_name",
    "graph_layout",
    "idl_struct",
    "typestore_for",
]
