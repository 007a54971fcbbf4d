"""Structured configs (schemas) registered in Hydra's ConfigStore, and their range validation."""
