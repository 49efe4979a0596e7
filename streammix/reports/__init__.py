"""Reports of fitted models: summaries, text tables and figures."""
