/** Turns a child's pino JSON line into one short human line for the `fleet up` terminal; other lines pass unchanged. */
const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const OMIT = new Set(["level", "time", "pid", "hostname", "name", "msg", "component", "agentId", "v"]);

export function humanLine(childId: string, line: string): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (!parsed || typeof parsed !== "object") return `${childId.padEnd(9)} ${line}`;
    entry = parsed as Record<string, unknown>;
  } catch {
    return `${childId.padEnd(9)} ${line}`;
  }
  const time = typeof entry.time === "number" ? new Date(entry.time).toISOString().slice(11, 19) : "";
  const level = typeof entry.level === "number" && entry.level >= 40 ? ` ${LEVELS[entry.level] ?? entry.level}` : "";
  const fields = Object.entries(entry)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${time} ${childId.padEnd(9)}${level} ${String(entry.msg ?? "")}${fields ? "  " + fields : ""}`;
}
