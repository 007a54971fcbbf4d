"""Figures (seaborn/matplotlib, Agg backend): each function takes tables and a path, writes one PNG."""

import matplotlib

matplotlib.use("Agg")
