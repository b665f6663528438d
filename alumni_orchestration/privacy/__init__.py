"""Members' privacy rights: erasure, access export and retention, over the warehouse and the files (pure)."""
