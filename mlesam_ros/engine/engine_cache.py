"""TensorRT engines: a per-user cache keyed by everything an engine depends on, and rebuilds.

A serialized engine runs only on the GPU model, TensorRT version and build options that made it,
from the ONNX it was built from; users hit "engine deserialization failed" (or, worse, run a
stale model) whenever a driver, a container, a GPU or the ONNX changes. So every engine is
stored under a key of all of these (TensorRT version, GPU name and compute capability,
precision, network typing, workspace, the ONNX file's sha256) in a per-user cache directory
(``engine_cache_dir``), never beside a possibly read-only model, and carries a JSON sidecar
``<engine>.json`` recording that key and the model spec. ``ensure_engine`` rebuilds whenever
any of it disagrees with this machine, or when deserialization fails. Every failure to build or
load is one ``EngineError`` (a ``ValueError``) naming the fix.

Precision follows what each TensorRT does (``plan_build``): TensorRT 11 builds only strongly
typed networks, which run at the graph's own types, so an fp16 engine is built from an fp16
graph (``fp16_graph.convert_to_fp16``, cached beside the engines); TensorRT 10 uses the fp16
builder flag on the fp32 graph by default, or the strongly typed path when asked.

TensorRT itself sits behind the small ``EngineBuilder`` seam so this logic is unit-tested
without a GPU; ``tensorrt_build.TensorRTBuilder`` is the real one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from mlesam_ros.engine.spec import ModelSpec

LOG = logging.getLogger(__name__)
SIDECAR_FORMAT = 2
PRECISIONS = ("fp32", "fp16")
# Network typing: "auto" = strong on TensorRT 11 (its only mode), the fp16 flag on TensorRT 10.
TYPINGS = ("auto", "strong", "weak")
# The TensorRT releases this package is written and tested against (setup.py's `trt` extra).
OLDEST_TENSORRT = (10, 3)
NEWEST_TENSORRT_MAJOR = 11
SUPPORTED_TENSORRT = f">={OLDEST_TENSORRT[0]}.{OLDEST_TENSORRT[1]},<{NEWEST_TENSORRT_MAJOR + 1}"
CACHE_ENV = "MLESAM_ENGINE_CACHE"


class EngineError(ValueError):
    """A TensorRT engine could not be built or loaded; the message says what to do."""


@dataclass(frozen=True)
class EngineTarget:
    """What a serialized engine is specific to: the TensorRT version and the GPU model."""

    tensorrt_version: str
    compute_capability: tuple[int, int]
    gpu_name: str = ""

    @property
    def sm(self) -> str:
        """Compute capability as CUDA spells architectures, e.g. ``sm90`` for 9.0."""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"

    @property
    def release(self) -> tuple[int, int]:
        """(major, minor) of the TensorRT version."""
        parts = [int(p) if p.isdigit() else 0 for p in self.tensorrt_version.split(".")[:2]]
        return (parts[0], parts[1] if len(parts) > 1 else 0)


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of one engine build (all part of the cache key except the timing cache file)."""

    precision: str = "fp16"
    workspace_mb: int = 4096
    timing_cache: Path | None = None
    typing: str = "auto"
    max_batch: int = 1
    """A dynamic-batch ONNX only: the optimisation profile's largest batch (1..max_batch)."""

    def __post_init__(self) -> None:
        """Reject unknown values before a multi-minute build starts."""
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision: {self.precision!r} is not a TensorRT engine precision; use "
                f"{' or '.join(PRECISIONS)} (int8 needs calibration, which is not offered)"
            )
        if self.workspace_mb <= 0:
            raise ValueError(f"workspace_mb: must be > 0, got {self.workspace_mb}")
        if self.typing not in TYPINGS:
            raise ValueError(f"typing: {self.typing!r} is not one of {', '.join(TYPINGS)}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {self.max_batch}")


