import { z } from "zod";
import { strict } from "./strict-object.js";

/*
 * OpenTelemetry traces of the fleet's work, following the GenAI semantic conventions (invoke_agent, chat, execute_tool
 * spans). Off unless `telemetry.otlp` is set: without it no tracer provider and no exporter is made, and no span is
 * started anywhere.
 */

export const OtlpConfig = strict({
  /** the OTLP/HTTP traces endpoint (JSON encoding), e.g. http://127.0.0.1:4318/v1/traces */
  endpoint: z.string().url(),
  /** sent with every export (an API key as `${OTLP_TOKEN}`) */
  headers: z.record(z.string(), z.string()).default({}),
  /** how long an export may take before it is given up */
  timeoutMs: z.number().int().positive().default(10_000),
});
export type OtlpConfig = z.infer<typeof OtlpConfig>;

export const TelemetryConfig = strict({
  otlp: OtlpConfig.optional(),
});
export type TelemetryConfig = z.infer<typeof TelemetryConfig>;
