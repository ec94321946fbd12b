import { connect, type NatsConnection } from "@nats-io/transport-node";
import { AuthorizationError, credsAuthenticator, nkeyAuthenticator, PermissionViolationError, type Authenticator } from "@nats-io/nats-core";
import { fromSeed } from "@nats-io/nkeys";
import { existsSync, readFileSync } from "node:fs";
import type { Logger } from "pino";
import { FleetError } from "./errors.js";
import { trackServer } from "./server-away.js";

export interface ConnectOptions {
  /** one URL, a list, or a comma-separated list (`nats://n1:4222,nats://n2:4222`, as the nats CLI takes them) */
  servers: string | string[];
  /** shows in the server's connz, so an operator can tell the processes apart */
  name: string;
  /** a JWT credentials file (`.creds`), for a cluster run with accounts and JWTs */
  credsFile?: string;
  /** an nkey seed file (`.nk`), as `fleet up` and `fleet creds` write one per process identity */
  nkeySeedFile?: string;
  logger?: Logger;
  /**
   * Long-lived processes wait for a server that is not up yet and reconnect forever; the CLI fails fast instead, so an
   * operator learns at once that nothing answers.
   */
  longLived?: boolean;
}

/**
 * The inbox prefix of the identity with this public key. Each identity may subscribe only under its own prefix, so no
 * process can read the replies (KV reads, model answers) meant for another.
 */
export function inboxPrefixFor(publicKey: string): string {
  return `_INBOX.${publicKey}`;
}

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const longLived = options.longLived ?? true;
  const auth = authOptions(options);
  try {
    const nc = await connect({
      servers: typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()).filter(Boolean) : options.servers,
      name: options.name,
      maxReconnectAttempts: longLived ? -1 : 0,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      waitOnFirstConnect: longLived,
      timeout: longLived ? 20_000 : 3_000,
      // nats.js captures a stack trace at every request by default, for its timeout errors' sake: a seventh of the CPU
      // of a process making thousands of KV and JetStream requests a second (bench/proposals). Our errors name the
      // subject and the operation themselves, so the traces add little.
      noAsyncTraces: true,
      ...auth,
    });
    if (options.logger) watchStatus(nc, options.logger);
    if (longLived) trackServer(nc);
    return nc;
  } catch (cause) {
    if (causedBy(cause, AuthorizationError)) {
      const who = options.nkeySeedFile ?? options.credsFile;
      const why = who ? `refused the credentials in ${who}` : "requires credentials (--creds <file>)";
      throw new FleetError("PERMISSION_DENIED", `the NATS server at ${String(options.servers)} ${why}`, { cause });
    }
    throw new FleetError("NATS_UNAVAILABLE", `no NATS server answers at ${String(options.servers)}`, { cause });
  }
}

/**
 * Where the serving twin's seed of the identity in `seedFile` is: beside it, `agent-scout.nk` → `agent-scout.serve.nk`
 * (`fleet up` and `fleet creds` write both).
 */
export function servingSeedFileOf(seedFile: string): string {
  return seedFile.endsWith(".nk") ? `${seedFile.slice(0, -".nk".length)}.serve.nk` : `${seedFile}.serve`;
}

/**
 * The connection a process serves its requests on, beside `data`, the one it writes and asks through. With an nkey seed
 * whose serving twin lies beside it, a second connection under that twin, which the broker lets publish replies under
 * `_INBOX.` and nothing else: a reply subject forged towards a bucket, a stream or the audit trail lands nowhere, whatever
 * the service does with it. Without one (an open dev server, JWT credentials, the operator's seed) `data` serves too.
 */
export async function connectServing(options: ConnectOptions, data: NatsConnection): Promise<NatsConnection> {
  const twin = options.nkeySeedFile ? servingSeedFileOf(options.nkeySeedFile) : undefined;
  if (!twin || !existsSync(twin)) return data;
  const { credsFile: _jwt, ...rest } = options;
  return connectNats({ ...rest, nkeySeedFile: twin, name: `${options.name}-serve` });
}

/** Drains the serving connection first (no new requests, the ones under way answered), then the data connection. */
export async function drainConnections(data: NatsConnection, serving: NatsConnection): Promise<void> {
  if (serving !== data && !serving.isClosed()) await serving.drain();
  if (!data.isClosed()) await data.drain();
}

/** Whether the broker refused a publish or subscribe behind this error (a request's failure wraps the refusal). */
export function isPermissionViolation(err: unknown): boolean {
  return causedBy(err, PermissionViolationError);
}

function causedBy(err: unknown, kind: abstract new (...args: never[]) => Error): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    const found: boolean = e instanceof kind;
    if (found) return true;
    e = e.cause;
  }
  return false;
}

function authOptions(options: ConnectOptions): { authenticator?: Authenticator; inboxPrefix?: string } {
  if (options.nkeySeedFile) {
    const seed = readCredentials(options.nkeySeedFile);
    const publicKey = (() => {
      try {
        return fromSeed(seed).getPublicKey();
      } catch (cause) {
        throw new FleetError("CONFIG_INVALID", `${options.nkeySeedFile} does not hold an nkey seed`, { cause });
      }
    })();
    return { authenticator: nkeyAuthenticator(seed), inboxPrefix: inboxPrefixFor(publicKey) };
  }
  if (options.credsFile) return { authenticator: credsAuthenticator(readCredentials(options.credsFile)) };
  return {};
}

function readCredentials(file: string): Uint8Array {
  try {
    return new TextEncoder().encode(readFileSync(file, "utf8").trim());
  } catch (cause) {
    throw new FleetError("CONFIG_INVALID", `cannot read the NATS credentials file ${file}`, { cause });
  }
}

/** Logs reconnects and refusals once each, in one place. */
function watchStatus(nc: NatsConnection, log: Logger): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") {
        log.warn({ nats: s.type, server: "server" in s ? s.server : undefined, err: "error" in s ? s.error : undefined }, "nats connection status");
      }
    }
  })();
}
