/**
 * What `registry migrate-metadata` copies from the embedded SQLite database into PostgreSQL,
 * table by table with explicit column lists, in an order that satisfies the foreign keys; and
 * what it deliberately leaves, with the reason. Written from both schemas
 * (sqlite/migrations.ts, postgres/migrations.ts): the migrator refuses to run when either side
 * has a table or a column this plan does not name (test/metadata/migrate-plan.test.ts fails
 * first), so a table added to one schema is never silently left behind.
 */

export interface TablePlan {
  name: string;
  /** Copied as they are (both schemas name them alike), in this order. */
  columns: readonly string[];
  /**
   * The PostgreSQL identity column (GENERATED ALWAYS): values are copied as they are
   * (OVERRIDING SYSTEM VALUE) and its sequence moved past the highest one ever drawn, so the
   * next row gets the number SQLite would have given it.
   */
  identity?: string;
  /** SQLite 0/1 stored as PostgreSQL BOOLEAN. */
  booleans?: readonly string[];
  /**
   * Rows the PostgreSQL schema creates itself (webhook_cursor's 'outbox' row at 0), replaced
   * by the copied ones; their presence alone does not make the target "not empty".
   */
  seeded?: readonly Record<string, unknown>[];
}

export const COPIED_TABLES: readonly TablePlan[] = [
  { name: 'repositories', columns: ['id', 'name', 'created_at'], identity: 'id' },
  { name: 'blobs', columns: ['digest', 'size', 'created_at', 'deleting_since'] },
  { name: 'repository_blobs', columns: ['repository_id', 'digest', 'linked_at'] },
  { name: 'manifests', columns: ['digest', 'media_type', 'size', 'content', 'subject', 'artifact_type', 'annotations', 'created_at'] },
  { name: 'manifest_references', columns: ['manifest_digest', 'target_digest', 'kind'] },
  { name: 'repository_manifests', columns: ['repository_id', 'digest', 'pushed_at'] },
  { name: 'tags', columns: ['repository_id', 'name', 'digest', 'updated_at'] },
  {
    name: 'events',
    columns: [
      'seq', 'id', 'type', 'repository', 'tag', 'digest', 'media_type', 'size', 'previous_digest', 'actor_name', 'actor_kind', 'created_at',
      'request_id', 'request_host', 'request_scheme', 'request_addr', 'request_user_agent', 'request_method',
    ],
    identity: 'seq',
  },
  { name: 'gc_runs', columns: ['id', 'started_at', 'finished_at', 'dry_run', 'trigger', 'report'], identity: 'id', booleans: ['dry_run'] },
  { name: 'users', columns: ['id', 'instance', 'name', 'password_hash', 'role', 'created_at', 'updated_at'], identity: 'id' },
  { name: 'robots', columns: ['id', 'instance', 'name', 'description', 'secret_hash', 'created_by', 'created_at', 'expires_at', 'revoked_at'], identity: 'id' },
  { name: 'grants', columns: ['id', 'user_id', 'robot_id', 'pattern', 'actions', 'created_at'], identity: 'id' },
  { name: 'refresh_tokens', columns: ['id', 'user_id', 'robot_id', 'owner_instance', 'service', 'secret_hash', 'created_at', 'expires_at'] },
  {
    name: 'webhook_subscriptions',
    columns: ['id', 'url', 'secret', 'events', 'repositories', 'tags', 'headers', 'format', 'state', 'source', 'start_seq', 'created_at', 'updated_at'],
  },
  {
    name: 'webhook_deliveries',
    columns: [
      'id', 'subscription_id', 'event_id', 'event_type', 'repository', 'payload', 'context', 'state', 'attempts', 'next_attempt_at', 'expires_at',
      'first_attempt_at', 'created_at', 'updated_at', 'last_status', 'last_error',
    ],
    identity: 'id',
  },
  { name: 'webhook_attempts', columns: ['delivery_id', 'attempt', 'at', 'status', 'latency_ms', 'error', 'response_body'] },
  { name: 'webhook_deploys', columns: ['delivery_id', 'agent', 'status', 'attempt', 'exit_code', 'duration_ms', 'output', 'started_at', 'finished_at', 'sent_at', 'reported_at', 'reports'] },
  // The fan-out position: with the deliveries above, no event is delivered twice nor skipped after the move.
  { name: 'webhook_cursor', columns: ['name', 'seq'], seeded: [{ name: 'outbox', seq: 0 }] },
];

/** Tables both schemas have that are not copied, and why (docs/migrate.md says the same to operators). */
export const NOT_COPIED: Readonly<Record<string, string>> = {
  schema_migrations: 'each database records its own migrations (PostgreSQL runs its own first)',
  uploads: 'upload sessions in progress are dropped: their data sits in the filesystem store, not in the bucket; clients start them again (BLOB_UPLOAD_UNKNOWN)',
  blob_claims: 'claims of blobs being put in place last seconds and are stale after minutes; none is held while the registry is read-only',
  lifecycle_leases: 'leases of the one process: the replicas take their own',
};

/** SQLite's own tables. */
export const SQLITE_ONLY: Readonly<Record<string, string>> = {
  ...NOT_COPIED,
  sqlite_sequence: "SQLite's AUTOINCREMENT counters: read to move the PostgreSQL sequences past them, not copied",
};

/** PostgreSQL tables the copy does not fill, and why. */
export const POSTGRES_ONLY: Readonly<Record<string, string>> = {
  ...NOT_COPIED,
  login_attempts: 'the throttle window of the one process lived in its memory; it starts empty',
  token_signing_keys: "filled with the single node's generated key file when there is one (tokens it issued keep working), else by the first replica",
  token_signer: 'announced by each replica when it starts',
};

/** One way a database's schema differs from the plan. */
export interface SchemaProblem {
  side: 'SQLite' | 'PostgreSQL';
  problem: string;
}

/**
 * What differs between a database's tables and columns and the plan: a table or column the plan
 * does not know (it would be lost), or one the plan needs that is missing (an older schema).
 */
export function checkSchema(
  side: SchemaProblem['side'],
  schema: ReadonlyMap<string, readonly string[]>,
  known: Readonly<Record<string, string>>,
  plan: readonly TablePlan[] = COPIED_TABLES,
): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const planned = new Map(plan.map((table) => [table.name, table]));
  for (const [table, columns] of schema) {
    const entry = planned.get(table);
    if (!entry) {
      if (!(table in known)) problems.push({ side, problem: `table ${table} is not known to the migration` });
      continue;
    }
    for (const column of columns) if (!entry.columns.includes(column)) problems.push({ side, problem: `column ${table}.${column} is not known to the migration` });
    for (const column of entry.columns) if (!columns.includes(column)) problems.push({ side, problem: `column ${table}.${column} is missing` });
  }
  for (const table of plan) if (!schema.has(table.name)) problems.push({ side, problem: `table ${table.name} is missing` });
  return problems;
}
