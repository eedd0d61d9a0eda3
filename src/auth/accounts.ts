/**
 * Accounts and grants: the `AccountStore` port (users, robots, their grants, refresh tokens)
 * and the access policy that decides what a principal may do on a repository.
 */
import { compilePattern, type RepositoryPattern } from './patterns.js';
import type { Principal } from './principals.js';
import { REPOSITORY_ACTIONS, type RepositoryAction, type ResourceScope } from './scopes.js';

export type Role = 'admin' | 'user';

export interface UserRecord {
  id: number;
  /** Random, given when the account is created and never reused: tokens carry it, so a re-created name starts afresh. */
  instance: string;
  name: string;
  role: Role;
  passwordHash: string;
  createdAt: number;
  updatedAt: number;
}

export interface RobotRecord {
  id: number;
  /** As UserRecord.instance. */
  instance: string;
  name: string;
  description: string;
  /** SHA-256 of the secret; the secret itself is shown once, at creation. */
  secretHash: string;
  createdBy: string | null;
  createdAt: number;
  /** Epoch ms after which the robot can no longer log in; null: never. */
  expiresAt: number | null;
  /** Epoch ms of revocation; a revoked robot can never log in again. */
  revokedAt: number | null;
}

/** A repository pattern and the actions granted on it. */
export interface Grant {
  id: number;
  pattern: string;
  actions: RepositoryAction[];
}

/** The owner of grants and refresh tokens. */
export interface AccountRef {
  kind: 'user' | 'robot';
  id: number;
}

export interface RefreshTokenRecord {
  id: string;
  owner: AccountRef;
  /** The owner's `instance` when the token was issued. */
  ownerInstance: string;
  service: string;
  secretHash: string;
  createdAt: number;
  expiresAt: number;
}

/**
 * Where accounts live. Asynchronous like the other ports, so that a network database can
 * implement it. Names are unique per kind; removing an account removes its grants and
 * refresh tokens.
 */
export interface AccountStore {
  countUsers(): Promise<number>;
  countAdmins(): Promise<number>;
  createUser(user: { name: string; role: Role; passwordHash: string }): Promise<UserRecord>;
  getUser(name: string): Promise<UserRecord | null>;
  getUserById(id: number): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  /** Sets the password hash and drops the user's refresh tokens; false when there is no such user. */
  setUserPassword(name: string, passwordHash: string): Promise<boolean>;
  setUserRole(name: string, role: Role): Promise<boolean>;
  deleteUser(name: string): Promise<boolean>;

  /** Creates a robot (with a new instance); a revoked robot of the same name is replaced. */
  createRobot(robot: { name: string; description: string; secretHash: string; createdBy: string | null; expiresAt: number | null }): Promise<RobotRecord>;
  getRobot(name: string): Promise<RobotRecord | null>;
  getRobotById(id: number): Promise<RobotRecord | null>;
  listRobots(): Promise<RobotRecord[]>;
  /** Marks the robot revoked and drops its refresh tokens; false when there is no such (unrevoked) robot. */
  revokeRobot(name: string, at: number): Promise<boolean>;

  listGrants(owner: AccountRef): Promise<Grant[]>;
  /** Adds actions on a pattern (merged with those already granted on it); returns the grant. */
  addGrant(owner: AccountRef, pattern: string, actions: RepositoryAction[]): Promise<Grant>;
  /** Removes the grant on a pattern; false when there was none. */
  removeGrant(owner: AccountRef, pattern: string): Promise<boolean>;

  createRefreshToken(token: RefreshTokenRecord): Promise<void>;
  getRefreshToken(id: string): Promise<RefreshTokenRecord | null>;
  deleteRefreshToken(id: string): Promise<void>;
  /** Removes refresh tokens past their expiry; returns how many. */
  deleteExpiredRefreshTokens(now: number): Promise<number>;
}

export function isRepositoryAction(action: string): action is RepositoryAction {
  return (REPOSITORY_ACTIONS as readonly string[]).includes(action);
}

/** Parses `pull,push` into known actions; throws on anything else. */
export function parseActions(text: string | readonly string[]): RepositoryAction[] {
  const list = typeof text === 'string' ? text.split(',').map((action) => action.trim()) : [...text];
  if (list.length === 0 || list.some((action) => !isRepositoryAction(action))) {
    throw new Error(`actions must be a non-empty list of ${REPOSITORY_ACTIONS.join(', ')}; got ${JSON.stringify(list.join(','))}`);
  }
  return REPOSITORY_ACTIONS.filter((action) => list.includes(action));
}

/**
 * What a principal may do, decided from its grants, its role and the public repositories.
 * Admins may do everything; everyone (anonymous included) may pull public repositories.
 */
export class AccessPolicy {
  private readonly grants: Array<{ pattern: RepositoryPattern; actions: readonly RepositoryAction[] }>;

  constructor(
    readonly principal: Principal,
    grants: readonly Grant[],
    private readonly publicRepositories: readonly RepositoryPattern[],
  ) {
    this.grants = grants.map((grant) => ({ pattern: compilePattern(grant.pattern), actions: grant.actions }));
  }

  allows(repository: string, action: RepositoryAction): boolean {
    if (this.principal.admin) return true;
    if (action === 'pull' && this.publicRepositories.some((pattern) => pattern.matches(repository))) return true;
    return this.grants.some((grant) => grant.actions.includes(action) && grant.pattern.matches(repository));
  }

  canPull(repository: string): boolean {
    return this.allows(repository, 'pull');
  }

  /** The catalog: for every account, and for anonymous callers when some repositories are public. */
  canListCatalog(): boolean {
    return this.principal.kind !== 'anonymous' || this.publicRepositories.length > 0;
  }

  /** The part of a requested scope this principal holds (the token server's intersection), or null. */
  grant(requested: ResourceScope): ResourceScope | null {
    // `*` on a repository stands for every repository action the principal holds there.
    const candidates = requested.type === 'repository' && requested.actions.includes('*') ? REPOSITORY_ACTIONS : requested.actions;
    const actions = candidates.filter((action) => this.allowsAction(requested.type, requested.name, action));
    return actions.length > 0 ? { type: requested.type, name: requested.name, actions: [...actions] } : null;
  }

  /**
   * One action on a resource of any type: the rule both the token server (grant) and a request
   * presenting a token or Basic credentials apply. The catalog and the admin API know only `*`.
   */
  allowsAction(type: string, name: string, action: string): boolean {
    if (type === 'repository') return isRepositoryAction(action) && this.allows(name, action);
    if (type === 'registry' && name === 'catalog') return action === '*' && this.canListCatalog();
    if (type === 'registry' && name === 'admin') return action === '*' && this.principal.admin && this.principal.kind === 'user';
    return false;
  }
}
