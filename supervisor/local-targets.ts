import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "../protocol/index.js";

/*
 * Local targets: things `fleet up` starts on this machine on ports it picks at start (the embedded server's monitoring
 * endpoint, the demo site), so a config cannot name their URLs. A duty's input names them as `{{local.<name>}}`; the
 * scheduler fills in the URL from `.fleet/<name>.url` when it sends the run, so a demo site restarted on another port is
 * found at the next run.
 */

const PLACEHOLDER = /\{\{\s*local\.([a-z][a-z0-9-]*)\s*\}\}/g;

/** The URL of a local target, or undefined when nothing here serves it. */
export type LocalTargets = (name: string) => string | undefined;

/** Local targets as `fleet up` records them: `<fleetDir>/<name>.url`, written by whatever serves the target. */
export function localTargetsIn(fleetDir: string): LocalTargets {
  return (name) => {
    const file = join(fleetDir, `${name}.url`);
    return existsSync(file) ? readFileSync(file, "utf8").trim() || undefined : undefined;
  };
}

/** The local targets a value (a duty's input) names, e.g. `["demo-site"]`. */
export function localTargetNames(value: unknown): string[] {
  if (typeof value === "string") return [...value.matchAll(PLACEHOLDER)].map((m) => m[1] ?? "");
  if (Array.isArray(value)) return value.flatMap(localTargetNames);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(localTargetNames);
  return [];
}

/** `value` with every `{{local.<name>}}` replaced by the target's URL; a target nothing serves is a CONFIG_INVALID. */
export function withLocalTargets<T>(value: T, targets: LocalTargets | undefined): T {
  return substitute(value, targets) as T;
}

function substitute(value: unknown, targets: LocalTargets | undefined): unknown {
  if (typeof value === "string") {
    return value.replace(PLACEHOLDER, (_, name: string) => {
      const url = targets?.(name);
      if (url === undefined) throw new FleetError("CONFIG_INVALID", `{{local.${name}}}: no local target "${name}" is running here (\`fleet up\` starts the default fleet's)`);
      return url;
    });
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, targets));
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, targets)]));
  return value;
}
