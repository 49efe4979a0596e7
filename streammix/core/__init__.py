"""The numpy core: parameter sets, E-step statistics, the M-step and input checks."""
