import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createUser, fromSeed } from "@nats-io/nkeys";
import type { FleetConfig } from "../config/index.js";
import { FleetError, inboxPrefixFor, servingSeedFileOf, type RiskLevel } from "../protocol/index.js";
import { IDENTITIES_FILE } from "./audit-signing.js";
import { fleetIdentities, fleetPermissions, type Identity, type Permissions } from "./permissions.js";

/**
 * One nkey user per process identity, and the server's authorization block that gives each its permissions. The seeds
 * stay where they are written (mode 0600), so a restart keeps every identity; the authorization file is rewritten each
 * time, so a changed config or tool catalogue changes what each identity may do.
 */

export const AUTH_FILE = "auth.conf";

/**
 * `agent:ship` → `agent-ship.nk`: one token, safe as a file name. A serving twin lies beside its role's seed
 * (`serve:agent:ship` → `agent-ship.serve.nk`), so a process given one seed finds the other (protocol's servingSeedFileOf).
 */
export function seedFileName(identity: Identity): string {
  if (identity.startsWith("serve:")) return servingSeedFileOf(seedFileName(identity.slice("serve:".length) as Identity));
  return `${identity.replace(":", "-")}.nk`;
}

export interface IdentityUser {
  identity: Identity;
  publicKey: string;
  permissions: Permissions;
}

export interface FleetCredentials {
  dir: string;
  /** the nats-server config snippet to `include` */
  authFile: string;
  users: IdentityUser[];
  /** the seed file (absolute path) of an identity */
  seedFile(identity: Identity): string;
}

/**
 * Writes `<dir>/<identity>.nk` for every identity the config calls for (keeping those already there) and
 * `<dir>/auth.conf` with their permissions. `tools` maps each tool's name to its risk level.
 */
export function writeFleetCredentials(dir: string, config: FleetConfig, tools: Readonly<Record<string, RiskLevel>>): FleetCredentials {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const keys = new Map<Identity, string>();
  for (const identity of fleetIdentities(config)) keys.set(identity, ensureSeed(join(root, seedFileName(identity))));
  const permissions = fleetPermissions(config, tools, { inboxOf: (identity) => inboxPrefixFor(keys.get(identity) ?? "") });
  const users = [...permissions].map(([identity, p]) => ({ identity, publicKey: keys.get(identity) ?? "", permissions: p }));
  const authFile = join(root, AUTH_FILE);
  writeFileSync(authFile, authorizationConfig(users, config.fleet.name), { mode: 0o600 });
  // the public halves, for `fleet audit verify`: which keys may sign audit records (tools) and anchors (governance)
  writeFileSync(join(root, IDENTITIES_FILE), JSON.stringify(Object.fromEntries(users.map((u) => [u.identity, u.publicKey])), null, 2) + "\n", { mode: 0o644 });
  return { dir: root, authFile, users, seedFile: (identity) => join(root, seedFileName(identity)) };
}

/** The public key of the seed in `file`, creating a new user seed there first when there is none. */
function ensureSeed(file: string): string {
  if (existsSync(file)) {
    try {
      return fromSeed(new TextEncoder().encode(readFileSync(file, "utf8").trim())).getPublicKey();
    } catch (cause) {
      throw new FleetError("CONFIG_INVALID", `${file} does not hold an nkey seed; remove it to have a new one made`, { cause });
    }
  }
  const user = createUser();
  writeFileSync(file, new TextDecoder().decode(user.getSeed()) + "\n", { mode: 0o600 });
  // the mode above applies only to a new file, and the umask may have narrowed it; make sure
  chmodSync(file, 0o600);
  return user.getPublicKey();
}

/**
 * The `authorization { users = [...] }` block, one nkey user per identity. NATS config reads JSON, and every subject is
 * a quoted string (so `$JS...` is never taken for a variable).
 */
export function authorizationConfig(users: readonly IdentityUser[], fleetName: string): string {
  const lines = [
    `# natsfleet: the broker's permissions for fleet "${fleetName}", one nkey user per process identity.`,
    "# Written by `fleet up` / `fleet creds` from the fleet config; edits are overwritten. Include it from the server",
    "# config (include ./auth.conf); the seeds beside it are the processes' credentials.",
    "authorization {",
    "  users = [",
  ];
  for (const user of users) {
    lines.push(`    # ${user.identity}`);
    lines.push(`    ${JSON.stringify({ nkey: user.publicKey, permissions: serverPermissions(user.permissions) })}`);
  }
  lines.push("  ]", "}", "");
  return lines.join("\n");
}

/**
 * nats-server's shape, with no allow_responses unless granted. An empty allow list means "no allow list" to the server
 * (everything allowed), so nothing to allow is written as a deny of everything instead.
 */
function serverPermissions(p: Permissions): Record<string, unknown> {
  const rules = (r: { allow: string[]; deny: string[] }) => (r.allow.length ? { allow: r.allow, ...(r.deny.length ? { deny: r.deny } : {}) } : { deny: [">"] });
  return { publish: rules(p.publish), subscribe: rules(p.subscribe), ...(p.allow_responses ? { allow_responses: true } : {}) };
}
