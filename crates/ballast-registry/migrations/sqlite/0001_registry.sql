-- The registry's metadata. Versions are immutable once written (only their signature may be
-- added); aliases move, and every move is kept in alias_history so rollback can walk back.
CREATE TABLE models (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL,         -- unix milliseconds
    config_toml TEXT                      -- serving settings (batching, queues); NULL = defaults
);

CREATE TABLE versions (
    model       TEXT NOT NULL REFERENCES models(name),
    version     INTEGER NOT NULL,
    digest      TEXT NOT NULL,            -- sha256:<hex> of the manifest
    size_bytes  INTEGER NOT NULL,
    manifest    TEXT NOT NULL,            -- JSON: [{path, digest, size}]
    card        TEXT NOT NULL,            -- JSON model card
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    signature   TEXT,                     -- base64 ed25519 over the digest
    signer      TEXT,                     -- key id of the signer
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX versions_model_digest ON versions(model, digest);

CREATE TABLE aliases (
    model       TEXT NOT NULL REFERENCES models(name),
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);

CREATE TABLE alias_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    model       TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    reverted    INTEGER NOT NULL DEFAULT 0  -- 1 once a rollback stepped back over it
);
CREATE INDEX alias_history_lookup ON alias_history(model, alias, id);

CREATE TABLE policies (
    model       TEXT PRIMARY KEY NOT NULL REFERENCES models(name),
    policy      TEXT NOT NULL,            -- JSON TrafficPolicy
    updated_at  INTEGER NOT NULL
);

CREATE TABLE rollouts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    model       TEXT NOT NULL REFERENCES models(name),
    baseline    INTEGER NOT NULL,
    candidate   INTEGER NOT NULL,
    plan        TEXT NOT NULL,            -- JSON RolloutPlan
    state       TEXT NOT NULL,            -- running | promoted | rolled_back | cancelled
    step        INTEGER NOT NULL,
    step_started_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    reason      TEXT
);
CREATE INDEX rollouts_model ON rollouts(model, id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    model       TEXT,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    details     TEXT NOT NULL             -- JSON object: the figures behind the decision
);
CREATE INDEX events_model ON events(model, id);

-- Bumped by every change that can alter what is served; servers poll it.
CREATE TABLE generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    value       INTEGER NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);
