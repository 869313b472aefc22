-- A tenant's highest applied version as text, which a dotted version (Flyway's `1.2.3`)
-- needs; `current_version` keeps integer versions as before and is NULL for dotted ones.
ALTER TABLE tenant_state ADD COLUMN current_version_text TEXT;
