"""EL2 models built on the machine: the shim (Python plays the hypervisor) and its stage 2."""
from .shim import Inject, Resume, Shim, Stop, VmExit
from .stage2map import Mapping, Stage2Map

__all__ = ["Shim", "VmExit", "Resume", "Inject", "Stop", "Stage2Map", "Mapping"]
