"""satsr: Landsat (30 m) to Sentinel-2-like (10 m) super-resolution at native x3."""

__version__ = "0.1.0"
