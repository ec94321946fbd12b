import { z } from "zod";
import { strict } from "./strict-object.js";

/*
 * The operator's console: where `fleet dashboard` and `fleet up` serve the dashboard and /metrics, and how a browser
 * logs in. Loopback by default: a dashboard that can approve proposals is not put on a network by accident.
 */

const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable, e.g. FLEET_DASHBOARD_TOKEN");

export const DashboardConfig = strict({
  /** false: `fleet up` does not start it (`fleet dashboard` still runs it by hand) */
  enabled: z.boolean().default(true),
  host: z.string().min(1).default("127.0.0.1"),
  /** 0 picks a free port (the URL printed at start says which) */
  port: z.number().int().min(0).max(65535).default(7070),
  /**
   * the NAME of the variable holding the login token; unset (or the variable empty): a random token per start, printed
   * with the URL. Prometheus sends it as a bearer token.
   */
  tokenEnv: EnvName.optional(),
  /** days of USAGE the costs page charts (7 and this) */
  costDays: z.number().int().min(7).max(90).default(30),
});
export type DashboardConfig = z.infer<typeof DashboardConfig>;
