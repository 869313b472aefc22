-- Needs SQLite 3.35+ (ALTER TABLE ... DROP COLUMN).
ALTER TABLE users DROP COLUMN display_name;
