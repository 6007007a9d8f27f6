//! SQL shared by the PostgreSQL backends (filled in by the sqlx backend work).
