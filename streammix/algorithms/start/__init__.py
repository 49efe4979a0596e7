"""Starting values: the pass-0 profile, the candidate starts, the spectral start."""
