"""Settings: shipped YAML (venues, instruments, limits) < user file < `ARB_*` env vars, strict and frozen."""

from arb.config.loader import ConfigError, load_settings
from arb.config.schema import InstrumentConfig, Settings, VenueConfig

__all__ = ["ConfigError", "InstrumentConfig", "Settings", "VenueConfig", "load_settings"]
