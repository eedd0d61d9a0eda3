/**
 * The SQLite AccountStore: users, robots, grants and refresh tokens in the registry's
 * database (the same better-sqlite3 connection as the metadata store), every query prepared.
 */
import type Database from 'better-sqlite3';
import type { AccountRef, AccountStore, Grant, RefreshTokenRecord, RobotRecord, Role, UserRecord } from '../../auth/accounts.js';
import { REPOSITORY_ACTIONS, type RepositoryAction } from '../../auth/scopes.js';
import { newInstance, ROBOT_COLUMNS, toGrant, toRefreshToken, toRobot, toUser, USER_COLUMNS, type GrantRow, type RefreshTokenRow, type RobotRow, type UserRow } from '../rows.js';

export class SqliteAccountStore implements AccountStore {
  private readonly statements;

  /** `db` must be migrated (SqliteMetadataStore does that on open). */
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    this.statements = prepareStatements(db);
  }

  async countUsers(): Promise<number> {
    return this.statements.countUsers.get() as number;
  }

  async countAdmins(): Promise<number> {
    return this.statements.countAdmins.get() as number;
  }

  async createUser(user: { name: string; role: Role; passwordHash: string }): Promise<UserRecord> {
    const now = this.now();
    const instance = newInstance();
    const id = Number(this.statements.insertUser.run(user.name, instance, user.passwordHash, user.role, now, now).lastInsertRowid);
    return { id, instance, name: user.name, role: user.role, passwordHash: user.passwordHash, createdAt: now, updatedAt: now };
  }

  async getUser(name: string): Promise<UserRecord | null> {
    return toUser(this.statements.userByName.get(name) as UserRow | undefined);
  }

  async getUserById(id: number): Promise<UserRecord | null> {
    return toUser(this.statements.userById.get(id) as UserRow | undefined);
  }

  async listUsers(): Promise<UserRecord[]> {
    return (this.statements.listUsers.all() as UserRow[]).map((row) => toUser(row)!);
  }

  async setUserPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.db.transaction(() => {
      const id = this.statements.userId.get(name) as number | undefined;
      if (id === undefined) return false;
      this.statements.setUserPassword.run(passwordHash, this.now(), id);
      // A new password ends every session the old one opened.
      this.statements.deleteRefreshTokensOfUser.run(id);
      return true;
    })();
  }

  async setUserRole(name: string, role: Role): Promise<boolean> {
    return this.statements.setUserRole.run(role, this.now(), name).changes > 0;
  }

  async deleteUser(name: string): Promise<boolean> {
    return this.statements.deleteUser.run(name).changes > 0;
  }

  async createRobot(robot: {
    name: string;
    description: string;
    secretHash: string;
    createdBy: string | null;
    expiresAt: number | null;
  }): Promise<RobotRecord> {
    return this.db.transaction((): RobotRecord => {
      const now = this.now();
      const instance = newInstance();
      this.statements.deleteRevokedRobot.run(robot.name);
      const id = Number(
        this.statements.insertRobot.run(robot.name, instance, robot.description, robot.secretHash, robot.createdBy, now, robot.expiresAt).lastInsertRowid,
      );
      return { id, instance, ...robot, createdAt: now, revokedAt: null };
    })();
  }

  async getRobot(name: string): Promise<RobotRecord | null> {
    return toRobot(this.statements.robotByName.get(name) as RobotRow | undefined);
  }

  async getRobotById(id: number): Promise<RobotRecord | null> {
    return toRobot(this.statements.robotById.get(id) as RobotRow | undefined);
  }

  async listRobots(): Promise<RobotRecord[]> {
    return (this.statements.listRobots.all() as RobotRow[]).map((row) => toRobot(row)!);
  }

  async revokeRobot(name: string, at: number): Promise<boolean> {
    return this.db.transaction(() => {
      const id = this.statements.activeRobotId.get(name) as number | undefined;
      if (id === undefined) return false;
      this.statements.revokeRobot.run(at, id);
      this.statements.deleteRefreshTokensOfRobot.run(id);
      return true;
    })();
  }

  async listGrants(owner: AccountRef): Promise<Grant[]> {
    const rows = (owner.kind === 'user' ? this.statements.grantsOfUser : this.statements.grantsOfRobot).all(owner.id) as GrantRow[];
    return rows.map(toGrant);
  }

  async addGrant(owner: AccountRef, pattern: string, actions: RepositoryAction[]): Promise<Grant> {
    return this.db.transaction((): Grant => {
      const existing = this.findGrant(owner, pattern);
      const merged = REPOSITORY_ACTIONS.filter((action) => actions.includes(action) || (existing?.actions.includes(action) ?? false));
      if (existing) {
        this.statements.setGrantActions.run(merged.join(','), existing.id);
        return { id: existing.id, pattern, actions: merged };
      }
      const [userId, robotId] = owner.kind === 'user' ? [owner.id, null] : [null, owner.id];
      const id = Number(this.statements.insertGrant.run(userId, robotId, pattern, merged.join(','), this.now()).lastInsertRowid);
      return { id, pattern, actions: merged };
    })();
  }

  async removeGrant(owner: AccountRef, pattern: string): Promise<boolean> {
    const existing = this.findGrant(owner, pattern);
    return existing !== null && this.statements.deleteGrant.run(existing.id).changes > 0;
  }

  private findGrant(owner: AccountRef, pattern: string): Grant | null {
    const row = (owner.kind === 'user' ? this.statements.grantOfUser : this.statements.grantOfRobot).get(owner.id, pattern) as GrantRow | undefined;
    return row ? toGrant(row) : null;
  }

  async createRefreshToken(token: RefreshTokenRecord): Promise<void> {
    const [userId, robotId] = token.owner.kind === 'user' ? [token.owner.id, null] : [null, token.owner.id];
    this.statements.insertRefreshToken.run(token.id, userId, robotId, token.ownerInstance, token.service, token.secretHash, token.createdAt, token.expiresAt);
  }

  async getRefreshToken(id: string): Promise<RefreshTokenRecord | null> {
    return toRefreshToken(this.statements.refreshToken.get(id) as RefreshTokenRow | undefined);
  }

  async deleteRefreshToken(id: string): Promise<void> {
    this.statements.deleteRefreshToken.run(id);
  }

  async deleteExpiredRefreshTokens(now: number): Promise<number> {
    return this.statements.deleteExpiredRefreshTokens.run(now).changes;
  }
}

