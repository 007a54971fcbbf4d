"""Thin stage entry points: compose + validate a config, call a plain compute function, write, track."""
