import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, McpError, type Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import { z } from "zod";
import type { McpServerConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";
import type { McpCallOptions, McpCaller } from "./mcp-tool.js";

/** Restart delays after a server dies or cannot be reached; the last one repeats. */
export const DEFAULT_RESTART_MS: readonly number[] = [500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000];

/** The delay before restart attempt `attempt` (0-based): the schedule's entry, its last entry once past the end. */
export function restartDelay(attempt: number, schedule: readonly number[] = DEFAULT_RESTART_MS): number {
  return schedule[Math.min(attempt, schedule.length - 1)] ?? 1_000;
}

export interface McpConnectionOptions {
  server: string;
  config: McpServerConfig;
  /** the tool host's environment: the values of the variables the config names (a stdio server's env, a token) */
  env: NodeJS.ProcessEnv;
  log: Logger;
  restartMs?: readonly number[];
  /** the server's tools, listed at connect, after every restart and on its list-changed notification */
  onTools: (tools: Tool[]) => Promise<void>;
  /** the server went away (false) or is back (true) */
  onAvailability: (available: boolean) => Promise<void>;
}

/** Any tools/call answer: the fleet parses it itself (mcp-tool.ts), so a malformed one is a typed error, not a crash. */
const AnyResult = z.looseObject({});

/**
 * One MCP server, kept connected: a stdio child the tool host starts, or a streamable HTTP endpoint. When the child exits
 * or the endpoint stops answering, the tools stay served but answer TOOL_SOURCE_UNAVAILABLE (retryable) while the
 * connection is restarted with backoff; once back, the tools are listed again (they may have changed).
 */
export class McpConnection implements McpCaller {
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private available = false;

  constructor(private readonly o: McpConnectionOptions) {}

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** The first connection attempt; a failure schedules the next instead of failing the tool host. */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }

  async call(name: string, args: unknown, options: McpCallOptions): Promise<unknown> {
    const client = this.client;
    if (!client) throw new FleetError("TOOL_SOURCE_UNAVAILABLE", `MCP server ${this.o.server} is not connected (restarting); the call was not sent`, { retryAfterMs: restartDelay(this.attempts, this.o.restartMs) });
    try {
      return await client.request(
        { method: "tools/call", params: { name, arguments: isRecord(args) ? args : {}, ...(options.idempotencyKey ? { _meta: { "io.natsfleet/idempotency-key": options.idempotencyKey } } : {}) } },
        AnyResult,
        { signal: options.signal, timeout: options.timeoutMs },
      );
    } catch (err) {
      throw this.callFailure(name, err, options);
    }
  }

  /**
   * Why a call failed, as the fleet names it. The server's own JSON-RPC error is TOOL_FAILED (it answered). A call lost
   * on the way (the server died, the connection broke, no answer in time) may or may not have had its effect: for a
   * read-only or idempotent tool asking again is safe (TOOL_SOURCE_UNAVAILABLE), for any other the outcome is unknown
   * and it is never run again under its key (TOOL_OUTCOME_UNKNOWN). A request refused before it left is always safe.
   */
  private callFailure(name: string, err: unknown, options: McpCallOptions): FleetError {
    const label = `${this.o.server}.${name}`;
    if (err instanceof FleetError) return err;
    const lost = (why: string) => {
      if (options.repeatable) return new FleetError("TOOL_SOURCE_UNAVAILABLE", `${label}: ${why}; the tool is read-only or idempotent, so asking again is safe`, { cause: err, retryAfterMs: restartDelay(this.attempts, this.o.restartMs) });
      return new FleetError("TOOL_OUTCOME_UNKNOWN", `${label}: ${why}; it may or may not have had its effect, so it is not run again`, { cause: err });
    };
    if (err instanceof McpError) {
      if (err.code === ErrorCode.ConnectionClosed) {
        this.lostConnection();
        return lost("the server went away during the call");
      }
      if (err.code === ErrorCode.RequestTimeout) return lost(`no answer within ${options.timeoutMs} ms`);
      return new FleetError("TOOL_FAILED", `${label} failed: ${err.message}`, { cause: err });
    }
    if (options.signal.aborted) return lost("the call was given up");
    if (refusedBeforeSending(err)) {
      this.lostConnection();
      return new FleetError("TOOL_SOURCE_UNAVAILABLE", `${label}: the server refuses connections; the call was not sent`, { cause: err, retryAfterMs: restartDelay(this.attempts, this.o.restartMs) });
    }
    this.lostConnection();
    return lost(`the connection failed (${err instanceof Error ? err.message : String(err)})`);
  }

  private connect(): Promise<void> {
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connectOnce(): Promise<void> {
    if (this.stopped) return;
    const client = new Client(
      { name: "natsfleet-tool-host", version: "1.0.0" },
      { capabilities: {}, listChanged: { tools: { autoRefresh: false, debounceMs: 50, onChanged: () => void this.relist(client) } } },
    );
    const transport = this.transport();
    client.onclose = () => {
      if (this.client === client) this.lostConnection();
    };
    try {
      await client.connect(transport);
      const tools = await listAll(client);
      if (this.stopped) {
        await client.close().catch(() => undefined);
        return;
      }
      this.client = client;
      this.attempts = 0;
      this.o.log.info({ server: this.o.server, tools: tools.length }, "MCP server connected");
      await this.o.onTools(tools);
      await this.setAvailable(true);
    } catch (err) {
      await client.close().catch(() => undefined);
      this.o.log.warn({ err, server: this.o.server, attempt: this.attempts }, "MCP server could not be reached; retrying with backoff");
      await this.setAvailable(false);
      this.scheduleRestart();
    }
  }

  private transport(): Transport {
    const c = this.o.config;
    if (c.url !== undefined) {
      const token = c.tokenEnv ? this.o.env[c.tokenEnv] : undefined;
      return new StreamableHTTPClientTransport(new URL(c.url), token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {});
    }
    const env: Record<string, string> = getDefaultEnvironment();
    for (const name of c.env ?? []) {
      const value = this.o.env[name];
      if (value !== undefined) env[name] = value;
      else this.o.log.warn({ server: this.o.server, variable: name }, "a variable the MCP server is to get is not set");
    }
    const transport = new StdioClientTransport({ command: c.command ?? "", args: c.args ?? [], env, ...(c.cwd ? { cwd: c.cwd } : {}), stderr: "pipe" });
    // the server's own log lines, in ours
    transport.stderr?.on("data", (chunk: Buffer) => this.o.log.debug({ server: this.o.server, stderr: chunk.toString("utf8").slice(0, 2_000) }, "MCP server stderr"));
    return transport;
  }

  private async relist(client: Client): Promise<void> {
    if (this.client !== client) return;
    try {
      const tools = await listAll(client);
      this.o.log.info({ server: this.o.server, tools: tools.length }, "MCP server's tool list changed; listed again");
      await this.o.onTools(tools);
    } catch (err) {
      this.o.log.warn({ err, server: this.o.server }, "could not list the MCP server's tools after its list-changed notification");
    }
  }

  /** The server is gone: its tools answer TOOL_SOURCE_UNAVAILABLE until a restart succeeds. */
  private lostConnection(): void {
    const client = this.client;
    if (!client || this.stopped) return;
    this.client = undefined;
    this.o.log.warn({ server: this.o.server }, "MCP server went away; restarting it with backoff");
    void client.close().catch(() => undefined);
    void this.setAvailable(false);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopped || this.timer) return;
    const delay = restartDelay(this.attempts++, this.o.restartMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delay);
  }

  private async setAvailable(available: boolean): Promise<void> {
    if (this.available === available) return;
    this.available = available;
    await this.o.onAvailability(available).catch((err: unknown) => this.o.log.warn({ err, server: this.o.server }, "could not record the MCP server's availability"));
  }
}

/** Every page of the server's tool list. */
async function listAll(client: Client): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A connection refused (or no such host): the request never reached a server. */
function refusedBeforeSending(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = "code" in e ? e.code : undefined;
    if (code === "ECONNREFUSED" || code === "ENOTFOUND") return true;
    e = e.cause;
  }
  return false;
}
