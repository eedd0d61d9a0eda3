/**
 * The AccountStore on PostgreSQL: users, robots, grants and refresh tokens. Each account gets a
 * random instance on creation that its tokens carry, so a name deleted and re-created (on any
 * replica) never revives the tokens of the account before. Read-modify-write steps lock the
 * account row, so two replicas changing one account take turns.
 *
 * The reads behind every token (the account by name, its grants) are answered from the read
 * cache, which every change, here or on another replica, clears (read-cache.ts): a deleted user
 * or a revoked robot is refused on this replica at once and on the others within a notice.
 */
import type { AccountRef, AccountStore, Grant, RefreshTokenRecord, RobotRecord, Role, UserRecord } from '../../auth/accounts.js';
import { REPOSITORY_ACTIONS, type RepositoryAction } from '../../auth/scopes.js';
import { queryPrepared, transaction, type Pool, type PreparedStatement } from './pool.js';
import type { ReadCache } from './read-cache.js';
import { newInstance, ROBOT_COLUMNS, toGrant, toRefreshToken, toRobot, toUser, USER_COLUMNS, type GrantRow, type RefreshTokenRow, type RobotRow, type UserRow } from '../rows.js';

/** What every request with a token reads (the live account behind it, then its grants), prepared once per connection. */
const TOKEN_CHECKS = {
  user: { name: 'account-user', text: `SELECT ${USER_COLUMNS} FROM users WHERE name = $1` },
  robot: { name: 'account-robot', text: `SELECT ${ROBOT_COLUMNS} FROM robots WHERE name = $1` },
  userGrants: { name: 'account-user-grants', text: 'SELECT id, pattern, actions FROM grants WHERE user_id = $1 ORDER BY pattern' },
  robotGrants: { name: 'account-robot-grants', text: 'SELECT id, pattern, actions FROM grants WHERE robot_id = $1 ORDER BY pattern' },
} satisfies Record<string, PreparedStatement>;

export class PostgresAccountStore implements AccountStore {
  constructor(
    private readonly pool: Pool,
    private readonly cache: ReadCache,
    private readonly now: () => number = Date.now,
  ) {}

  async countUsers(): Promise<number> {
    return (await this.pool.query<{ count: number }>('SELECT COUNT(*) AS count FROM users')).rows[0]!.count;
  }

  async countAdmins(): Promise<number> {
    return (await this.pool.query<{ count: number }>("SELECT COUNT(*) AS count FROM users WHERE role = 'admin'")).rows[0]!.count;
  }

  async createUser(user: { name: string; role: Role; passwordHash: string }): Promise<UserRecord> {
    return this.cache.forgetAfter(async () => {
      const now = this.now();
      const instance = newInstance();
      const { rows } = await this.pool.query<{ id: number }>(
        'INSERT INTO users (name, instance, password_hash, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id',
        [user.name, instance, user.passwordHash, user.role, now],
      );
      return { id: rows[0]!.id, instance, name: user.name, role: user.role, passwordHash: user.passwordHash, createdAt: now, updatedAt: now };
    });
  }

  async getUser(name: string): Promise<UserRecord | null> {
    return this.cache.get(`user:${name}`, async () => toUser((await queryPrepared<UserRow>(this.pool, TOKEN_CHECKS.user, [name])).rows[0]));
  }

