/**
 * Account management shared by the admin API and the admin CLI: validates input, hashes
 * passwords, generates robot secrets, and keeps at least one admin in place.
 */
import { parseActions, type AccountRef, type AccountStore, type Grant, type RobotRecord, type Role, type UserRecord } from './accounts.js';
import { isValidPattern } from './patterns.js';
import { parseLogin, ROBOT_LOGIN_PREFIX, USER_NAME } from './principals.js';
import type { RepositoryAction } from './scopes.js';
import { generateSecret, hashPassword, hashSecret } from './secrets.js';

export const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;
const MAX_DESCRIPTION_LENGTH = 500;

/** Bad input (`invalid`), a missing account (`not-found`), or a clash with existing state (`conflict`). */
export class AccountError extends Error {
  constructor(
    readonly kind: 'invalid' | 'not-found' | 'conflict',
    message: string,
  ) {
    super(message);
    this.name = 'AccountError';
  }
}

export interface GrantInput {
  pattern: string;
  actions: string | readonly string[];
}

export interface GrantView {
  pattern: string;
  actions: RepositoryAction[];
}

export interface UserView {
  name: string;
  role: Role;
  createdAt: string;
  updatedAt: string;
  grants: GrantView[];
}

export interface RobotView {
  name: string;
  /** The user name it logs in with: `robot+<name>`. */
  login: string;
  description: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  status: 'active' | 'expired' | 'revoked';
  grants: GrantView[];
}

export class AccountManager {
  constructor(
    private readonly store: AccountStore,
    private readonly now: () => number = Date.now,
  ) {}

  async listUsers(): Promise<UserView[]> {
    const users = await this.store.listUsers();
    return Promise.all(users.map((user) => this.userView(user)));
  }

  async getUser(name: string): Promise<UserView> {
    return this.userView(await this.requireUser(name));
  }

  async createUser(input: { name: string; password: string; role?: Role; grants?: GrantInput[] }): Promise<UserView> {
    const name = checkName(input.name, 'user');
    checkPassword(input.password);
    const role = checkRole(input.role ?? 'user');
    const grants = (input.grants ?? []).map(checkGrant);
    if (await this.store.getUser(name)) throw new AccountError('conflict', `user ${name} already exists`);
    const user = await this.store.createUser({ name, role, passwordHash: await hashPassword(input.password) });
    for (const grant of grants) await this.store.addGrant({ kind: 'user', id: user.id }, grant.pattern, grant.actions);
    return this.userView(user);
  }

  async setPassword(name: string, password: string): Promise<void> {
    checkPassword(password);
    const user = await this.requireUser(name);
    await this.store.setUserPassword(user.name, await hashPassword(password));
  }

  async setRole(name: string, role: Role): Promise<UserView> {
    const user = await this.requireUser(name);
    checkRole(role);
    if (user.role === 'admin' && role !== 'admin' && (await this.store.countAdmins()) <= 1) {
      throw new AccountError('conflict', `${name} is the last admin; make another user admin first`);
    }
    await this.store.setUserRole(user.name, role);
    return this.getUser(user.name);
  }

  async deleteUser(name: string): Promise<void> {
    const user = await this.requireUser(name);
    if (user.role === 'admin' && (await this.store.countAdmins()) <= 1) {
      throw new AccountError('conflict', `${name} is the last admin and cannot be deleted`);
    }
    await this.store.deleteUser(user.name);
  }

  async listRobots(): Promise<RobotView[]> {
    const robots = await this.store.listRobots();
    return Promise.all(robots.map((robot) => this.robotView(robot)));
  }

  async getRobot(name: string): Promise<RobotView> {
    return this.robotView(await this.requireRobot(name));
  }

