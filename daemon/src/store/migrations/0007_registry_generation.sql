-- Replicas share the tenant registry (issue 24, item 8): every registration and
-- deregistration bumps this one row in its own transaction, so each replica polls one row
-- every second and reads the registered tenants only when it moved.
CREATE TABLE registry_generation (
    id INTEGER PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO registry_generation (id, generation) VALUES (1, 0);
