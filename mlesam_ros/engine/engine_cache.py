"""TensorRT engine files: default names, a JSON sidecar, stale detection and rebuilds.

A serialized engine only runs on the GPU architecture and TensorRT version that built it, and
users hit "engine deserialization failed" whenever a driver, a container or the ONNX changes.
So every engine gets a name that carries the compute capability and TensorRT version, and a
sidecar ``<engine>.json`` that records what it was built from (ONNX sha256, precision, model
spec). ``ensure_engine`` rebuilds whenever any of that disagrees with the running machine, or
when deserialization fails. TensorRT itself sits behind the small ``EngineBuilder`` seam so
this logic is unit-tested without a GPU; ``tensorrt_build.TensorRTBuilder`` is the real one.
"""

from __future__ import annotations

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
SIDECAR_FORMAT = 1
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class EngineTarget:
    """What a serialized engine is specific to: the TensorRT version and the GPU."""

    tensorrt_version: str
    compute_capability: tuple[int, int]
    gpu_name: str = ""

    @property
    def sm(self) -> str:
        """Compute capability as CUDA spells architectures, e.g. ``sm90`` for 9.0."""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of one engine build (recorded in the sidecar)."""

    precision: str = "fp16"
    workspace_mb: int = 4096
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        """Reject unknown precisions before a multi-minute build starts."""
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if self.workspace_mb <= 0:
            raise ValueError(f"workspace_mb: must be > 0, got {self.workspace_mb}")


class EngineBuilder(Protocol):
    """The TensorRT calls the cache needs; faked in tests."""

    def target(self) -> EngineTarget:
        """TensorRT version and GPU of this machine."""
        ...

    def build(self, onnx_path: Path, options: BuildOptions) -> bytes:
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


def default_engine_path(onnx_path: str | Path, target: EngineTarget, precision: str) -> Path:
    """``model.onnx`` → ``model.sm90.trt10.3.0.fp16.engine`` beside it."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(
        f"{onnx_path.stem}.{target.sm}.trt{target.tensorrt_version}.{precision}.engine"
    )


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
    engine_path: Path,
    data: bytes,
    onnx_path: Path,
    target: EngineTarget,
    options: BuildOptions,
    spec: ModelSpec,
) -> None:
    """Write engine then sidecar, each atomically, so a killed build never looks fresh."""
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": SIDECAR_FORMAT,
        "onnx_path": str(onnx_path.resolve()),
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt_version": target.tensorrt_version,
        "compute_capability": list(target.compute_capability),
        "gpu_name": target.gpu_name,
        "precision": options.precision,
        "workspace_mb": options.workspace_mb,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": spec.to_dict(),
    }
    sidecar_path(engine_path).unlink(missing_ok=True)
    _atomic_write(engine_path, data)
    _atomic_write(sidecar_path(engine_path), json.dumps(record, indent=2).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def stale_reasons(
    engine_path: str | Path,
    target: EngineTarget,
    onnx_path: str | Path | None = None,
    precision: str | None = None,
) -> list[str]:
    """Why the engine at ``engine_path`` cannot be used here; an empty list means fresh."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return [f"engine {engine_path} does not exist"]
    record = read_sidecar(engine_path)
    if record is None or record.get("format") != SIDECAR_FORMAT:
        return [f"sidecar {sidecar_path(engine_path)} is missing or unreadable"]
    reasons = []
    if record.get("tensorrt_version") != target.tensorrt_version:
        reasons.append(
            f"built with TensorRT {record.get('tensorrt_version')}, "
            f"this machine has {target.tensorrt_version}"
        )
    if tuple(record.get("compute_capability", ())) != target.compute_capability:
        built = ".".join(str(v) for v in record.get("compute_capability", ()))
        here = ".".join(str(v) for v in target.compute_capability)
        reasons.append(f"built for compute capability {built}, this GPU is {here}")
    if precision is not None and record.get("precision") != precision:
        reasons.append(f"built as {record.get('precision')}, {precision} requested")
    if (onnx_path is not None and Path(onnx_path).is_file()
            and record.get("onnx_sha256") != file_sha256(onnx_path)):
        reasons.append(f"{onnx_path} changed since the engine was built")
    return reasons


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path | None,
    builder: EngineBuilder,
    options: BuildOptions,
) -> Path:
    """Build an engine from ONNX now (no cache check) and write it with its sidecar."""
    from mlesam_ros.engine.onnx_export import read_spec

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"{onnx_path} does not exist; create it with `mlesam export --out {onnx_path}`"
        )
    spec = read_spec(onnx_path)
    target = builder.target()
    engine_path = Path(engine_path or default_engine_path(onnx_path, target, options.precision))
    LOG.info(
        "building TensorRT %s %s engine for %s (%s) from %s; this takes minutes",
        target.tensorrt_version, options.precision, target.sm, target.gpu_name, onnx_path,
    )
    started = time.monotonic()
    data = builder.build(onnx_path, options)
    write_engine(engine_path, data, onnx_path, target, options, spec)
    LOG.info("wrote %s (%.1f MB) in %.0f s", engine_path, len(data) / 1e6,
             time.monotonic() - started)
    return engine_path


def ensure_engine(
    builder: EngineBuilder,
    onnx_path: str | Path | None = None,
    engine_path: str | Path | None = None,
    options: BuildOptions | None = None,
    rebuild: bool = True,
) -> LoadedEngine:
    """Load a fresh engine, rebuilding from ONNX when missing, stale or undeserializable.

    Give ``onnx_path`` (the engine goes to its default name unless ``engine_path`` is given)
    or only ``engine_path`` (the ONNX is then taken from the sidecar, if it still exists).
    ``rebuild=False`` turns every reason to rebuild into an error instead.
    """
    options = options or BuildOptions()
    if onnx_path is None and engine_path is None:
        raise ValueError("ensure_engine: give onnx_path, engine_path or both")
    target = builder.target()
    if engine_path is None:
        engine_path = default_engine_path(onnx_path, target, options.precision)  # type: ignore[arg-type]
    engine_path = Path(engine_path)
    if onnx_path is None:
        record = read_sidecar(engine_path) or {}
        onnx_path = record.get("onnx_path")
        # Without an ONNX there is no way to rebuild; only compare against the sidecar.
        precision = None
    else:
        precision = options.precision
    onnx_path = Path(onnx_path) if onnx_path else None

    reasons = stale_reasons(engine_path, target, onnx_path, precision)
    if not reasons:
        try:
            engine = builder.deserialize(engine_path.read_bytes())
            return LoadedEngine(engine, engine_path, _sidecar_spec(engine_path), False, ())
        except Exception as error:  # TensorRT raises plain RuntimeError/TypeError variants
            reasons = [f"deserialization failed: {error}"]

    _require_rebuild(engine_path, onnx_path, reasons, rebuild)
    LOG.warning("rebuilding %s: %s", engine_path, "; ".join(reasons))
    build_engine(onnx_path, engine_path, builder, options)  # type: ignore[arg-type]
    engine = builder.deserialize(engine_path.read_bytes())
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
        raise ValueError(
            f"engine {engine_path} is unusable ({why}); rebuild it with "
            f"`mlesam build-engine --onnx {onnx_path} --out {engine_path}`"
        )


def _sidecar_spec(engine_path: Path) -> ModelSpec:
    record = read_sidecar(engine_path)
    if record is None or "model" not in record:
        raise ValueError(f"{sidecar_path(engine_path)}: no model record; rebuild the engine")
    return ModelSpec.from_dict(record["model"])


def target_dict(target: EngineTarget) -> dict[str, Any]:
    """JSON-able view of a target (for logs and the bench report)."""
    return asdict(target)
