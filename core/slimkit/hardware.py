"""What this machine offers: CPU model, cores, ISA flags, memory, and CUDA devices.

Reading /proc is cheap; torch is imported only when asked for CUDA, and only if installed.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# Flags the planner and reports talk about; /proc/cpuinfo spells AMX as amx_tile/amx_int8/amx_bf16.
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "neon", "sve")


class CudaDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    capability: tuple[int, int]
    memory_bytes: int


class Hardware(BaseModel):
    """A snapshot of the machine, recorded in every run's results."""

    model_config = ConfigDict(extra="forbid")

    cpu_model: str = Field(description="CPU model name.")
    arch: str = Field(description="platform.machine(), e.g. 'x86_64'.")
    logical_cores: int
    physical_cores: int
    cpu_flags: list[str] = Field(description="The ISA flags of interest that this CPU has.")
    memory_bytes: int | None
    cuda: list[CudaDevice] = Field(default_factory=list)
    cuda_checked: bool = Field(default=False, description="Whether torch was available to look for CUDA.")

    def has(self, feature: str) -> bool:
        feature = feature.lower()
        if feature == "amx":
            return any(f.startswith("amx") for f in self.cpu_flags)
        return feature in self.cpu_flags

    def devices(self) -> list[str]:
        return ["cpu", *(["cuda"] if self.cuda else [])]

    def best_cuda_capability(self) -> tuple[int, int] | None:
        return max((d.capability for d in self.cuda), default=None)


def _cpuinfo() -> tuple[str, set[str], int | None]:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    physical: int | None = None
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return model, flags, physical
    cores: set[tuple[str, str]] = set()
    phys_id = "0"
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "physical id":
            phys_id = value
        elif key == "core id":
            cores.add((phys_id, value))
    return model, flags, (len(cores) or None)


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _nvidia_driver_present() -> bool:
    """Cheap test before importing torch (seconds) just to learn there is no GPU."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def _cuda_devices() -> tuple[list[CudaDevice], bool]:
    if importlib.util.find_spec("torch") is None:
        return [], False
    if not _nvidia_driver_present():
        return [], True
    import torch

    if not torch.cuda.is_available():
        return [], True
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append(
            CudaDevice(index=i, name=props.name, capability=(props.major, props.minor), memory_bytes=props.total_memory)
        )
    return devices, True


@lru_cache(maxsize=2)
def probe(*, cuda: bool = True) -> Hardware:
    """Describe this machine. ``cuda=False`` skips importing torch (fast paths such as planning)."""
    model, flags, physical = _cpuinfo()
    logical = os.cpu_count() or 1
    devices, checked = _cuda_devices() if cuda else ([], False)
    return Hardware(
        cpu_model=model,
        arch=platform.machine(),
        logical_cores=logical,
        physical_cores=physical or logical,
        cpu_flags=sorted(f for f in INTERESTING_FLAGS if f in flags),
        memory_bytes=_memory_bytes(),
        cuda=devices,
        cuda_checked=checked,
    )
