"""Configs (read by mmengine.Config, not imported)."""
