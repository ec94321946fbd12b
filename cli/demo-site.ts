import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Logger } from "pino";
import { DEMO_SITE_CONTROL } from "../governance/index.js";

/**
 * The default fleet's demo site: a tiny page on 127.0.0.1 that `fleet up` serves as a supervised child, so ship's duty
 * has a site of its own to watch on a laptop with no network. `fleet demo break` leaves a flag file beside it and the
 * site answers 503 until `fleet demo fix` removes it (the flag is read on every request, so a restarted site stays
 * broken). A POST to its control path (`/.fleet/restart`, what the PROPOSE tool `demo_site_restart` calls) clears the
 * flag the same way, and `/.fleet/break` sets it (that tool's rollback); only 127.0.0.1 can reach them. Its URL is written to `<dir>/demo-site.url`, where the scheduler finds it (`{{local.demo-site}}`).
 */
export class DemoSite {
  private server: Server | undefined;

  constructor(private readonly options: { dir: string; port?: number; log: Logger }) {}

  static urlFile(dir: string): string {
    return join(dir, "demo-site.url");
  }

  static brokenFlag(dir: string): string {
    return join(dir, "demo-site.broken");
  }

  get url(): string | undefined {
    const address = this.server?.address();
    return address && typeof address === "object" ? `http://127.0.0.1:${address.port}/` : undefined;
  }

  async start(): Promise<string> {
    const { dir, log } = this.options;
    mkdirSync(dir, { recursive: true });
    const server = createServer((req, res) => {
      const control = req.method === "POST" ? controlAction(req.url) : undefined;
      if (control) {
        const wasBroken = existsSync(DemoSite.brokenFlag(dir));
        if (control === "restart") rmSync(DemoSite.brokenFlag(dir), { force: true });
        else writeFileSync(DemoSite.brokenFlag(dir), `broken again by the rollback of demo_site_restart at ${new Date().toISOString()}\n`);
        log.info({ action: control, wasBroken }, "demo site control");
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ wasBroken, broken: control === "break" }));
        return;
      }
      if (existsSync(DemoSite.brokenFlag(dir))) {
        res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "60" });
        res.end("demo site is down (fleet demo fix brings it back)\n");
        return;
      }
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" });
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>natsfleet demo site</title><meta name="description" content="The site the default fleet watches."></head><body><h1>natsfleet demo site</h1><p>${req.method} ${req.url ?? "/"}: all is well.</p></body></html>\n`);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port ?? 0, "127.0.0.1", () => resolve());
    });
    const url = this.url ?? "";
    writeFileSync(DemoSite.urlFile(dir), url + "\n");
    log.info({ url, broken: existsSync(DemoSite.brokenFlag(dir)) }, "demo site serving");
    return url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    rmSync(DemoSite.urlFile(this.options.dir), { force: true });
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function controlAction(url: string | undefined): "restart" | "break" | undefined {
  if (url === DEMO_SITE_CONTROL.restart) return "restart";
  if (url === DEMO_SITE_CONTROL.break) return "break";
  return undefined;
}
