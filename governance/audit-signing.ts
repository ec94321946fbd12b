import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromPublic, fromSeed } from "@nats-io/nkeys";
import { FleetError } from "../protocol/index.js";
import { canonicalJson } from "./canonical-json.js";

/*
 * Signatures on the audit trail. The tool host signs each record's hash with its own nkey (the seed `fleet up` generated
 * for the `tools` identity), governance signs each anchor of the chain's tip with its own. The bytes signed carry a
 * purpose prefix, so a signature made for one kind of thing is never valid for the other. Verification trusts only the
 * public keys of the identities the config generated (`identities.json` beside the seeds), never the key a record names.
 */

export interface AuditSigner {
  /** the public nkey (U…) the signatures verify with */
  readonly publicKey: string;
  sign(data: Uint8Array): Uint8Array;
}

/** The public keys a verifier trusts: the tool hosts for records, governance for anchors. */
export interface TrustedSigners {
  records: ReadonlySet<string>;
  anchors: ReadonlySet<string>;
  /** where they were read from, for the report */
  source: string;
}

/** The public half of each identity: written beside the seeds, readable by anyone who verifies. */
export const IDENTITIES_FILE = "identities.json";

const encoder = new TextEncoder();

export function recordSigningBytes(hash: string): Uint8Array {
  return encoder.encode(`audit-record:${hash}`);
}

/** An anchor's signed bytes: every member but `sig`, as canonical JSON. */
export function anchorSigningBytes(anchor: object): Uint8Array {
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(anchor)) if (key !== "sig") rest[key] = value;
  return encoder.encode(`audit-anchor:${canonicalJson(rest)}`);
}

export function signBytes(signer: AuditSigner, data: Uint8Array): string {
  return Buffer.from(signer.sign(data)).toString("base64url");
}

/** Whether `sig` (base64url) is `publicKey`'s signature of `data`; a malformed key or signature is simply false. */
export function signatureValid(publicKey: string, data: Uint8Array, sig: string): boolean {
  try {
    return fromPublic(publicKey).verify(data, Buffer.from(sig, "base64url"));
  } catch {
    return false;
  }
}

export function signerFromSeed(seed: string): AuditSigner {
  const kp = fromSeed(encoder.encode(seed.trim()));
  return { publicKey: kp.getPublicKey(), sign: (data) => kp.sign(data) };
}

/**
 * The signer of a process run with `--creds`: an nkey seed file (`.nk`), or the seed inside JWT credentials (`.creds`).
 * The error never quotes the file's content.
 */
export function signerFromCredsFile(file: string): AuditSigner {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new FleetError("CONFIG_INVALID", `cannot read ${file}`, { cause });
  }
  const seed = file.endsWith(".creds") ? /-+BEGIN USER NKEY SEED-+\s+(\S+)\s+-+END/.exec(text)?.[1] : text.trim();
  try {
    if (!seed) throw new Error("no seed");
    return signerFromSeed(seed);
  } catch {
    throw new FleetError("CONFIG_INVALID", `${file} does not hold an nkey seed to sign audit records with`);
  }
}

/**
 * The trusted keys of a credentials directory (`fleet up`'s .fleet/creds, or `fleet creds <dir>`): from identities.json,
 * else (a directory written before it existed) from the `tools` and `governance` seeds. Undefined when there are none.
 */
export function trustedSignersIn(dir: string): TrustedSigners | undefined {
  const file = join(dir, IDENTITIES_FILE);
  if (existsSync(file)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (cause) {
      throw new FleetError("CONFIG_INVALID", `${file} is not JSON: run \`fleet creds\` again`, { cause });
    }
    const keys = parsed !== null && typeof parsed === "object" ? new Map(Object.entries(parsed)) : new Map<string, unknown>();
    const key = (identity: string) => {
      const value = keys.get(identity);
      return typeof value === "string" ? [value] : [];
    };
    return { records: new Set(key("tools")), anchors: new Set(key("governance")), source: file };
  }
  const pk = (identity: string) => {
    const seedFile = join(dir, `${identity}.nk`);
    return existsSync(seedFile) ? [signerFromCredsFile(seedFile).publicKey] : [];
  };
  const records = pk("tools");
  const anchors = pk("governance");
  if (records.length === 0 && anchors.length === 0) return undefined;
  return { records: new Set(records), anchors: new Set(anchors), source: dir };
}
