import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { connectNats, ensureFleetResources, FleetNames, type FleetResources } from "../../protocol/index.js";
import { NightlyBackup } from "../../supervisor/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const at = (iso: string) => Date.parse(iso);

describe("NightlyBackup", () => {
  let server: NatsServer;
  let resources: FleetResources;
  let close: () => Promise<void>;
  let dir: string;
  const names = new FleetNames("fleet");
  before(async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "nightly-test" });
    resources = await ensureFleetResources(nc, names);
    dir = mkdtempSync(join(tmpdir(), "fleet-backups-"));
    const clock = { now: () => at("2026-11-22T12:00:00Z") };
    backup = new NightlyBackup({ nc, names, kv: resources.kv, codec: "msgpack", dir, at: "02:00", timeZone: "Europe/Berlin", keep: 2, clock, log: pino({ level: "silent" }) });
    setNow = (iso) => (clock.now = () => at(iso));
    close = () => nc.close();
  });
  after(async () => {
    await close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  let backup: NightlyBackup;
  let setNow: (iso: string) => void;

  it("writes one backup at 02:00 local, not twice, coalesces missed nights, and keeps the newest two", async () => {
    await resources.kv.tasks.put("scout.t-1", new Uint8Array([1, 2, 3]));
    assert.equal(await backup.tick(), undefined, "first sight: nothing was due yet");
    setNow("2026-11-23T00:59:00Z"); // 01:59 Berlin
    assert.equal(await backup.tick(), undefined);
    setNow("2026-11-23T01:00:30Z"); // 02:00:30 Berlin
    const first = await backup.tick();
    assert.equal(first, join(dir, "2026-11-23"));
    assert.ok(existsSync(join(first!, "manifest.json")));
    assert.equal(await backup.tick(), undefined, "once per night");

    setNow("2026-11-26T03:00:00Z"); // down for two nights: one catch-up backup, for the latest night
    assert.equal(await backup.tick(), join(dir, "2026-11-26"));
    setNow("2026-11-27T01:05:00Z");
    assert.equal(await backup.tick(), join(dir, "2026-11-27"));
    assert.deepEqual(readdirSync(dir).sort(), ["2026-11-26", "2026-11-27"], "only the newest two are kept");
  });
});
