"""The GPUs the estimator knows, as data: memory, dense throughput, bandwidth, bf16.

Figures are the vendors' dense (no sparsity) tensor throughput at the precision the notebooks
train in (bf16 where the GPU has it natively, else fp16), as collected in docs/sources.md "Cost and
hardware facts"; plain fp32 throughput (for fp32 training, TF32 off as PyTorch defaults) is from
the vendors' datasheets and was not measured here.

`usable_gib` is what one training process can fill: the total the card reports to CUDA
(`torch.cuda.get_device_properties(0).total_memory`, the "total capacity" of PyTorch's
out-of-memory message), its CUDA context included. The driver's own reservation is already left
out of that total, although NVML (and so helpers.memory's device-used) counts it as used; the
estimator therefore compares this figure with what the process needs, `Estimate.needed_gib`.
Two figures were read on real cards: the H200's here, and the T4's from what Colab and other
Google Cloud T4s report (the lowest seen, 14.56 GiB; docs/sources.md has the sources). The others
are the size as sold (GB) expressed in GiB, which for most is a little below what the card reports
(not checked for the L4: nvidia-smi shows 23,034 MiB, and what PyTorch reports is lower by the
driver's reservation, so its 22.35 GiB here may be a little high).

The estimator turns throughput into time with an efficiency measured on the H200
(helpers/estimate.py, bench/calibrate.py); other GPUs are assumed to reach the same fraction of
their peak, which is an assumption, not a measurement.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import FriendlyError

GB_IN_GIB = 1e9 / 2**30


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # as sold
    usable_gib: float  # what one training process can fill: the total the card reports to CUDA (module docstring)
    tflops: float  # dense tensor TFLOP/s at bf16 (fp16 where bf16 is not native)
    fp32_tflops: float  # plain fp32 (no TF32: PyTorch's default for matrix products), vendor datasheet
    bandwidth_gbs: float  # memory bandwidth, GB/s
    bf16: bool  # native bf16 (compute capability >= 8.0)
    capability: str
    source: str = "docs/sources.md, Cost and hardware facts"


GPUS = {
    # 14.56 GiB: the lowest total Colab / Google Cloud T4s report to PyTorch (14.56-14.75 seen)
    "T4": GPU("T4", 16, 14.56, 65, 8.1, 320, False, "7.5",
              "docs/sources.md (16 GB as sold, 15,360 MiB in nvidia-smi; usable 14.56 GiB, the "
              "lowest total capacity Colab and Google Cloud T4s report to PyTorch, e.g. "
              "github.com/facebookresearch/tribev2/issues/28 and github.com/Zheng-Chong/CatVTON/issues/133; "
              "65 TFLOP/s fp16, 320 GB/s)"),
    "L4": GPU("L4", 24, 24 * GB_IN_GIB, 121, 30.3, 300, True, "8.9"),
    "V100": GPU("V100", 16, 16 * GB_IN_GIB, 125, 15.7, 900, False, "7.0"),
    "V100-32GB": GPU("V100-32GB", 32, 32 * GB_IN_GIB, 125, 15.7, 900, False, "7.0"),
    "A100-40GB": GPU("A100-40GB", 40, 40 * GB_IN_GIB, 312, 19.5, 1555, True, "8.0"),
    "A100-80GB": GPU("A100-80GB", 80, 80 * GB_IN_GIB, 312, 19.5, 2039, True, "8.0"),
    "H100": GPU("H100", 80, 80 * GB_IN_GIB, 989, 67, 3350, True, "9.0", "docs/sources.md (H100 SXM)"),
    # 139.8 GiB: total_memory as PyTorch read it here (results/*.bench.json, gpu.total_gib), which is
    # nvidia-smi's 143,771 MiB less the 0.604 GiB the driver reserves (CALIBRATION in helpers/estimate.py)
    "H200": GPU("H200", 141, 139.8, 989, 67, 4800, True, "9.0",
                "docs/sources.md; usable memory read by PyTorch here (139.8 GiB; nvidia-smi: 143,771 MiB "
                "including the driver's 0.6 GiB reservation)"),
}

# Other spellings people (and torch.cuda.get_device_name) use.
ALIASES = {
    "A100": "A100-40GB",
    "A100-40G": "A100-40GB",
    "A100-80G": "A100-80GB",
    "A100-SXM4-40GB": "A100-40GB",
    "A100-SXM4-80GB": "A100-80GB",
    "A100-PCIE-40GB": "A100-40GB",
    "A100-PCIE-80GB": "A100-80GB",
    "H100-SXM": "H100",
    "H100-80GB": "H100",
    "H100-80GB-HBM3": "H100",
    "V100-16GB": "V100",
    "V100-SXM2-16GB": "V100",
    "V100-SXM2-32GB": "V100-32GB",
}


def _normalise(name: str) -> str:
    text = name.strip().upper().replace("NVIDIA", "").replace("TESLA", "").strip()
    return text.replace(" ", "-").replace("_", "-")


def get(name: str | GPU) -> GPU:
    """The GPU called `name` ('T4', 'a100-80gb', 'NVIDIA H200', 'Tesla T4', ...)."""
    if isinstance(name, GPU):
        return name
    key = _normalise(str(name))
    key = ALIASES.get(key, key)
    if key in GPUS:
        return GPUS[key]
    raise FriendlyError(
        f"Unknown GPU {name!r}. Known GPUs: {', '.join(GPUS)} "
        f"(also accepted: {', '.join(sorted(ALIASES))})."
    )


def known() -> list[str]:
    return list(GPUS)


def at_least_as_fast(gpu: str | GPU, than: str | GPU) -> bool:
    """Whether `gpu` is at least as fast as `than` in every figure of the table (16-bit and fp32
    throughput, memory bandwidth): then a run on `than` cannot take less time than on `gpu`."""
    fast, slow = get(gpu), get(than)
    return (fast.tflops >= slow.tflops and fast.fp32_tflops >= slow.fp32_tflops
            and fast.bandwidth_gbs >= slow.bandwidth_gbs)


def current() -> GPU | None:
    """The GPU this process runs on, if the table knows it (None on a CPU or an unknown GPU)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return get(torch.cuda.get_device_name(0))
    except (ImportError, FriendlyError):
        return None
