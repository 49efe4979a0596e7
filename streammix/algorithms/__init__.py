"""EM and its relatives on the core: batch EM, SQUAREM, restarts, online EM, starts, SEs."""
