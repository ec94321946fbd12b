import { promises as dns } from "node:dns";
import { connect as netConnect, isIP } from "node:net";
import { connect as tlsConnect, type PeerCertificate } from "node:tls";
import { z } from "zod";
import { defineTool, type ToolContext, type ToolDefinition } from "../tool.js";

/*
 * AUTO: read-only checks of things on the network. A target that is down is an answer (ok/open false, with the reason),
 * not a tool failure: the agent asked whether it is up. Only the host's own signal (its timeout, shutdown) fails a call.
 */

const DAY_MS = 24 * 3600_000;
const Host = z.string().min(1).max(253).regex(/^[A-Za-z0-9._:-]+$/, "must be a host name or an IP address");
const Port = z.number().int().min(1).max(65535);
const TimeoutMs = z.number().int().min(1).max(60_000).default(10_000);

/** The call's own timeout and the host's signal, whichever fires first. */
function callSignal(ctx: ToolContext, timeoutMs: number): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
}

function reason(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `timed out after ${timeoutMs} ms`;
  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? `${err.code}: ` : "";
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : "";
  return `${code}${err instanceof Error ? err.message : String(err)}${cause}`;
}

export const httpCheck = defineTool({
  name: "http_check",
  description: "Fetch a URL and report its HTTP status, whether it is OK (2xx) and how long it took.",
  risk: "AUTO",
  input: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    method: z.enum(["GET", "HEAD"]).default("GET"),
    timeoutMs: TimeoutMs,
  }),
  targetFields: ["url"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    const start = performance.now();
    try {
      const res = await fetch(input.url, { method: input.method, signal, redirect: "follow" });
      const latencyMs = Math.round(performance.now() - start);
      // the body is not wanted; dropping it frees the connection
      await res.body?.cancel().catch(() => undefined);
      return { url: input.url, finalUrl: res.url, status: res.status, ok: res.ok, latencyMs };
    } catch (err) {
      ctx.signal.throwIfAborted();
      return { url: input.url, status: null, ok: false, latencyMs: Math.round(performance.now() - start), error: reason(err, signal, input.timeoutMs) };
    }
  },
});

export const tlsExpiry = defineTool({
  name: "tls_expiry",
  description: "Connect with TLS and report the server certificate's expiry (notAfter, days left), issuer, subject and whether it is trusted.",
  risk: "AUTO",
  input: z.strictObject({ host: Host, port: Port.default(443), timeoutMs: TimeoutMs }),
  targetFields: ["host"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    const peer = await new Promise<{ cert: PeerCertificate; authorized: boolean; authorizationError?: string }>((resolve, reject) => {
      // untrusted certificates must still be read: reporting `authorized` is the point, refusing them is not
      const socket = tlsConnect({ host: input.host, port: input.port, rejectUnauthorized: false, ...(isIP(input.host) ? {} : { servername: input.host }) });
      const onAbort = () => socket.destroy(new Error(`timed out after ${input.timeoutMs} ms`));
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) onAbort();
      socket.once("secureConnect", () => {
        const cert = socket.getPeerCertificate();
        const authorizationError = socket.authorizationError ? String(socket.authorizationError) : undefined;
        resolve({ cert, authorized: socket.authorized, ...(authorizationError ? { authorizationError } : {}) });
        signal.removeEventListener("abort", onAbort);
        socket.end();
      });
      socket.once("error", (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      });
    });
    ctx.signal.throwIfAborted();
    if (!peer.cert.valid_to) throw new Error(`${input.host}:${input.port} sent no certificate`);
    const notAfter = new Date(peer.cert.valid_to);
    return {
      host: input.host,
      port: input.port,
      notAfter: notAfter.toISOString(),
      daysLeft: Math.floor((notAfter.getTime() - ctx.now()) / DAY_MS),
      issuer: distinguishedName(peer.cert.issuer),
      subject: distinguishedName(peer.cert.subject),
      authorized: peer.authorized,
      ...(peer.authorizationError ? { authorizationError: peer.authorizationError } : {}),
    };
  },
});

function distinguishedName(dn: Record<string, unknown> | undefined): string {
  if (!dn) return "";
  return Object.entries(dn)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : String(v)}`)
    .join(", ");
}

const RecordType = z.enum(["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SRV", "PTR"]);

export const dnsLookup = defineTool({
  name: "dns_lookup",
  description: "Resolve a name: A/AAAA through the system resolver (as programs on this host see it, /etc/hosts included), other types from DNS.",
  risk: "AUTO",
  input: z.strictObject({ name: z.string().min(1).max(253), type: RecordType.default("A"), timeoutMs: TimeoutMs }),
  targetFields: ["name"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    try {
      const addresses = await abortable(resolve(input.name, input.type, input.timeoutMs), signal, input.timeoutMs);
      return { name: input.name, type: input.type, addresses };
    } catch (err) {
      ctx.signal.throwIfAborted();
      // NXDOMAIN, no data, a resolver that does not answer: all answers to "what does this name resolve to?"
      return { name: input.name, type: input.type, addresses: [], error: reason(err, signal, input.timeoutMs) };
    }
  },
});

async function resolve(name: string, type: z.infer<typeof RecordType>, timeoutMs: number): Promise<string[]> {
  if (type === "A" || type === "AAAA") {
    const found = await dns.lookup(name, { family: type === "A" ? 4 : 6, all: true });
    return found.map((a) => a.address);
  }
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  switch (type) {
    case "CNAME":
      return resolver.resolveCname(name);
    case "NS":
      return resolver.resolveNs(name);
    case "PTR":
      return resolver.resolvePtr(name);
    case "MX":
      return (await resolver.resolveMx(name)).map((r) => `${r.priority} ${r.exchange}`);
    case "TXT":
      return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(""));
    case "SRV":
      return (await resolver.resolveSrv(name)).map((r) => `${r.priority} ${r.weight} ${r.port} ${r.name}`);
  }
}

/** getaddrinfo cannot be cancelled; the call stops waiting for it instead. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error(`timed out after ${timeoutMs} ms`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(`timed out after ${timeoutMs} ms`));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export const portCheck = defineTool({
  name: "port_check",
  description: "Open a TCP connection to host:port and report whether it is open and how long the connect took.",
  risk: "AUTO",
  input: z.strictObject({ host: Host, port: Port, timeoutMs: TimeoutMs }),
  targetFields: ["host"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    const start = performance.now();
    const error = await new Promise<string | undefined>((resolve) => {
      const socket = netConnect({ host: input.host, port: input.port });
      const done = (why: string | undefined) => {
        signal.removeEventListener("abort", onAbort);
        socket.destroy();
        resolve(why);
      };
      const onAbort = () => done(`timed out after ${input.timeoutMs} ms`);
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) return onAbort();
      socket.once("connect", () => done(undefined));
      socket.once("error", (err) => done(reason(err, signal, input.timeoutMs)));
    });
    ctx.signal.throwIfAborted();
    const latencyMs = Math.round(performance.now() - start);
    return error ? { host: input.host, port: input.port, open: false, latencyMs, error } : { host: input.host, port: input.port, open: true, latencyMs };
  },
});

export const networkChecks: ToolDefinition[] = [httpCheck, tlsExpiry, dnsLookup, portCheck];
