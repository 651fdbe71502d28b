"""Data pipeline: sourcing, screening, splitting and encoding Landsat/Sentinel-2 pairs."""
