"""Training: the engine (one loop for all schemes) and the schemes."""
