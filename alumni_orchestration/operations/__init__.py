"""Operations: what the nightly schedule runs after a downtime, and the failure alert's wording (pure)."""
