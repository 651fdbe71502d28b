"""Pair providers. Each writes GeoTIFF pairs plus the same manifest into data/raw/."""
