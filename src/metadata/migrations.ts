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
}

const MIGRATIONS: Migration[] = [
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
];

export function migrate(db: Database.Database, migrations: Migration[] = MIGRATIONS): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
  ) WITHOUT ROWID`);
  const applied = new Set(db.prepare('SELECT name FROM schema_migrations').pluck().all() as string[]);
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(migration.name, Date.now());
    })();
  }
}
