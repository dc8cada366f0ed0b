"""Build script for mlesam_ros: an ament_python ROS 2 package that also installs with pip.

colcon uses ``data_files`` to put the package marker, launch files, configs, rviz views and
model files under ``share/mlesam_ros``; pip users get the same Python package plus its
dependencies from ``install_requires`` and the extras below.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_NAME = "mlesam_ros"
HERE = Path(__file__).parent


def _version() -> str:
    """Single source of the version: ``mlesam_ros/_version.py`` (no import of the package)."""
    namespace: dict[str, str] = {}
    exec((HERE / PACKAGE_NAME / "_version.py").read_text(), namespace)
    return namespace["__version__"]


def _share(subdir: str, patterns: list[str]) -> tuple[str, list[str]]:
    files = sorted({path for pattern in patterns for path in glob(pattern, recursive=True)})
    return (f"share/{PACKAGE_NAME}/{subdir}", files)


# Torch is pinned exactly on purpose: torch and torchvision must come as a matched pair
# (segment-anything imports torchvision at package import), and an open range would let pip
# resolve to whatever multi-GB build is newest. Robots that ship their own torch (Jetson,
# ROS installs) use the ONNX Runtime / TensorRT backends, which do not need the extra.
TORCH_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "segment-anything==1.0",
    "onnxscript>=0.5,<0.8",  # needed by torch.onnx's dynamo exporter (mlesam export --exporter)
]

# SAM 2's Hiera encoder family (presets hiera_*). PyPI's sam2 1.1.0 is a source distribution
# whose build imports torch and by default compiles a CUDA extension (not needed here), so it is
# installed after torch, without build isolation (which would pull a second, multi-GB torch):
#   SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e '.[sam2]'
# `make venv` does this. Its runtime needs (hydra-core, iopath) do not constrain torch or numpy.
SAM2_REQUIRES = ["sam2==1.1.0"]

# The live node without ROS (`mlesam node --transport dds`). Pinned exactly: the wheel bundles
# its own libddsc, and mlesam_ros/dds/types.py relies on DataWriter.write/DataReader.take calling
# IdlStruct.serialize/deserialize, checked against this version by test/test_dds_*.py.
DDS_REQUIRES = ["cyclonedds==11.0.1"]

# The TensorRT backend: TensorRT 10.3 (JetPack 6's) to 11.x, the releases whose Python API
# mlesam_ros/engine/tensorrt_build.py is written and tested against (10 and 11 differ in how
# fp16 is asked for). Its GPU buffers and stream come from cuda-python, so it needs no torch.
# The `tensorrt` metapackage installs the CUDA 13 build (tensorrt_cu13) from 10.13 on, and
# cuda-python's major version must match that CUDA major and the driver: both resolve to 13.
# Machines with a CUDA 12 driver install `tensorrt-cu12>=10.3,<12` and `cuda-python>=12.6,<13`
# instead of this extra; Jetsons use JetPack's TensorRT and the cuda-python of its CUDA.
TRT_REQUIRES = ["tensorrt>=10.3,<12", "cuda-python>=12.6,<14"]

setup(
    name=PACKAGE_NAME,
    version=_version(),
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        _share("launch", ["launch/*.launch.py"]),
        _share("config", ["config/*.yaml", "config/*.rviz", "config/*.xml"]),
        _share("config/train", ["config/train/*.yaml"]),
        _share("models", ["models/*.onnx", "models/*.pt", "models/*.json"]),
    ],
    package_data={PACKAGE_NAME: ["py.typed", "engine/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26,<3",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        "rosbags>=0.11.9,<0.12",
        "rosbags-image>=0.10.4,<0.11",
        "opencv-python-headless>=4.10,<5",
        "pillow>=10.1",  # ImageFont.load_default(size=...) draws the demo's captions
        "onnx>=1.17,<1.24",
        "onnxruntime>=1.20,<1.33",
        # The node's compiled loops (geometry/compiled.py: LiDAR projection, packing, labelled
        # points; pipeline/fused.py: each sensor's encode + shrink); without numba the same
        # results come from numpy passes, several ms slower per frame.
        "numba>=0.59",
    ],
    extras_require={
        "torch": TORCH_REQUIRES,
        "sam2": [*TORCH_REQUIRES, *SAM2_REQUIRES],
        "train": [*TORCH_REQUIRES, "matplotlib>=3.8"],
        "trt": TRT_REQUIRES,
        # ONNX Runtime's CUDA provider. It ships the same `onnxruntime` module as the CPU wheel
        # in install_requires: see README "Installing" for replacing one with the other.
        "gpu": ["onnxruntime-gpu>=1.20,<1.33"],
        "dds": DDS_REQUIRES,
        "test": [
            *TORCH_REQUIRES,
            *SAM2_REQUIRES,
            *DDS_REQUIRES,
            "matplotlib>=3.8",
            "pytest>=8",
            "ruff==0.17.6",
            "mcap>=1.2",
            "mcap-ros2-support>=0.5",
            # LZF for binary_compressed PCD in the real-recording tests (pypcd4 would also
            # pull pydantic for a 20-line header parse).
            "python-lzf>=0.2.6",
        ],
    },
    zip_safe=True,
    maintainer="mlesam_ros maintainers",
    maintainer_email="maintainers@mlesam-ros.dev",
    description="MLE-SAM multi-modal semantic segmentation (SAM + LoRA experts) for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "mlesam = mlesam_ros.cli:main",
            "segment_node = mlesam_ros.node.segment_node:main",
        ],
    },
)
