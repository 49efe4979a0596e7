"""Parquet data lakes: the source, its files and its columns."""
