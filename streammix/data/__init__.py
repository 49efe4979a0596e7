"""Sources of data: in-memory arrays, Dask collections, Parquet lakes and streams."""