  /** Creates a robot and returns its secret: shown this once, stored only as a hash. */
  async createRobot(input: {
    name: string;
    description?: string;
    expiresAt?: number | null;
    grants: GrantInput[];
    createdBy?: string | null;
  }): Promise<{ robot: RobotView; secret: string }> {
    const name = checkName(input.name, 'robot');
    const description = input.description ?? '';
    if (description.length > MAX_DESCRIPTION_LENGTH) throw new AccountError('invalid', `description must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && (!Number.isFinite(expiresAt) || expiresAt <= this.now())) {
      throw new AccountError('invalid', 'expiry must be in the future');
    }
    if (input.grants.length === 0) throw new AccountError('invalid', 'a robot needs at least one grant (pattern and actions)');
    const grants = input.grants.map(checkGrant);
    const existing = await this.store.getRobot(name);
    if (existing && existing.revokedAt === null) throw new AccountError('conflict', `robot ${name} already exists`);
    const secret = generateSecret();
    const robot = await this.store.createRobot({ name, description, secretHash: hashSecret(secret), createdBy: input.createdBy ?? null, expiresAt });
    for (const grant of grants) await this.store.addGrant({ kind: 'robot', id: robot.id }, grant.pattern, grant.actions);
    return { robot: await this.robotView(robot), secret };
  }

  async revokeRobot(name: string): Promise<void> {
    const robot = await this.requireRobot(name);
    if (robot.revokedAt !== null) throw new AccountError('conflict', `robot ${name} is already revoked`);
    await this.store.revokeRobot(robot.name, this.now());
  }

  /** Grants of an account given by login name (`alice`, `robot+ci`). */
  async listGrants(login: string): Promise<GrantView[]> {
    return (await this.store.listGrants(await this.ownerOf(login))).map(grantView);
  }

  async addGrant(login: string, input: GrantInput): Promise<GrantView> {
    const grant = checkGrant(input);
    const owner = await this.ownerOf(login);
    return grantView(await this.store.addGrant(owner, grant.pattern, grant.actions));
  }

  async removeGrant(login: string, pattern: string): Promise<void> {
    if (!(await this.store.removeGrant(await this.ownerOf(login), pattern))) {
      throw new AccountError('not-found', `${login} has no grant on ${pattern}`);
    }
  }

  private async ownerOf(login: string): Promise<AccountRef> {
    const { kind, name } = parseLogin(login);
    if (kind === 'robot') {
      const robot = await this.requireRobot(name);
      if (robot.revokedAt !== null) throw new AccountError('conflict', `robot ${name} is revoked`);
      return { kind, id: robot.id };
    }
    return { kind, id: (await this.requireUser(name)).id };
  }

  private async requireUser(name: string): Promise<UserRecord> {
    const user = USER_NAME.test(name) ? await this.store.getUser(name) : null;
    if (!user) throw new AccountError('not-found', `no user ${JSON.stringify(name)}`);
    return user;
  }

  private async requireRobot(name: string): Promise<RobotRecord> {
    const robot = USER_NAME.test(name) ? await this.store.getRobot(name) : null;
    if (!robot) throw new AccountError('not-found', `no robot ${JSON.stringify(name)}`);
    return robot;
  }

  private async userView(user: UserRecord): Promise<UserView> {
    const grants = await this.store.listGrants({ kind: 'user', id: user.id });
    return {
      name: user.name,
      role: user.role,
      createdAt: iso(user.createdAt),
      updatedAt: iso(user.updatedAt),
      grants: grants.map(grantView),
    };
  }

  private async robotView(robot: RobotRecord): Promise<RobotView> {
    const grants = await this.store.listGrants({ kind: 'robot', id: robot.id });
    const status = robot.revokedAt !== null ? 'revoked' : robot.expiresAt !== null && robot.expiresAt <= this.now() ? 'expired' : 'active';
    return {
      name: robot.name,
      login: ROBOT_LOGIN_PREFIX + robot.name,
      description: robot.description,
      createdBy: robot.createdBy,
      createdAt: iso(robot.createdAt),
      expiresAt: robot.expiresAt === null ? null : iso(robot.expiresAt),
      revokedAt: robot.revokedAt === null ? null : iso(robot.revokedAt),
      status,
      grants: grants.map(grantView),
    };
  }
}

function grantView(grant: Grant): GrantView {
  return { pattern: grant.pattern, actions: grant.actions };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function checkName(name: unknown, kind: 'user' | 'robot'): string {
  if (typeof name !== 'string' || !USER_NAME.test(name)) {
    throw new AccountError('invalid', `${kind} name must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return name;
}

function checkPassword(password: unknown): void {
  if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new AccountError('invalid', `password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`);
  }
}

function checkRole(role: unknown): Role {
  if (role !== 'admin' && role !== 'user') throw new AccountError('invalid', 'role must be "admin" or "user"');
  return role;
}

function checkGrant(input: GrantInput): { pattern: string; actions: RepositoryAction[] } {
  if (typeof input?.pattern !== 'string' || !isValidPattern(input.pattern)) {
    throw new AccountError('invalid', `invalid repository pattern ${JSON.stringify(input?.pattern)}: use names, '*' for one component, '**' for any depth`);
  }
  try {
    return { pattern: input.pattern, actions: parseActions(input.actions) };
  } catch (error) {
    throw new AccountError('invalid', (error as Error).message);
  }
}

/**
 * Parses an expiry: a duration from now (`30d`, `12h`, `90m`) or an ISO date. Returns epoch ms.
 */
export function parseExpiry(text: string, now: number = Date.now()): number {
  const duration = /^(\d{1,6})([dhm])$/.exec(text.trim());
  if (duration) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[duration[2] as 'd' | 'h' | 'm'];
    return now + Number(duration[1]) * unit;
  }
  const date = Date.parse(text);
  if (Number.isNaN(date)) throw new AccountError('invalid', `expiry must be a duration like 30d, 12h, 90m or an ISO date; got ${JSON.stringify(text)}`);
  return date;
}
