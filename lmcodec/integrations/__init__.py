"""lmcodec inside other tools: fsspec's "lmz" compression (fsspec_plugin) and Dask clusters (distributed)."""
