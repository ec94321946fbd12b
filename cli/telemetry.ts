import { AsyncLocalStorage } from "node:async_hooks";
import { hostname } from "node:os";
import { context, ROOT_CONTEXT, type Context, type ContextManager, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace";
// not declared by us: it comes with @opentelemetry/resources (declared), which needs it; the stable names, not strings
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE } from "@opentelemetry/semantic-conventions";
import type { Logger } from "pino";
import type { TelemetryConfig } from "../config/index.js";

/** A process's traces: the tracer its parts start GenAI spans with, or none when telemetry is off. */
export interface Telemetry {
  tracer: Tracer | undefined;
  /** the OTLP/HTTP exporter; undefined when `telemetry.otlp` is not set (nothing is made then) */
  exporter: SpanExporter | undefined;
  /** exports what is still buffered, then shuts the exporter down */
  stop(): Promise<void>;
}

const OFF: Telemetry = { tracer: undefined, exporter: undefined, stop: async () => undefined };

/** How often buffered spans go out: short enough that a trace shows while the operator still looks at the task. */
const EXPORT_DELAY_MS = 1_000;

/** The processes that export spans; each is its own `service.name` (`natsfleet-<role>`). */
export type TracedRole = "agent" | "router" | "tools" | "governance";

export interface TracedProcess {
  role: TracedRole;
  /** the fleet's subject prefix: the resource's `service.namespace`, so two fleets sharing a collector stay apart */
  prefix: string;
  log: Logger;
  /** more resource attributes (an agent process: the agents it hosts) */
  attributes?: Record<string, string | string[]>;
}

/**
 * The resource every span of this process carries. One `service.name` per role rather than per agent or host: an
 * operator picks "natsfleet-router" in Jaeger or Tempo and sees every router; the instance (host:pid) tells copies of a
 * role apart, the namespace tells fleets apart, and agents are found by `gen_ai.agent.id` on their spans.
 */
export function fleetResourceAttributes(role: TracedRole, prefix: string, extra: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  return {
    [ATTR_SERVICE_NAME]: `natsfleet-${role}`,
    [ATTR_SERVICE_NAMESPACE]: prefix,
    [ATTR_SERVICE_INSTANCE_ID]: `${hostname()}:${process.pid}`,
    "natsfleet.fleet.prefix": prefix,
    ...extra,
  };
}

/**
 * Made once where a process is wired (`fleet run agent|router|tools|governance`). With `telemetry.otlp` set: a tracer
 * provider exporting to the endpoint as OTLP/HTTP JSON under the process's resource, and an AsyncLocalStorage context
 * manager so the span active in an agent's task is the parent of its model calls (and their `traceparent` header).
 * Without it: nothing at all.
 */
export function startTelemetry(config: TelemetryConfig, traced: TracedProcess): Telemetry {
  const otlp = config.otlp;
  if (!otlp) return OFF;
  const exporter = new OTLPTraceExporter({ url: otlp.endpoint, headers: otlp.headers, timeoutMillis: otlp.timeoutMs });
  const attributes = fleetResourceAttributes(traced.role, traced.prefix, traced.attributes);
  const provider = new TracerProvider({
    // the SDK's own attributes (telemetry.sdk.*) kept, its `unknown_service` name replaced
    resource: defaultResource().merge(resourceFromAttributes(attributes)),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: EXPORT_DELAY_MS })],
  });
  const manager = new AsyncContextManager().enable();
  context.setGlobalContextManager(manager);
  traced.log.info({ endpoint: otlp.endpoint, service: attributes[ATTR_SERVICE_NAME] }, "OpenTelemetry traces exported over OTLP/HTTP");
  return {
    tracer: provider.getTracer("natsfleet"),
    exporter,
    stop: async () => {
      await provider.shutdown().catch((err: unknown) => traced.log.warn({ err }, "spans not exported at stop"));
      context.disable();
    },
  };
}

/** The active context per async call chain (what `@opentelemetry/context-async-hooks` does, in a few lines). */
export class AsyncContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== "function") return target;
    const manager = this;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.storage.disable();
    return this;
  }
}
