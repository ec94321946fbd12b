/*
 * Word classes: words that name the same kind of work share one extra feature, so a title that uses a word no label
 * used ("hijacked", "ransomware") still lands near the labels that used its class-mates. The classes are
 * written from the reference fleet's work (DESIGN.md), not from any measured title; a word is matched by its start,
 * so "deploy" covers "deploys", "deployed", "deployment". The model learns how much each class counts.
 */

const CLASSES: Readonly<Record<string, readonly string[]>> = {
  liveness: ["up", "down", "alive", "online", "offline", "reachab", "respond", "answer", "ping", "uptime", "heartbeat", "health", "helth", "status", "stauts", "load", "green", "running", "ok", "working"],
  resources: ["disk", "ram", "memory", "cpu", "swap", "inode", "space", "load"],
  question: ["is", "are", "does", "did", "has", "have", "was", "were", "how", "which", "when", "who", "what"],
  lookup: ["check", "chek", "verify", "confirm", "show", "list", "count", "get", "tell", "give", "fetch", "read", "look", "see", "view", "query", "poll", "probe", "current", "now", "right", "still", "yet", "today", "last", "latest", "many", "much", "left", "free", "quick", "quickly"],
  change: ["fix", "set", "setup", "install", "configur", "add", "enable", "disable", "remove", "delete", "clean", "clear", "rotate", "renew", "upgrade", "update", "apply", "move", "switch", "block", "lock", "resize", "expand", "retry", "replace", "issue", "revoke", "kill", "scale", "tune", "open", "close", "create", "run", "rerun", "resync", "repair", "reinstall", "mount", "unblock", "flush", "drain", "reboot", "compile", "package"],
  routing: ["route", "routing", "triage", "classif", "categor", "label", "tag", "sort", "forward", "queue", "spam"],
  deploy: ["deploy", "deplyo", "redeploy", "release", "rollout", "roll", "rollback", "revert", "ship", "promote", "publish", "live", "hotfix", "build", "rebuild", "restart", "reload", "bounce", "migrat", "provision", "container", "docker", "image", "ci", "pipeline", "server", "host", "node", "nginx"],
  security: ["security", "securty", "secur", "scan", "vulnerab", "cve", "audit", "patch", "harden", "firewall", "owasp", "pentest", "penetration", "port", "ports", "tls", "ssl", "cert", "certificate", "hsts", "header", "headers", "credential", "secret", "secrets", "token", "key", "keys", "malware", "brute"],
  monitoring: ["monitor", "alert", "alerting", "watch", "log", "logs", "prometheus", "metric", "latency", "error", "errors", "crash", "debug", "troubleshoot", "diagnos", "fix", "backup", "back", "restore", "cache", "cdn", "purge"],
  content: ["write", "writ", "draft", "blog", "post", "article", "copy", "newsletter", "email", "sequence", "headline", "tweet", "social", "linkedin", "proofread", "edit", "rewrite", "translat", "locali", "outline", "guide", "tutorial", "faq", "changelog", "description"],
  seo: ["seo", "keyword", "meta", "rank", "ranking", "search", "backlink", "link", "links", "snippet", "title", "tags", "alt", "crawl", "impression", "serp", "heading"],
  analytics: ["analy", "anlay", "traffic", "visit", "visitor", "bounce", "conversion", "convert", "funnel", "revenue", "signup", "click", "open", "rate", "report", "trend", "anomal", "chart", "dashboard", "growth", "metric", "segment", "compare", "week", "month", "research", "competitor", "advisor", "summar"],
  orchestration: ["agent", "agents", "fleet", "assign", "reassign", "hand", "delegat", "orchestrat", "coordinat", "prioriti", "reprioriti", "schedule", "reschedule", "plan", "duties", "duty", "backlog", "conflict", "disagree", "proposal", "proposals", "findings", "operator", "team", "split", "sequence"],
  sales: ["lead", "leads", "prospect", "client", "customer", "deal", "deals", "crm", "quote", "offer", "renewal", "renew", "negotiat", "outreach", "follow", "folow", "pitch", "demo", "trial", "churn", "cancel", "upsell", "win", "objection", "discount", "sales", "procurement", "questionnaire", "qualify", "score"],
  reasoning: ["why", "reason", "root", "cause", "trade", "tradeoff", "weigh", "evaluate", "design", "architect", "schema", "spec", "specification", "refactor", "review", "estimate", "forecast", "predict", "project", "figure", "think", "explain", "option", "options", "vs", "build", "buy"],
  strategy: ["should", "strateg", "decide", "decision", "wether", "whether", "future", "vision", "long", "year", "years", "company", "business", "acqui", "merge", "buyout", "takeover", "invest", "investor", "raise", "sell", "exit", "pivot", "rebrand", "market", "expand", "positioning", "board", "shut", "close", "discontinu", "kill", "layoff", "budget"],
  crisis: ["crisis", "emergency", "urgent", "breach", "breached", "leak", "leaked", "hack", "hacked", "hijack", "attack", "ransom", "ransomware", "exposed", "compromis", "stolen", "defaced", "fraud", "lawsuit", "sue", "sued", "legal", "lawyer", "regulator", "gdpr", "press", "journalist", "reporter", "viral", "outrage", "backlash", "apolog", "statement", "disclos", "notif", "reputation", "frozen", "exploit", "everyone", "everything"],
};

/** Each class's prefixes, longest first, for the lookup. */
const ENTRIES: ReadonlyArray<{ prefix: string; cls: number }> = Object.values(CLASSES)
  .flatMap((prefixes, cls) => prefixes.map((prefix) => ({ prefix, cls })))
  .sort((a, b) => b.prefix.length - a.prefix.length);

export const WORD_CLASS_COUNT = Object.keys(CLASSES).length;

/** The classes a word belongs to (short prefixes of 1–3 letters match the whole word only), as bits. */
export function wordClasses(word: string): number {
  const known = MEMO.get(word);
  if (known !== undefined) return known;
  let bits = 0;
  for (const { prefix, cls } of ENTRIES) {
    if (prefix.length <= 3 ? word === prefix || word === `${prefix}s` : word.startsWith(prefix)) bits |= 1 << cls;
  }
  // titles repeat their words, so the lookup is remembered; the memo is bounded, a stream of new words cannot grow it
  if (MEMO.size >= MEMO_LIMIT) MEMO.clear();
  MEMO.set(word, bits);
  return bits;
}

const MEMO = new Map<string, number>();
const MEMO_LIMIT = 20_000;