@dataclass(frozen=True)
class BuildPlan:
    """How one engine is built on one TensorRT: which graph, network typing and flags."""

    graph_precision: str  # the float type of the ONNX graph TensorRT parses
    strongly_typed: bool  # a strongly typed network (TensorRT 11 always)
    fp16_flag: bool  # BuilderFlag.FP16 (weakly typed TensorRT 10 only)
    tf32: bool  # allow TF32 for fp32 layers (off for fp32 engines, so they match fp32)

    @property
    def typing(self) -> str:
        """``strong`` or ``weak``."""
        return "strong" if self.strongly_typed else "weak"


def check_tensorrt_version(version: str) -> tuple[int, int]:
    """(major, minor) of a supported TensorRT; an ``EngineError`` naming the range otherwise."""
    release = EngineTarget(version, (0, 0)).release
    if release < OLDEST_TENSORRT or release[0] > NEWEST_TENSORRT_MAJOR:
        raise EngineError(
            f"tensorrt: version {version} is not supported (supported: {SUPPORTED_TENSORRT}); "
            f"install one with `pip install 'tensorrt{SUPPORTED_TENSORRT}'`, or use backend "
            "onnxruntime"
        )
    return release


def plan_build(target: EngineTarget, options: BuildOptions, graph_precision: str) -> BuildPlan:
    """Decide how to build ``options.precision`` from a graph of ``graph_precision`` here."""
    major, _ = check_tensorrt_version(target.tensorrt_version)
    typing = options.typing
    if typing == "auto":
        typing = "strong" if major >= 11 else "weak"
    if typing == "weak" and major >= 11:
        raise EngineError(
            f"typing: TensorRT {target.tensorrt_version} builds strongly typed networks only "
            "(its fp16 builder flag is gone); use typing strong or auto"
        )
    if graph_precision == "fp16" and options.precision == "fp32":
        raise EngineError(
            "precision: the ONNX is an fp16 graph, so its engine is fp16; for an fp32 engine "
            "export without --precision fp16"
        )
    if typing == "strong":
        return BuildPlan(options.precision, True, False, options.precision != "fp32")
    return BuildPlan(graph_precision, False, options.precision == "fp16",
                     options.precision != "fp32")  # fmt: skip


class EngineBuilder(Protocol):
    """The TensorRT calls the cache needs; faked in tests."""

    def target(self) -> EngineTarget:
        """TensorRT version and GPU of this machine."""
        ...

    def build(self, onnx_path: Path, plan: BuildPlan, options: BuildOptions) -> bytes:
        """Parse the ONNX and return a serialized engine (raises on failure)."""
        ...

    def deserialize(self, data: bytes) -> Any:
        """Turn serialized bytes into an engine object (raises on failure)."""
        ...


@dataclass(frozen=True)
class LoadedEngine:
    """An engine ready to run, where it lives, and whether it was (re)built just now."""

    engine: Any
    path: Path
    spec: ModelSpec
    rebuilt: bool
    reasons: tuple[str, ...]


def engine_cache_dir() -> Path:
    """Return the folder engines are cached in (per user; created on the first build).

    ``$MLESAM_ENGINE_CACHE``, else ``$ROS_HOME/mlesam_ros/engines``, else ``$XDG_CACHE_HOME``
    (default ``~/.cache``) ``/mlesam_ros/engines``.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("ROS_HOME"):
        return Path(os.environ["ROS_HOME"]).expanduser() / "mlesam_ros" / "engines"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "mlesam_ros" / "engines"


def engine_key(
    target: EngineTarget, options: BuildOptions, plan: BuildPlan, onnx_sha256: str
) -> dict[str, Any]:
    """Everything a built engine depends on (the sidecar records it; the file name hashes it)."""
    return {
        "tensorrt_version": target.tensorrt_version,
        "gpu_name": target.gpu_name,
        "compute_capability": list(target.compute_capability),
        "precision": options.precision,
        "typing": plan.typing,
        "workspace_mb": options.workspace_mb,
        "onnx_sha256": onnx_sha256,
        # Only dynamic-batch graphs have a profile (static ones keep the keys they had).
        **({"max_batch": options.max_batch} if options.max_batch != 1 else {}),
    }


def key_digest(key: dict[str, Any]) -> str:
    """Short stable hash of a key, for file names."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def default_engine_path(
    onnx_path: str | Path, target: EngineTarget, key: dict[str, Any],
    cache_dir: str | Path | None = None,
) -> Path:  # fmt: skip
    """``<cache>/<onnx stem>.sm90.trt10.16.1.fp16.<key digest>.engine``."""
    folder = Path(cache_dir) if cache_dir is not None else engine_cache_dir()
    name = (f"{Path(onnx_path).stem}.{target.sm}.trt{target.tensorrt_version}."
            f"{key['precision']}.{key_digest(key)}.engine")  # fmt: skip
    return folder / name


