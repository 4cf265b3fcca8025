"""Layer 6: thin Click commands. Parse options, call the engine, render with rich."""
