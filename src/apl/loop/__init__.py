"""The active preference learning loop (paper Algorithm 1): the only place the stages meet."""
