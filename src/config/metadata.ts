/**
 * Where metadata lives: the embedded SQLite database under `storage.root` (the default), or a
 * PostgreSQL database that any number of replicas share (docs/scale-out.md).
 */
import { z } from 'zod';

const postgresSchema = z
  .object({
    /**
     * `postgres://user:password@host:5432/database`; `?sslmode=disable|prefer|require|verify-ca|verify-full`
     * is honoured (node-postgres reads it from the URL).
     */
    url: z
      .string()
      .refine((value) => /^postgres(ql)?:\/\//.test(value) && URL.canParse(value), 'must be a postgres:// URL such as postgres://registry:secret@db:5432/registry')
      .optional(),
    /** Connections each replica keeps at most. */
    poolSize: z.number().int().min(2).max(200).default(10),
    /** Longest a statement may run before PostgreSQL cancels it, in milliseconds (0: no limit). */
    statementTimeoutMs: z.number().int().min(0).default(30_000),
    /** Longest a request waits for a free connection of the pool, in milliseconds. */
    connectionTimeoutMs: z.number().int().min(100).default(10_000),
  })
  .strict()
  .prefault({});

export const metadataConfigSchema = z
  .object({
    /** `sqlite`: `<storage.root>/registry.db` (one process). `postgres`: metadata.postgres.url (N replicas). */
    driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
    postgres: postgresSchema,
  })
  .strict()
  .prefault({})
  .superRefine((metadata, ctx) => {
    if (metadata.driver === 'postgres' && !metadata.postgres.url) {
      ctx.addIssue({ code: 'custom', path: ['postgres', 'url'], message: 'is required with metadata.driver postgres' });
    }
  });

export type MetadataConfig = z.infer<typeof metadataConfigSchema>;
export type PostgresSettings = MetadataConfig['postgres'] & { url: string };

/** A database URL with its password hidden, for messages and printed configuration. */
export function hideUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = 'hidden';
    return parsed.toString();
  } catch {
    return '[hidden]';
  }
}
