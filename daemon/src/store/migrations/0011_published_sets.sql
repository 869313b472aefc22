-- Migration sets published through the API (issue 30): each set stored once under its
-- digest (the digest Plan reports for the same files read from a directory), its files
-- with their SHA-256 (checked whenever they are read back), and tags naming a set, each
-- move kept in the tags' history. Portable between SQLite and PostgreSQL: TEXT and BIGINT
-- only, so a file's bytes are kept as lower-case hex.
CREATE TABLE published_sets (
    digest TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    dialect TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    file_count BIGINT NOT NULL,
    migrations BIGINT NOT NULL,
    published_by TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE TABLE published_set_files (
    set_digest TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (set_digest, path)
);

CREATE TABLE set_tags (
    name TEXT PRIMARY KEY,
    set_digest TEXT NOT NULL,
    moved_by TEXT NOT NULL,
    moved_at BIGINT NOT NULL
);
CREATE INDEX set_tags_by_digest ON set_tags (set_digest);

CREATE TABLE set_tag_moves (
    name TEXT NOT NULL,
    at BIGINT NOT NULL,
    from_digest TEXT,
    to_digest TEXT NOT NULL,
    moved_by TEXT NOT NULL
);
CREATE INDEX set_tag_moves_by_name ON set_tag_moves (name, at);
