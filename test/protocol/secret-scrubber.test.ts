import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FleetError, REDACTED, SecretScrubber, secretEnvNames, secrets } from "../../protocol/index.js";

/** The one scrubber: secrets known by value and secrets known by shape never leave the process. */

// fake secrets of each kind, shaped like the real ones
const SEED = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTCM";
const OPENAI = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123456789";
const TELEGRAM = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const CONFIGURED = "plain-looking-webhook-secret-42";

describe("secret scrubber", () => {
  it("replaces secrets by shape: nkey seeds, sk- keys, bot tokens (also inside a bot URL), bearer values", () => {
    const s = new SecretScrubber();
    const text = `seed ${SEED}; key=${OPENAI}; GET https://api.telegram.org/bot${TELEGRAM}/getUpdates failed; Authorization: Bearer abcdefghijkl1234`;
    const out = s.scrub(text);
    for (const secret of [SEED, OPENAI, TELEGRAM, "abcdefghijkl1234"]) assert.ok(!out.includes(secret), `${secret} is gone: ${out}`);
    assert.ok(out.includes("https://api.telegram.org/bot"), "the rest of the line stays readable");
  });

  it("replaces configured secret values of any shape, also JSON-escaped, and ignores short values", () => {
    const s = new SecretScrubber();
    s.add(CONFIGURED, "a\"quoted\\secret!", "short", undefined, "");
    assert.equal(s.scrub(`tool input ${CONFIGURED}`), `tool input ${REDACTED}`);
    assert.equal(s.scrub(JSON.stringify({ v: 'a"quoted\\secret!' })), JSON.stringify({ v: REDACTED }));
    assert.equal(s.scrub("short stays"), "short stays");
  });

  it("scrubs deep copies of records, leaving bytes, numbers and clean subtrees as they were", () => {
    const s = new SecretScrubber();
    s.add(CONFIGURED);
    const clean = { a: 1, b: ["x"] };
    const raw = new Uint8Array([1]);
    const record = { clean, raw, input: { headers: [`token ${CONFIGURED}`] }, n: 3 };
    const out = s.scrubDeep(record);
    assert.notEqual(out, record, "a changed record is a copy");
    assert.equal(out.clean, clean);
    assert.equal(out.raw, raw);
    assert.deepEqual(out.input.headers, [`token ${REDACTED}`]);
    assert.equal(record.input.headers[0], `token ${CONFIGURED}`, "the original is untouched");
    assert.equal(s.scrubDeep(clean), clean, "a clean record is not copied");
  });

  it("FleetError payloads crossing the wire are scrubbed, the error itself keeps its text for the log", () => {
    secrets.add(CONFIGURED);
    const err = new FleetError("TOOL_FAILED", `webhook https://hooks.example/${CONFIGURED} said 401 (key ${OPENAI})`, {
      details: [{ path: "input.url", message: `bad ${CONFIGURED}` }],
    });
    const payload = JSON.stringify(err.toPayload());
    assert.ok(!payload.includes(CONFIGURED) && !payload.includes(OPENAI), payload);
    assert.ok(err.message.includes(CONFIGURED));
  });

  it("a broker refusal becomes PERMISSION_DENIED without the broker's text", () => {
    const refusal = new Error('Permissions Violation for Publish to "$JS.API.STREAM.MSG.GET.FLEET_TASKS"');
    refusal.name = "PermissionViolationError";
    const err = FleetError.from(new Error("request failed", { cause: refusal }));
    assert.equal(err.code, "PERMISSION_DENIED");
    assert.equal(err.retryable, false);
    assert.ok(!err.toPayload().message.includes("$JS"), err.message);
  });

  it("finds secret-holding variables by name", () => {
    const names = secretEnvNames({ OPENAI_API_KEY: "x", TELEGRAM_BOT_TOKEN: "y", HOME: "/root", DISCORD_PUBLIC_KEY: "z", NATS_URL: "n" });
    assert.deepEqual(names.sort(), ["OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN"]);
  });
});