function prepareStatements(db: Database.Database) {
  return {
    countUsers: db.prepare('SELECT COUNT(*) FROM users').pluck(),
    countAdmins: db.prepare("SELECT COUNT(*) FROM users WHERE role = 'admin'").pluck(),
    insertUser: db.prepare('INSERT INTO users (name, instance, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)'),
    userByName: db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE name = ?`),
    userById: db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`),
    userId: db.prepare('SELECT id FROM users WHERE name = ?').pluck(),
    listUsers: db.prepare(`SELECT ${USER_COLUMNS} FROM users ORDER BY name`),
    setUserPassword: db.prepare('UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?'),
    setUserRole: db.prepare('UPDATE users SET role = ?, updated_at = ? WHERE name = ?'),
    deleteUser: db.prepare('DELETE FROM users WHERE name = ?'),

    insertRobot: db.prepare(
      'INSERT INTO robots (name, instance, description, secret_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    deleteRevokedRobot: db.prepare('DELETE FROM robots WHERE name = ? AND revoked_at IS NOT NULL'),
    robotByName: db.prepare(`SELECT ${ROBOT_COLUMNS} FROM robots WHERE name = ?`),
    robotById: db.prepare(`SELECT ${ROBOT_COLUMNS} FROM robots WHERE id = ?`),
    activeRobotId: db.prepare('SELECT id FROM robots WHERE name = ? AND revoked_at IS NULL').pluck(),
    listRobots: db.prepare(`SELECT ${ROBOT_COLUMNS} FROM robots ORDER BY name`),
    revokeRobot: db.prepare('UPDATE robots SET revoked_at = ? WHERE id = ?'),

    grantsOfUser: db.prepare('SELECT id, pattern, actions FROM grants WHERE user_id = ? ORDER BY pattern'),
    grantsOfRobot: db.prepare('SELECT id, pattern, actions FROM grants WHERE robot_id = ? ORDER BY pattern'),
    grantOfUser: db.prepare('SELECT id, pattern, actions FROM grants WHERE user_id = ? AND pattern = ?'),
    grantOfRobot: db.prepare('SELECT id, pattern, actions FROM grants WHERE robot_id = ? AND pattern = ?'),
    insertGrant: db.prepare('INSERT INTO grants (user_id, robot_id, pattern, actions, created_at) VALUES (?, ?, ?, ?, ?)'),
    setGrantActions: db.prepare('UPDATE grants SET actions = ? WHERE id = ?'),
    deleteGrant: db.prepare('DELETE FROM grants WHERE id = ?'),

    insertRefreshToken: db.prepare(
      'INSERT INTO refresh_tokens (id, user_id, robot_id, owner_instance, service, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    refreshToken: db.prepare('SELECT id, user_id, robot_id, owner_instance, service, secret_hash, created_at, expires_at FROM refresh_tokens WHERE id = ?'),
    deleteRefreshToken: db.prepare('DELETE FROM refresh_tokens WHERE id = ?'),
    deleteRefreshTokensOfUser: db.prepare('DELETE FROM refresh_tokens WHERE user_id = ?'),
    deleteRefreshTokensOfRobot: db.prepare('DELETE FROM refresh_tokens WHERE robot_id = ?'),
    deleteExpiredRefreshTokens: db.prepare('DELETE FROM refresh_tokens WHERE expires_at <= ?'),
  };
}
