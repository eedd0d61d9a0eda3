/**
 * User passwords verified a moment ago, so that a client sending the same Basic credentials
 * with every request (`curl -u`, scripts, Basic straight to /v2/) pays scrypt once per
 * `ttlMs` rather than once per request.
 *
 * Nothing here can outlive what it stands for: entries are keyed by an HMAC of login and
 * password under a key that exists only in this process (the password itself is never kept),
 * and every hit re-reads the account: it counts only while the user by that name is the same
 * account instance with the same password hash. A password change or deletion therefore ends
 * it at once, on every replica, since the database is the one that answers. A locked account
 * is the caller's to refuse (AuthService asks the throttle before using a hit).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { BoundedMap } from '../runtime/bounded-map.js';
import type { AccountStore, UserRecord } from './accounts.js';

interface Remembered {
  instance: string;
  passwordHash: string;
  expiresAt: number;
}

/** Distinct credentials remembered at once; the least recently verified are forgotten first. */
const CAPACITY = 1024;

export class VerifiedPasswords {
  private readonly key = randomBytes(32);
  private readonly entries = new BoundedMap<string, Remembered>(CAPACITY);

  constructor(
    private readonly store: AccountStore,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The user, when this exact login and password were verified within the ttl and the account is unchanged since. */
  async recall(name: string, password: string): Promise<UserRecord | null> {
    if (this.ttlMs <= 0) return null;
    const key = this.keyOf(name, password);
    const entry = this.entries.get(key);
    if (!entry) return null;
    const user = entry.expiresAt > this.now() ? await this.store.getUser(name) : null;
    if (!user || user.instance !== entry.instance || user.passwordHash !== entry.passwordHash) {
      this.entries.delete(key);
      return null;
    }
    return user;
  }

  /** Remembers that `password` is the password of `user` (just verified against its hash). */
  remember(user: UserRecord, password: string): void {
    if (this.ttlMs <= 0) return;
    this.entries.set(this.keyOf(user.name, password), { instance: user.instance, passwordHash: user.passwordHash, expiresAt: this.now() + this.ttlMs });
  }

  private keyOf(name: string, password: string): string {
    return createHmac('sha256', this.key).update(name).update('\0').update(password).digest('base64url');
  }
}
