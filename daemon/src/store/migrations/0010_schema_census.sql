-- Fleet schema census (docs/census.md).
--
-- The expected schema of each version of a fleet's set: the fingerprint (hex SHA-256 of the
-- canonical model) and the model (canonical JSON) of the first tenant whose apply or
-- rollback to that version succeeded (`census_on_apply`). `version` is the version's text,
-- '' for none.
CREATE TABLE schema_expected (
    fleet       TEXT NOT NULL,
    set_digest  TEXT NOT NULL,
    version     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    model       TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (fleet, set_digest, version)
);

-- The last census of each tenant: its version and fingerprint then, whether it was in a
-- drift class, the digest of the history it was read with, and when.
CREATE TABLE schema_census (
    fleet       TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    version     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    drifted     BIGINT NOT NULL,
    history     TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (fleet, tenant)
);
