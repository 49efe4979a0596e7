"""Where passes run: in this process or on a Dask cluster; cluster config files."""
