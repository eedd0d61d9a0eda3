/**
 * The PostgreSQL schema, as hand-written migrations applied in list order, each recorded by
 * name in `schema_migrations` (as on SQLite, so features developed side by side each add their
 * own). Replicas starting together must not race: the whole run holds a session advisory lock,
 * so one replica migrates and the others wait, then find nothing left to do. Never edit a
 * migration that has shipped: add one at the end.
 *
 * Text that is listed in order (names, tags, digests) is `COLLATE "C"`: the distribution spec's
 * lexical (byte) order whatever the database's locale. Instants are BIGINT ms since the epoch.
 */
import { LOCKS, type Pool } from './pool.js';

export interface Migration {
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    name: 'core',
    sql: `
  CREATE TABLE repositories (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
  );

  -- deleting_since: set when garbage collection (or fsck) decided to delete the blob (docs/lifecycle.md).
  CREATE TABLE blobs (
    digest         TEXT COLLATE "C" PRIMARY KEY,
    size           BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    deleting_since BIGINT
  );
  CREATE INDEX blobs_marked ON blobs(digest) WHERE deleting_since IS NOT NULL;

  CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    linked_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

  CREATE TABLE manifests (
    digest        TEXT COLLATE "C" PRIMARY KEY,
    media_type    TEXT NOT NULL,
    size          BIGINT NOT NULL,
    content       BYTEA NOT NULL,
    subject       TEXT COLLATE "C",
    artifact_type TEXT,
    annotations   TEXT,
    created_at    BIGINT NOT NULL
  );
  CREATE INDEX manifests_by_subject ON manifests(subject) WHERE subject IS NOT NULL;

  CREATE TABLE manifest_references (
    manifest_digest TEXT COLLATE "C" NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    target_digest   TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest_digest, target_digest)
  );
  CREATE INDEX manifest_references_by_target ON manifest_references(target_digest);

  CREATE TABLE repository_manifests (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT COLLATE "C" NOT NULL REFERENCES manifests(digest),
    pushed_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX repository_manifests_by_digest ON repository_manifests(digest);

  CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    digest        TEXT COLLATE "C" NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name)
  );
  CREATE INDEX tags_by_digest ON tags(repository_id, digest);
  CREATE INDEX tags_by_update ON tags(repository_id, updated_at, name);

  -- Upload sessions: everything needed to continue one in any replica, and the writer lease
  -- (compare-and-set on writer / writer_expires_at, on the database clock).
  CREATE TABLE uploads (
    id                TEXT PRIMARY KEY,
    repository        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    size              BIGINT NOT NULL DEFAULT 0,
    hash_state        TEXT,
    driver_state      TEXT,
    writer            TEXT,
    writer_expires_at BIGINT NOT NULL DEFAULT 0
  );
  CREATE INDEX uploads_by_update ON uploads(updated_at);

  -- The transactional outbox. seq is drawn while holding the outbox advisory lock, which the
  -- writing transaction keeps until it commits: events become visible in seq order, so a reader
  -- that saw seq n has seen every event below it.
  CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    repository      TEXT COLLATE "C" NOT NULL,
    tag             TEXT COLLATE "C",
    digest          TEXT,
    media_type      TEXT,
    size            BIGINT,
    previous_digest TEXT,
    actor_name      TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- The request behind the change (null for the registry's own: retention, GC).
    request_id         TEXT,
    request_host       TEXT,
    request_scheme     TEXT,
    request_addr       TEXT,
    request_user_agent TEXT,
    request_method     TEXT
  );
  CREATE INDEX events_by_tag ON events(repository, tag, seq);
  CREATE INDEX events_by_repository ON events(repository, seq);
  `,
  },
  {
    name: 'lifecycle',
    sql: `
  CREATE TABLE blob_claims (
    id          TEXT PRIMARY KEY,
    digest      TEXT COLLATE "C" NOT NULL,
    claimed_at  BIGINT NOT NULL
  );
  CREATE INDEX blob_claims_by_digest ON blob_claims(digest, claimed_at);

  -- Leases (one collection at a time across replicas), compared on the database clock.
  CREATE TABLE lifecycle_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
  );

  CREATE TABLE gc_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    dry_run     BOOLEAN NOT NULL,
    trigger     TEXT NOT NULL,
    report      JSONB NOT NULL
  );
  `,
  },
  {
    name: 'accounts',
    sql: `
  CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance      TEXT NOT NULL,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
  );

  CREATE TABLE robots (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance    TEXT NOT NULL,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
  );

  CREATE TABLE grants (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT REFERENCES users(id) ON DELETE CASCADE,
    robot_id   BIGINT REFERENCES robots(id) ON DELETE CASCADE,
    pattern    TEXT COLLATE "C" NOT NULL,
    actions    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (robot_id IS NULL))
  );
  CREATE UNIQUE INDEX grants_of_user ON grants(user_id, pattern) WHERE user_id IS NOT NULL;
  CREATE UNIQUE INDEX grants_of_robot ON grants(robot_id, pattern) WHERE robot_id IS NOT NULL;

  CREATE TABLE refresh_tokens (
    id             TEXT PRIMARY KEY,
    user_id        BIGINT REFERENCES users(id) ON DELETE CASCADE,
    robot_id       BIGINT REFERENCES robots(id) ON DELETE CASCADE,
    owner_instance TEXT NOT NULL,
    service        TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (robot_id IS NULL))
  );
  CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens(expires_at);
  CREATE INDEX refresh_tokens_of_user ON refresh_tokens(user_id) WHERE user_id IS NOT NULL;
  CREATE INDEX refresh_tokens_of_robot ON refresh_tokens(robot_id) WHERE robot_id IS NOT NULL;

  -- Login attempts inside the throttle window, per key (account:<name>, address:<group>); a
  -- reservation is counted (in_flight) before the credentials are checked.
  CREATE TABLE login_attempts (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key       TEXT NOT NULL,
    at        BIGINT NOT NULL,
    in_flight BOOLEAN NOT NULL
  );
  CREATE INDEX login_attempts_by_key ON login_attempts(key, at);
  CREATE INDEX login_attempts_by_age ON login_attempts(at);

  -- The token signing key every replica signs with, created once by whichever starts first.
  CREATE TABLE token_signing_keys (
    name       TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    pem        TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );

  -- The kid the replicas last started signing with: a replica that could neither sign with nor
  -- verify it refuses to start (its tokens and theirs would not work across replicas).
  CREATE TABLE token_signer (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    kid        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  `,
  },
  {
    name: 'webhooks',
    sql: `
  -- Webhook subscriptions; JSON text columns hold lists of event types and patterns, and headers.
  CREATE TABLE webhook_subscriptions (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    events        TEXT NOT NULL,
    repositories  TEXT NOT NULL,
    tags          TEXT NOT NULL,
    headers       TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('native', 'distribution', 'cloudevents', 'dockerhub')),
    state         TEXT NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
    source        TEXT NOT NULL CHECK (source IN ('api', 'config')),
    -- Outbox position at creation: older events are never delivered to the subscription.
    start_seq     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
  );

  -- One row per (subscription, event); the id orders deliveries within a lane (subscription, repository).
  CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    repository       TEXT,
    payload          TEXT NOT NULL,
    context          TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    first_attempt_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    UNIQUE (subscription_id, event_id)
  );
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_lane ON webhook_deliveries(subscription_id, repository, id) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_by_state ON webhook_deliveries(state, updated_at);
  CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries(event_id);

  CREATE TABLE webhook_attempts (
    delivery_id   BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    at            BIGINT NOT NULL,
    status        INTEGER,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt)
  );

  -- How far the dispatchers have fanned the outbox out into deliveries (it only moves forward).
  CREATE TABLE webhook_cursor (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
  );
  INSERT INTO webhook_cursor (name, seq) VALUES ('outbox', 0);

  -- The latest deploy report of each agent about each delivery, and how many it sent.
  CREATE TABLE webhook_deploys (
    delivery_id  BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    agent        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempt      INTEGER NOT NULL,
    exit_code    INTEGER,
    duration_ms  BIGINT,
    output       TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    sent_at      BIGINT NOT NULL,
    reported_at  BIGINT NOT NULL,
    reports      INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, agent)
  );
  `,
  },
  {
    // Read caches of every replica (read-cache.ts) forget what they hold when the rows behind
    // them change, whoever changes them. Statement-level: one notice per statement, and
    // PostgreSQL folds equal notices of one transaction into one, sent at commit.
    name: 'read-cache-notices',
    sql: `
  CREATE FUNCTION registry_notify_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('registry_accounts', ''); RETURN NULL; END $$;
  CREATE FUNCTION registry_notify_blob_links() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('registry_blob_links', ''); RETURN NULL; END $$;
  CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_accounts();
  CREATE TRIGGER robots_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON robots
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_accounts();
  CREATE TRIGGER grants_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_accounts();
  -- Only found links are cached, so new links need no notice; re-linking (linked_at) neither.
  CREATE TRIGGER repository_blobs_notify AFTER DELETE OR TRUNCATE OR UPDATE OF repository_id, digest ON repository_blobs
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_blob_links();
  CREATE TRIGGER blobs_notify AFTER DELETE OR TRUNCATE OR UPDATE OF digest, size ON blobs
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_blob_links();
  CREATE TRIGGER repositories_notify AFTER DELETE OR TRUNCATE OR UPDATE OF name ON repositories
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_blob_links();
  `,
  },
];

/** What a migration run did. */
export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

/**
 * Applies the migrations not yet recorded, each in its own transaction, holding the migration
 * advisory lock for the whole run (on one connection: session locks belong to it).
 */
export async function migrate(pool: Pool, migrations: Migration[] = MIGRATIONS): Promise<MigrationResult> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1, 0)', [LOCKS.migrations]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`);
      const done = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((row) => row.name));
      const result: MigrationResult = { applied: [], alreadyApplied: [] };
      for (const migration of migrations) {
        if (done.has(migration.name)) {
          result.alreadyApplied.push(migration.name);
          continue;
        }
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (name, applied_at) VALUES ($1, (extract(epoch from now()) * 1000)::bigint)', [migration.name]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw new Error(`PostgreSQL migration ${migration.name} failed: ${(error as Error).message}`);
        }
        result.applied.push(migration.name);
      }
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, 0)', [LOCKS.migrations]).catch(() => {
        broken = true;
      });
    }
  } finally {
    client.release(broken);
  }
}
