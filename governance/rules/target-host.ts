/**
 * The host a target names, normalised the way a connection would resolve it, so the allow list cannot be sidestepped by
 * spelling: "HTTPS://Example.COM./x" and "example.com" are one host, "127.1" is 127.0.0.1, "ex@mple" in user info is not
 * the host, IDNs become punycode. WHATWG URL parsing does the normalising; everything is funnelled through it.
 */

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const SPECIAL_SCHEMES: ReadonlySet<string> = new Set(["http:", "https:", "ws:", "wss:", "ftp:", "file:"]);
const BARE_IPV6 = /^[0-9a-f]*:[0-9a-f:.]*$/i;

/** undefined when no host can be read from the text (the allow-list rule then refuses the target). */
export function targetHost(target: string): string | undefined {
  const text = target.trim();
  if (text === "") return undefined;
  if (/^mailto:/i.test(text)) return emailDomain(text.slice("mailto:".length));
  // read as a URL whenever a URL parser would: "http:\\evil.test" is evil.test to fetch(). "localhost:8080" also
  // parses (scheme "localhost:") but names no authority, so it falls through to the host:port reading below.
  const url = parseUrl(text);
  if (url && (SPECIAL_SCHEMES.has(url.protocol) || SCHEME.test(text))) return normalizeHost(url.hostname);
  if (text.includes("@")) return emailDomain(text);
  // "::1" and other IPv6 literals without brackets: a URL needs them bracketed
  if (BARE_IPV6.test(text) && (text.match(/:/g) ?? []).length >= 2) return hostOfUrl(`http://[${text}]`);
  // a plain host, "host:port" or "host/path": read as the host of an http URL
  return hostOfUrl(`http://${text}`);
}

/**
 * "Jane <jane@Example.com>", "jane@example.com?subject=x": the domain after the "@". A text holding more than one
 * address ("a@evil.com, b@example.com") reads as none: checking only one of them would let the other through.
 */
function emailDomain(text: string): string | undefined {
  if ((text.match(/@/g) ?? []).length !== 1) return undefined;
  const address = (/<([^<>]*)>/.exec(text)?.[1] ?? text).trim();
  if (/[\s,;<>]/.test(address)) return undefined;
  const domain = address.slice(address.indexOf("@") + 1).split(/[?#/]/)[0] ?? "";
  if (domain === "" || /[\s:@]/.test(domain)) return undefined;
  return hostOfUrl(`http://${domain}`);
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function hostOfUrl(text: string): string | undefined {
  const url = parseUrl(text);
  return url ? normalizeHost(url.hostname) : undefined;
}

/** Lower case, no trailing dot, IPv6 without brackets: the form allow-list entries are compared in. */
export function normalizeHost(host: string): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
  // the URL parser lets some odd characters through (a comma, say); a host a tool might split is no host
  return /^[a-z0-9_.-]+$/.test(bare) || /^[0-9a-f:.]+$/.test(bare) ? bare : undefined;
}

/**
 * Exact match, or "*.example.com" for any subdomain at any depth — not example.com itself, which must be listed on its
 * own. Entries are normalised like hosts ("Example.COM." = "example.com", "[::1]" = "::1").
 */
export function hostAllowed(host: string, allowList: readonly string[]): boolean {
  return allowList.some((entry) => {
    if (entry.startsWith("*.")) {
      const parent = normalizeEntry(entry.slice(2));
      return parent !== undefined && host.endsWith(`.${parent}`);
    }
    return normalizeEntry(entry) === host;
  });
}

function normalizeEntry(entry: string): string | undefined {
  const bare = normalizeHost(entry.trim());
  if (bare === undefined) return undefined;
  // an IPv6 entry is already normal once brackets are off; a name or IPv4 goes through the URL parser like a target
  return bare.includes(":") ? (hostOfUrl(`http://[${bare}]`) ?? bare) : (hostOfUrl(`http://${bare}`) ?? bare);
}
