/**
 * First start with token auth and no users: creates the admin account, with the configured
 * password (REGISTRY_ADMIN_PASSWORD) or a generated one that is shown exactly once.
 */
import type { Logger } from 'pino';
import type { AccountStore } from './accounts.js';
import type { AuthConfig } from './config.js';
import { generatePassword, hashPassword } from './secrets.js';

/**
 * Where a generated password is shown: by default a plain banner on stderr, outside the
 * structured log, so the secret never becomes a log record that is shipped and kept.
 */
export type PasswordAnnouncer = (username: string, password: string) => void;

export const announceOnStderr: PasswordAnnouncer = (username, password) => {
  process.stderr.write(
    [
      '',
      '==================================================================',
      ` Created the first admin account of this registry.`,
      `   username: ${username}`,
      `   password: ${password}`,
      ` It is shown only this once. Log in and change it, from the registry's folder:`,
      `   npx registry user passwd ${username}`,
      ` (in the container image: docker exec <container> registry user passwd ${username})`,
      '==================================================================',
      '',
    ].join('\n'),
  );
};

/** Creates the first admin when there are no users; returns whether it did. */
export async function ensureInitialAdmin(
  store: AccountStore,
  config: AuthConfig,
  logger: Logger,
  announce: PasswordAnnouncer = announceOnStderr,
): Promise<boolean> {
  if ((await store.countUsers()) > 0) return false;
  const generated = config.adminPassword === undefined;
  const password = config.adminPassword ?? generatePassword();
  try {
    await store.createUser({ name: config.adminUsername, role: 'admin', passwordHash: await hashPassword(password) });
  } catch (error) {
    // Another process starting on the same storage created it first.
    if ((await store.countUsers()) > 0) return false;
    throw error;
  }
  logger.warn(
    { account: config.adminUsername, passwordSource: generated ? 'generated (printed once on stderr)' : 'REGISTRY_ADMIN_PASSWORD' },
    'created the first admin account',
  );
  if (generated) announce(config.adminUsername, password);
  return true;
}