def sidecar_path(engine_path: str | Path) -> Path:
    """Where the JSON record of an engine lives: ``<engine>.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, read in chunks (ONNX files reach hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """Return the sidecar's content, or None when it is missing or unreadable."""
    path = sidecar_path(engine_path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_engine(
    engine_path: Path, data: bytes, onnx_path: Path, key: dict[str, Any], plan: BuildPlan,
    spec: ModelSpec,
) -> None:  # fmt: skip
    """Write engine then sidecar, each atomically, so a killed build never looks fresh."""
    record = {
        "format": SIDECAR_FORMAT,
        "key": key,
        "onnx_path": str(onnx_path.resolve()),
        "plan": asdict(plan),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": spec.to_dict(),
    }
    try:
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        sidecar_path(engine_path).unlink(missing_ok=True)
        _atomic_write(engine_path, data)
        _atomic_write(sidecar_path(engine_path), json.dumps(record, indent=2).encode())
    except OSError as error:
        raise EngineError(
            f"engine: cannot write {engine_path} ({type(error).__name__}: {error.strerror}); "
            f"set {CACHE_ENV} to a writable folder or pass a writable --out path"
        ) from error


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_REASONS = {
    "tensorrt_version": "built with TensorRT {built}, this machine has {here}",
    "gpu_name": "built for GPU {built!r}, this GPU is {here!r}",
    "compute_capability": "built for compute capability {built}, this GPU is {here}",
    "precision": "built as {built}, {here} requested",
    "typing": "built {built}ly typed, {here}ly typed requested",
    "workspace_mb": "built with a {built} MB workspace, {here} MB requested",
}


def stale_reasons(
    engine_path: str | Path, expected: dict[str, Any], onnx_path: str | Path | None = None
) -> list[str]:
    """Why the engine at ``engine_path`` cannot be used here; an empty list means fresh.

    ``expected`` is the key this machine and these options give (``engine_key``); fields it
    lacks are not compared (an engine given alone is checked against the machine only).
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return [f"engine {engine_path} does not exist"]
    record = read_sidecar(engine_path)
    if record is None or record.get("format") != SIDECAR_FORMAT or "key" not in record:
        return [f"sidecar {sidecar_path(engine_path)} is missing, unreadable or of an older "
                "format"]  # fmt: skip
    built = record["key"]
    reasons = []
    for field, template in _REASONS.items():
        if field in expected and built.get(field) != expected[field]:
            show = (lambda v: ".".join(str(x) for x in v)) if field == "compute_capability" \
                else (lambda v: v)  # fmt: skip
            reasons.append(template.format(built=show(built.get(field)),
                                           here=show(expected[field])))  # fmt: skip
    if "onnx_sha256" in expected and built.get("onnx_sha256") != expected["onnx_sha256"]:
        reasons.append(f"{onnx_path or 'the ONNX'} changed since the engine was built")
    return reasons


def fp16_graph_path(onnx_path: Path, onnx_sha256: str, cache_dir: Path | None = None) -> Path:
    """Where the fp16 graph derived from an fp32 ONNX is cached (keyed by its content)."""
    folder = cache_dir if cache_dir is not None else engine_cache_dir()
    return folder / f"{onnx_path.stem}.{onnx_sha256[:16]}.fp16.onnx"


def _graph_to_parse(
    onnx_path: Path, spec: ModelSpec, plan: BuildPlan, onnx_sha256: str, cache_dir: Path | None
) -> Path:
    """Return the ONNX itself, or its fp16 conversion (written once) for a strong fp16 build."""
    if plan.graph_precision == spec.precision:
        return onnx_path
    import onnx

    from mlesam_ros.engine.fp16_graph import convert_to_fp16

    path = fp16_graph_path(onnx_path, onnx_sha256, cache_dir)
    if not path.is_file():
        LOG.info("converting %s to an fp16 graph for a strongly typed build: %s", onnx_path, path)
        converted = convert_to_fp16(onnx.load(str(onnx_path)))
        props = {p.key: p.value for p in converted.metadata_props}
        del converted.metadata_props[:]
        fp16_spec = ModelSpec.from_dict({**spec.to_dict(), "precision": "fp16"})
        for key, value in {**props, **fp16_spec.to_metadata_props()}.items():
            converted.metadata_props.add(key=key, value=value)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, converted.SerializeToString())
        except OSError as error:
            raise EngineError(
                f"engine: cannot write the fp16 graph {path} ({error.strerror}); set "
                f"{CACHE_ENV} to a writable folder"
            ) from error
    return path


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path | None,
    builder: EngineBuilder,
    options: BuildOptions,
    cache_dir: str | Path | None = None,
) -> Path:
    """Build an engine from ONNX now (no freshness check) and write it with its sidecar."""
    from mlesam_ros.engine.onnx_export import read_spec

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"{onnx_path} does not exist; create it with `mlesam export --out {onnx_path}`"
        )
    cache = Path(cache_dir) if cache_dir is not None else None
    spec = read_spec(onnx_path)
    target = builder.target()
    plan = plan_build(target, options, spec.precision)
    onnx_sha256 = file_sha256(onnx_path)
    key = engine_key(target, options, plan, onnx_sha256)
    engine_path = Path(engine_path or default_engine_path(onnx_path, target, key, cache))
    graph = _graph_to_parse(onnx_path, spec, plan, onnx_sha256, cache)
    LOG.info("building a TensorRT %s %s engine (%sly typed) for %s (%s) from %s; this takes "
             "minutes", target.tensorrt_version, options.precision, plan.typing, target.sm,
             target.gpu_name, graph)  # fmt: skip
    started = time.monotonic()
    try:
        data = builder.build(graph, plan, options)
    except (EngineError, FileNotFoundError):
        raise
    except Exception as error:  # TensorRT raises RuntimeError/TypeError variants
        raise EngineError(
            f"engine: TensorRT could not build {graph} ({' '.join(str(error).split())}); see "
            "the TensorRT log above, re-export the model with `mlesam export`, or use backend "
            "onnxruntime"
        ) from error
    write_engine(engine_path, data, onnx_path, key, plan, spec)
    LOG.info("wrote %s (%.1f MB) in %.0f s", engine_path, len(data) / 1e6,
             time.monotonic() - started)
    return engine_path


def ensure_engine(
    builder: EngineBuilder,
    onnx_path: str | Path | None = None,
    engine_path: str | Path | None = None,
    options: BuildOptions | None = None,
    rebuild: bool = True,
    cache_dir: str | Path | None = None,
) -> LoadedEngine:
    """Load a fresh engine, rebuilding from ONNX when missing, stale or undeserializable.

    Give ``onnx_path`` (the engine goes to the cache under its key unless ``engine_path`` is
    given) or only ``engine_path`` (the ONNX and the build options are then taken from the
    sidecar; the engine is checked against this machine). ``rebuild=False`` turns every reason
    to rebuild into an error instead.
    """
    from mlesam_ros.engine.onnx_export import read_spec

    if onnx_path is None and engine_path is None:
        raise ValueError("ensure_engine: give onnx_path, engine_path or both")
    target = builder.target()
    # Without a readable ONNX only the machine can be compared.
    expected: dict[str, Any] = {"tensorrt_version": target.tensorrt_version,
                                "gpu_name": target.gpu_name,
                                "compute_capability": list(target.compute_capability)}
    if onnx_path is None:
        record = read_sidecar(engine_path) or {}  # type: ignore[arg-type]
        onnx_path = record.get("onnx_path")
        built = record.get("key", {})
        if built.get("precision") in PRECISIONS:  # rebuild it as it was built
            options = BuildOptions(built["precision"], int(built.get("workspace_mb", 4096)),
                                   options.timing_cache if options else None,
                                   built.get("typing", "auto"),
                                   int(built.get("max_batch", 1)))  # fmt: skip
    options = options or BuildOptions()
    onnx_path = Path(onnx_path) if onnx_path else None
    if onnx_path is not None and onnx_path.is_file():
        spec = read_spec(onnx_path)
        if not spec.dynamic_batch and options.max_batch != 1:
            options = dataclasses.replace(options, max_batch=1)  # a static graph: no profile
        plan = plan_build(target, options, spec.precision)
        expected = engine_key(target, options, plan, file_sha256(onnx_path))
        if engine_path is None:
            engine_path = default_engine_path(onnx_path, target, expected, cache_dir)
    elif engine_path is None:
        raise FileNotFoundError(
            f"{onnx_path} does not exist; create it with `mlesam export --out {onnx_path}`"
        )
    engine_path = Path(engine_path)

    reasons = stale_reasons(engine_path, expected, onnx_path)
    if not reasons:
        try:
            engine = builder.deserialize(engine_path.read_bytes())
            return LoadedEngine(engine, engine_path, _sidecar_spec(engine_path), False, ())
        except Exception as error:  # TensorRT raises plain RuntimeError/TypeError variants
            reasons = [f"deserialization failed: {' '.join(str(error).split())}"]

    _require_rebuild(engine_path, onnx_path, reasons, rebuild)
    LOG.warning("rebuilding %s: %s", engine_path, "; ".join(reasons))
    build_engine(onnx_path, engine_path, builder, options, cache_dir)  # type: ignore[arg-type]
    try:
        engine = builder.deserialize(engine_path.read_bytes())
    except Exception as error:
        raise EngineError(
            f"engine: TensorRT cannot load the engine it just built ({error}); check that the "
            "GPU driver supports this TensorRT, or use backend onnxruntime"
        ) from error
    return LoadedEngine(engine, engine_path, _sidecar_spec(engine_path), True, tuple(reasons))


def _require_rebuild(
    engine_path: Path, onnx_path: Path | None, reasons: list[str], rebuild: bool
) -> None:
    why = "; ".join(reasons)
    if onnx_path is None or not onnx_path.is_file():
        raise FileNotFoundError(
            f"engine {engine_path} is unusable ({why}) and its ONNX "
            f"{onnx_path or '(unknown)'} is missing; run `mlesam export --out model.onnx` then "
            f"`mlesam build-engine --onnx model.onnx --out {engine_path}`"
        )
    if not rebuild:
        raise EngineError(
            f"engine {engine_path} is unusable ({why}); rebuild it with "
            f"`mlesam build-engine --onnx {onnx_path} --out {engine_path}`"
        )


def _sidecar_spec(engine_path: Path) -> ModelSpec:
    record = read_sidecar(engine_path)
    if record is None or "model" not in record:
        raise EngineError(f"{sidecar_path(engine_path)}: no model record; rebuild the engine")
    return ModelSpec.from_dict(record["model"])


def target_dict(target: EngineTarget) -> dict[str, Any]:
    """JSON-able view of a target (for logs and the bench report)."""
    return asdict(target)
