import { randomBytes, timingSafeEqual } from "node:crypto";

/*
 * Who may use the dashboard: whoever holds the login token, given once on /login (a session cookie, HttpOnly and
 * SameSite=Strict, follows) or on every request as `Authorization: Bearer <token>` (Prometheus, scripts). Each cookie
 * session has its own CSRF token that every POST must carry; a bearer request needs none, since a browser never adds
 * that header to a cross-site request by itself.
 */

export const SESSION_COOKIE = "natsfleet_session";

interface Session {
  csrf: string;
  createdAt: number;
}

export type Caller = { kind: "session"; id: string; csrf: string } | { kind: "bearer" };

export class DashboardAuth {
  private readonly sessions = new Map<string, Session>();

  constructor(
    readonly token: string,
    private readonly options: { clock: { now(): number }; sessionTtlMs?: number; random?: (bytes: number) => string } = { clock: Date },
  ) {
    if (token.length < 16) throw new RangeError("the dashboard's login token must be at least 16 characters");
  }

  /** A token for one start of the dashboard: 192 random bits. */
  static randomToken(): string {
    return randomBytes(24).toString("base64url");
  }

  tokenMatches(candidate: string | undefined): boolean {
    if (!candidate) return false;
    const a = Buffer.from(candidate);
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** A new cookie session after a correct token; its id goes in the cookie. */
  login(): { id: string; csrf: string } {
    const id = this.random(32);
    const csrf = this.random(24);
    this.sessions.set(id, { csrf, createdAt: this.options.clock.now() });
    return { id, csrf };
  }

  logout(id: string): void {
    this.sessions.delete(id);
  }

  /** The caller a request's Authorization header or cookie proves, or undefined. */
  caller(headers: { authorization?: string | undefined; cookie?: string | undefined }): Caller | undefined {
    const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? "")?.[1];
    if (bearer !== undefined) return this.tokenMatches(bearer) ? { kind: "bearer" } : undefined;
    const id = cookieValue(headers.cookie, SESSION_COOKIE);
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.options.clock.now() - session.createdAt > (this.options.sessionTtlMs ?? 12 * 3600_000)) {
      this.sessions.delete(id);
      return undefined;
    }
    return { kind: "session", id, csrf: session.csrf };
  }

  /** Whether a state-changing request carries what its caller needs: a session its own CSRF token, a bearer nothing. */
  csrfOk(caller: Caller, submitted: string | undefined): boolean {
    if (caller.kind === "bearer") return true;
    if (!submitted) return false;
    const a = Buffer.from(submitted);
    const b = Buffer.from(caller.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  sessionCookie(id: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
  }

  private random(bytes: number): string {
    return this.options.random?.(bytes) ?? randomBytes(bytes).toString("base64url");
  }
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
