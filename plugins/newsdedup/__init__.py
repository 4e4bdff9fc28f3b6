"""newsdedup: duplicate-aware news ingestion into PostgreSQL."""
