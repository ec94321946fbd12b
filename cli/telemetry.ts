import { AsyncLocalStorage } from "node:async_hooks";
import { context, ROOT_CONTEXT, type Context, type ContextManager, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace";
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

/**
 * Made once where a process is wired (`fleet run agent|router`). With `telemetry.otlp` set: a tracer provider exporting
 * to the endpoint as OTLP/HTTP JSON, and an AsyncLocalStorage context manager so the span active in an agent's task is
 * the parent of its model calls (and their `traceparent` header). Without it: nothing at all.
 */
export function startTelemetry(config: TelemetryConfig, process: { service: string; log: Logger }): Telemetry {
  const otlp = config.otlp;
  if (!otlp) return OFF;
  const exporter = new OTLPTraceExporter({ url: otlp.endpoint, headers: otlp.headers, timeoutMillis: otlp.timeoutMs });
  const provider = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: EXPORT_DELAY_MS })] });
  const manager = new AsyncContextManager().enable();
  context.setGlobalContextManager(manager);
  process.log.info({ endpoint: otlp.endpoint, service: process.service }, "OpenTelemetry traces exported over OTLP/HTTP");
  return {
    tracer: provider.getTracer("natsfleet"),
    exporter,
    stop: async () => {
      await provider.shutdown().catch((err: unknown) => process.log.warn({ err }, "spans not exported at stop"));
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
