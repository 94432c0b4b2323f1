"""Cost model: modelled cycles from the machine's instruction-class counters.

``model`` holds the formula, the profile loader and the linear-fit / crossover helpers; the
profiles are TOML files in ``profiles/``.
"""
from .model import (  # noqa: F401
    CLASSES, DEFAULT_PROFILE, Breakdown, CostLine, LinearFit, NotLinear, Profile, ProfileError,
    cost_line, crossover, crossover_for, cycles, fit_linear, list_profiles, load_profile,
    subtract,
)
