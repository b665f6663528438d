"""alumni-orchestration: know an alumni association's members and act on it."""
