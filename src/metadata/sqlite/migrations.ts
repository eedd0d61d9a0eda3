/**
 * Schema migrations, applied in list order. Each has a unique name recorded in
 * `schema_migrations` once applied, so features developed side by side can each add their
 * own without fighting over a version number. Never edit a migration that has shipped: add
 * a new one at the end.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  name: string;
  sql: string;
  /**
   * Rebuilds a table others reference (SQLite's way to change a CHECK): foreign keys are off
   * while it runs, so dropping the old table cascades nothing, and checked before it commits.
   */
  rebuildsTables?: boolean;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    name: 'core',
    sql: `
  CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
  );

  -- Content known to the blob store, whichever repositories use it.
  CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- A blob is visible in a repository only once pushed or mounted there.
  CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs(digest),
    linked_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

  -- Manifest bytes are stored once, exactly as pushed.
  CREATE TABLE manifests (
    digest        TEXT PRIMARY KEY,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content       BLOB NOT NULL,
    subject       TEXT,
    artifact_type TEXT,
    annotations   TEXT,
    created_at    INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX manifests_by_subject ON manifests(subject) WHERE subject IS NOT NULL;

  -- The reference graph: what a manifest needs (config, layers, child manifests).
  CREATE TABLE manifest_references (
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    target_digest   TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest_digest, target_digest)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_references_by_target ON manifest_references(target_digest);

  CREATE TABLE repository_manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES manifests(digest),
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repository_manifests_by_digest ON repository_manifests(digest);

  -- Keyed by (repository, name) so that a page of tags is an index range scan.
  CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name)
  ) WITHOUT ROWID;
  CREATE INDEX tags_by_digest ON tags(repository_id, digest);

  CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    repository    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- The transactional outbox: one row per domain event, written with the change it reports.
  CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    repository      TEXT NOT NULL,
    tag             TEXT,
    digest          TEXT,
    media_type      TEXT,
    size            INTEGER,
    previous_digest TEXT,
    actor_name      TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    created_at      INTEGER NOT NULL
  );
  `,
  },
  {
    name: 'webhooks',
    sql: `
  -- Webhook subscriptions; JSON columns hold lists of event types and patterns, and headers.
  CREATE TABLE webhook_subscriptions (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    events        TEXT NOT NULL,
    repositories  TEXT NOT NULL,
    tags          TEXT NOT NULL,
    headers       TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('native', 'distribution', 'cloudevents')),
    active        INTEGER NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('api', 'config')),
    -- Outbox position at creation: older events are never delivered to the subscription.
    start_seq     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- One row per (subscription, event); the id orders deliveries within a subscription.
  CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    repository      TEXT,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    UNIQUE (subscription_id, event_id)
  );
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_lane ON webhook_deliveries(subscription_id, repository, id) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_by_state ON webhook_deliveries(state, updated_at);

  CREATE TABLE webhook_attempts (
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    status        INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt)
  ) WITHOUT ROWID;

  -- How far the dispatcher has fanned the outbox out into deliveries.
  CREATE TABLE webhook_cursor (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO webhook_cursor (name, seq) VALUES ('outbox', 0);
  `,
  },
  {
    name: 'accounts',
    sql: `
  -- People: a password (scrypt hash) and a role; grants say what else they may do.
  CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  );

  -- CI accounts: a generated secret (SHA-256), optional expiry, revocable; only what their grants allow.
  CREATE TABLE robots (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
  );

  -- Repository pattern x actions (comma list of pull, push, delete), owned by a user or a robot.
  CREATE TABLE grants (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    robot_id   INTEGER REFERENCES robots(id) ON DELETE CASCADE,
    pattern    TEXT NOT NULL,
    actions    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (robot_id IS NULL))
  );
  CREATE UNIQUE INDEX grants_of_user ON grants(user_id, pattern) WHERE user_id IS NOT NULL;
  CREATE UNIQUE INDEX grants_of_robot ON grants(robot_id, pattern) WHERE robot_id IS NOT NULL;

  -- Refresh tokens (offline_token): only a SHA-256 of the secret part is kept.
  CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    robot_id    INTEGER REFERENCES robots(id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (robot_id IS NULL))
  ) WITHOUT ROWID;
  CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens(expires_at);
  CREATE INDEX refresh_tokens_of_user ON refresh_tokens(user_id) WHERE user_id IS NOT NULL;
  CREATE INDEX refresh_tokens_of_robot ON refresh_tokens(robot_id) WHERE robot_id IS NOT NULL;
  `,
  },
  {
    name: 'lifecycle',
    sql: `
  -- Set when garbage collection (or fsck) decided to delete the blob: its links are gone, its
  -- file is being removed, and nothing may link it again until the row itself is deleted.
  ALTER TABLE blobs ADD COLUMN deleting_since INTEGER;

  -- A blob whose content is being put in place (upload commit, mount, link on HEAD): garbage
  -- collection leaves the digest alone until the claim ends (claims older than minutes are stale).
  CREATE TABLE blob_claims (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    claimed_at  INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX blob_claims_by_digest ON blob_claims(digest);

  -- Leases that keep two collections (server schedule, admin API, CLI) from running at once.
  CREATE TABLE lifecycle_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- Reports of past garbage collections (the schedule starts from the last one).
  CREATE TABLE gc_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    dry_run     INTEGER NOT NULL,
    trigger     TEXT NOT NULL,
    report      TEXT NOT NULL
  );

  -- Retention orders tags by age within a repository.
  CREATE INDEX tags_by_update ON tags(repository_id, updated_at);
  `,
  },
  {
    name: 'browse',
    sql: `
  -- Who last pushed a tag (the web interface's tag list): the newest tag event of (repository, tag).
  CREATE INDEX events_by_tag ON events(repository, tag, seq);
  -- A repository's latest event: what its cached tag orders and counts are checked against (the
  -- events timeline needs the same index; whichever migration comes first creates it).
  CREATE INDEX IF NOT EXISTS events_by_repository ON events(repository, seq);
  `,
  },
  {
    name: 'account-instances',
    sql: `
  -- A random id per account instance, carried by its tokens: SQLite may hand a deleted row's id
  -- to the next row, so a name (or id) re-created must not revive tokens of the one before.
  ALTER TABLE users ADD COLUMN instance TEXT NOT NULL DEFAULT '';
  UPDATE users SET instance = lower(hex(randomblob(16)));
  ALTER TABLE robots ADD COLUMN instance TEXT NOT NULL DEFAULT '';
  UPDATE robots SET instance = lower(hex(randomblob(16)));
  ALTER TABLE refresh_tokens ADD COLUMN owner_instance TEXT NOT NULL DEFAULT '';
  UPDATE refresh_tokens SET owner_instance = COALESCE(
    (SELECT instance FROM users WHERE users.id = refresh_tokens.user_id),
    (SELECT instance FROM robots WHERE robots.id = refresh_tokens.robot_id),
    '');
  `,
  },
  {
    name: 'upload-state',
    sql: `
  -- Everything needed to continue an upload in any process: bytes received, the running hash's
  -- saved state, the blob driver's state (multipart upload id, parts, tail), and the writer
  -- lease that lets one request at a time write (compare-and-set on writer/writer_expires_at).
  -- Sessions begun before this migration kept their size and hash in files and memory only:
  -- they are dropped (the client's next request gets BLOB_UPLOAD_UNKNOWN and starts again;
  -- the purge removes their files).
  DELETE FROM uploads;
  ALTER TABLE uploads ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE uploads ADD COLUMN hash_state TEXT;
  ALTER TABLE uploads ADD COLUMN driver_state TEXT;
  ALTER TABLE uploads ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE uploads ADD COLUMN writer TEXT;
  ALTER TABLE uploads ADD COLUMN writer_expires_at INTEGER NOT NULL DEFAULT 0;
  `,
  },
  {
    name: 'event-requests',
    sql: `
  -- The request behind each change (null for the registry's own: retention, GC): webhook events
  -- name the host that request addressed, and distribution-format receivers get its client details.
  ALTER TABLE events ADD COLUMN request_id TEXT;
  ALTER TABLE events ADD COLUMN request_host TEXT;
  ALTER TABLE events ADD COLUMN request_scheme TEXT;
  ALTER TABLE events ADD COLUMN request_addr TEXT;
  ALTER TABLE events ADD COLUMN request_user_agent TEXT;
  ALTER TABLE events ADD COLUMN request_method TEXT;
  -- Beside each delivery's payload: the scheme its URLs use and the request record (JSON).
  ALTER TABLE webhook_deliveries ADD COLUMN context TEXT;
  `,
  },
  {
    name: 'webhook-deploys',
    sql: `
  -- The latest deploy report of each agent about each delivery, and how many it sent.
  CREATE TABLE webhook_deploys (
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    agent        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempt      INTEGER NOT NULL,
    exit_code    INTEGER,
    duration_ms  INTEGER,
    output       TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    sent_at      INTEGER NOT NULL,
    reported_at  INTEGER NOT NULL,
    reports      INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, agent)
  ) WITHOUT ROWID;
  -- The events timeline: newest first, per repository, with each event's deliveries.
  CREATE INDEX IF NOT EXISTS events_by_repository ON events(repository, seq);
  CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries(event_id);
  `,
  },
  {
    name: 'webhook-subscription-states',
    rebuildsTables: true,
    sql: `
  -- active/paused/disabled instead of a flag (paused queues, disabled drops), and the Docker Hub
  -- format: both need the CHECKs changed, which in SQLite means rebuilding the table.
  CREATE TABLE webhook_subscriptions_rebuilt (
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
    start_seq     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO webhook_subscriptions_rebuilt
    SELECT id, url, secret, events, repositories, tags, headers, format,
           CASE WHEN active = 1 THEN 'active' ELSE 'paused' END, source, start_seq, created_at, updated_at
    FROM webhook_subscriptions;
  DROP TABLE webhook_subscriptions;
  ALTER TABLE webhook_subscriptions_rebuilt RENAME TO webhook_subscriptions;
  `,
  },
  {
    name: 'webhook-delivery-age',
    sql: `
  -- A delivery's maximum age counts from its first attempt (since queued or redelivered), not
  -- from when it was queued: one waiting behind a failing delivery of its lane does not age.
  ALTER TABLE webhook_deliveries ADD COLUMN first_attempt_at INTEGER;
  UPDATE webhook_deliveries SET first_attempt_at = created_at WHERE attempts > 0;
  `,
  },
];

/** Applies the migrations not yet recorded; returns the names of those it applied. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): string[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
  ) WITHOUT ROWID`);
  const applied = new Set(db.prepare('SELECT name FROM schema_migrations').pluck().all() as string[]);
  const ran: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    // The pragma is a no-op inside a transaction: switched around it.
    const foreignKeys = db.pragma('foreign_keys', { simple: true }) as number;
    if (migration.rebuildsTables) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        db.exec(migration.sql);
        if (migration.rebuildsTables && (db.pragma('foreign_key_check') as unknown[]).length > 0) {
          throw new Error(`migration ${migration.name} would break foreign keys`);
        }
        db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(migration.name, Date.now());
      })();
    } finally {
      if (migration.rebuildsTables) db.pragma(`foreign_keys = ${foreignKeys ? 'ON' : 'OFF'}`);
    }
    ran.push(migration.name);
  }
  return ran;
}