  async getUserById(id: number): Promise<UserRecord | null> {
    return toUser((await this.pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id])).rows[0]);
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await this.pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY name`)).rows.map((row) => toUser(row)!);
  }

  async setUserPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.cache.forgetAfter(() =>
      transaction(this.pool, async (client) => {
        const { rows } = await client.query<{ id: number }>('UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1 RETURNING id', [
          name,
          passwordHash,
          this.now(),
        ]);
        if (!rows[0]) return false;
        // A new password ends every session the old one opened.
        await client.query('DELETE FROM refresh_tokens WHERE user_id = $1', [rows[0].id]);
        return true;
      }),
    );
  }

  async setUserRole(name: string, role: Role): Promise<boolean> {
    return this.cache.forgetAfter(async () => ((await this.pool.query('UPDATE users SET role = $2, updated_at = $3 WHERE name = $1', [name, role, this.now()])).rowCount ?? 0) > 0);
  }

  async deleteUser(name: string): Promise<boolean> {
    return this.cache.forgetAfter(async () => ((await this.pool.query('DELETE FROM users WHERE name = $1', [name])).rowCount ?? 0) > 0);
  }

  async createRobot(robot: { name: string; description: string; secretHash: string; createdBy: string | null; expiresAt: number | null }): Promise<RobotRecord> {
    return this.cache.forgetAfter(() =>
      transaction(this.pool, async (client) => {
        const now = this.now();
        const instance = newInstance();
        await client.query('DELETE FROM robots WHERE name = $1 AND revoked_at IS NOT NULL', [robot.name]);
        const { rows } = await client.query<{ id: number }>(
          'INSERT INTO robots (name, instance, description, secret_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
          [robot.name, instance, robot.description, robot.secretHash, robot.createdBy, now, robot.expiresAt],
        );
        return { id: rows[0]!.id, instance, ...robot, createdAt: now, revokedAt: null };
      }),
    );
  }

  async getRobot(name: string): Promise<RobotRecord | null> {
    return this.cache.get(`robot:${name}`, async () => toRobot((await queryPrepared<RobotRow>(this.pool, TOKEN_CHECKS.robot, [name])).rows[0]));
  }

  async getRobotById(id: number): Promise<RobotRecord | null> {
    return toRobot((await this.pool.query<RobotRow>(`SELECT ${ROBOT_COLUMNS} FROM robots WHERE id = $1`, [id])).rows[0]);
  }

  async listRobots(): Promise<RobotRecord[]> {
    return (await this.pool.query<RobotRow>(`SELECT ${ROBOT_COLUMNS} FROM robots ORDER BY name`)).rows.map((row) => toRobot(row)!);
  }

  async revokeRobot(name: string, at: number): Promise<boolean> {
    return this.cache.forgetAfter(() =>
      transaction(this.pool, async (client) => {
        const { rows } = await client.query<{ id: number }>('UPDATE robots SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING id', [name, at]);
        if (!rows[0]) return false;
        await client.query('DELETE FROM refresh_tokens WHERE robot_id = $1', [rows[0].id]);
        return true;
      }),
    );
  }

  async listGrants(owner: AccountRef): Promise<Grant[]> {
    const grants = await this.cache.get(`grants:${owner.kind}:${owner.id}`, async () => {
      const { rows } = await queryPrepared<GrantRow>(this.pool, owner.kind === 'user' ? TOKEN_CHECKS.userGrants : TOKEN_CHECKS.robotGrants, [owner.id]);
      return rows.map(toGrant);
    });
    return grants!;
  }

  async addGrant(owner: AccountRef, pattern: string, actions: RepositoryAction[]): Promise<Grant> {
    return this.cache.forgetAfter(() =>
      transaction(this.pool, async (client) => {
        // The owner's row lock: two replicas adding to one grant merge their actions instead of one losing.
        await client.query(`SELECT 1 FROM ${owner.kind === 'user' ? 'users' : 'robots'} WHERE id = $1 FOR UPDATE`, [owner.id]);
        const existing = (await client.query<GrantRow>(`SELECT id, pattern, actions FROM grants WHERE ${ownerColumn(owner)} = $1 AND pattern = $2`, [owner.id, pattern]))
          .rows[0];
        const held = existing ? toGrant(existing).actions : [];
        const merged = REPOSITORY_ACTIONS.filter((action) => actions.includes(action) || held.includes(action));
        if (existing) {
          await client.query('UPDATE grants SET actions = $2 WHERE id = $1', [existing.id, merged.join(',')]);
          return { id: existing.id, pattern, actions: merged };
        }
        const [userId, robotId] = owner.kind === 'user' ? [owner.id, null] : [null, owner.id];
        const { rows } = await client.query<{ id: number }>(
          'INSERT INTO grants (user_id, robot_id, pattern, actions, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
          [userId, robotId, pattern, merged.join(','), this.now()],
        );
        return { id: rows[0]!.id, pattern, actions: merged };
      }),
    );
  }

  async removeGrant(owner: AccountRef, pattern: string): Promise<boolean> {
    return this.cache.forgetAfter(async () => ((await this.pool.query(`DELETE FROM grants WHERE ${ownerColumn(owner)} = $1 AND pattern = $2`, [owner.id, pattern])).rowCount ?? 0) > 0);
  }

  async createRefreshToken(token: RefreshTokenRecord): Promise<void> {
    const [userId, robotId] = token.owner.kind === 'user' ? [token.owner.id, null] : [null, token.owner.id];
    await this.pool.query(
      'INSERT INTO refresh_tokens (id, user_id, robot_id, owner_instance, service, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
      [token.id, userId, robotId, token.ownerInstance, token.service, token.secretHash, token.createdAt, token.expiresAt],
    );
  }

  async getRefreshToken(id: string): Promise<RefreshTokenRecord | null> {
    const { rows } = await this.pool.query<RefreshTokenRow>(
      'SELECT id, user_id, robot_id, owner_instance, service, secret_hash, created_at, expires_at FROM refresh_tokens WHERE id = $1',
      [id],
    );
    return toRefreshToken(rows[0]);
  }

  async deleteRefreshToken(id: string): Promise<void> {
    await this.pool.query('DELETE FROM refresh_tokens WHERE id = $1', [id]);
  }

  async deleteExpiredRefreshTokens(now: number): Promise<number> {
    return (await this.pool.query('DELETE FROM refresh_tokens WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }
}

function ownerColumn(owner: AccountRef): 'user_id' | 'robot_id' {
  return owner.kind === 'user' ? 'user_id' : 'robot_id';
}

