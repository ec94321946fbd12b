import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unpack } from "msgpackr";
import {
  ERROR_CATALOGUE,
  ErrorPayload,
  FleetError,
  FleetErrorCode,
  Message,
  Part,
  SendMessageRequest,
  Task,
  decode,
  decodeUnknown,
  encode,
  formatPath,
  replySchema,
  type CodecName,
} from "../../protocol/index.js";

const CODECS: CodecName[] = ["msgpack", "json"];

// every byte value, so no base64 or UTF-8 shortcut can pass by accident
const RAW = Uint8Array.from({ length: 256 }, (_, i) => i);

function fullMessage(): Message {
  return {
    messageId: "msg-1",
    contextId: "ctx-1",
    taskId: "task-1",
    role: "ROLE_USER",
    parts: [
      { text: "summarise the attached report, ünïcødé included ✓", mediaType: "text/plain" },
      { raw: RAW, filename: "blob.bin", mediaType: "application/octet-stream", metadata: { source: "upload" } },
      { url: "https://example.com/reports/q3.pdf", filename: "q3.pdf", mediaType: "application/pdf" },
      { data: { count: 3, ratio: 0.25, negative: -40_000, flags: [true, false, null], nested: { list: [1, "two", { three: 3 }] } } },
    ],
    metadata: { priority: "high", attempt: 2 },
    referenceTaskIds: ["task-0"],
  };
}

function fullTask(): Task {
  return {
    id: "task-1",
    contextId: "ctx-1",
    status: {
      state: "TASK_STATE_COMPLETED",
      timestamp: "2025-01-02T03:04:05.000Z",
      message: { messageId: "status-1", role: "ROLE_AGENT", parts: [{ text: "done" }] },
    },
    artifacts: [
      {
        artifactId: "art-1",
        name: "summary",
        description: "the summary and its source bytes",
        parts: [{ text: "short summary" }, { raw: RAW.slice(0, 16) }, { data: [1, 2, 3] }],
        metadata: { tokens: 120 },
      },
    ],
    history: [fullMessage()],
    metadata: { tier: "workhorse" },
  };
}

/** Buffer and Uint8Array hold the same bytes but differ in prototype; compare values, not classes. */
function plainBytes(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plainBytes);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainBytes(v)]));
  return value;
}

function decodedOk<T>(result: { ok: true; value: T } | { ok: false; error: FleetError }): T {
  if (!result.ok) assert.fail(`expected a value, got ${result.error.code}: ${result.error.message}`);
  return result.value;
}

function decodedError(result: { ok: true; value: unknown } | { ok: false; error: FleetError }): FleetError {
  if (result.ok) assert.fail(`expected an error, got ${JSON.stringify(plainBytes(result.value))}`);
  assert.ok(result.error instanceof FleetError);
  return result.error;
}

/**
 * Walks one msgpack value as the spec defines it and returns where it ends; throws on truncation, on the never-used byte
 * 0xc1 and, unless `extensions` is set, on any extension type (0xc7-0xc9, 0xd4-0xd8), which a reader in another language
 * would not understand.
 */
function skipValue(bytes: Uint8Array, start: number, extensions: boolean): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = start;
  const take = (n: number): number => {
    if (at + n > bytes.length) throw new Error(`truncated at byte ${at}`);
    const from = at;
    at += n;
    return from;
  };
  const items = (count: number): number => {
    for (let i = 0; i < count; i++) at = skipValue(bytes, at, extensions);
    return at;
  };
  const ext = (dataLength: number): number => {
    if (!extensions) throw new Error(`extension type at byte ${start}`);
    take(1 + dataLength);
    return at;
  };
  const t = bytes[take(1)]!;
  if (t <= 0x7f || t >= 0xe0) return at;
  if (t <= 0x8f) return items((t & 0x0f) * 2);
  if (t <= 0x9f) return items(t & 0x0f);
  if (t <= 0xbf) return take(t & 0x1f), at;
  switch (t) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return at;
    case 0xc4:
    case 0xd9:
      return take(view.getUint8(take(1))), at;
    case 0xc5:
    case 0xda:
      return take(view.getUint16(take(2))), at;
    case 0xc6:
    case 0xdb:
      return take(view.getUint32(take(4))), at;
    case 0xc7:
      return ext(view.getUint8(take(1)));
    case 0xc8:
      return ext(view.getUint16(take(2)));
    case 0xc9:
      return ext(view.getUint32(take(4)));
    case 0xca:
    case 0xce:
    case 0xd2:
      return take(4), at;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return take(8), at;
    case 0xcc:
    case 0xd0:
      return take(1), at;
    case 0xcd:
    case 0xd1:
      return take(2), at;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return ext(1 << (t - 0xd4));
    case 0xdc:
      return items(view.getUint16(take(2)));
    case 0xdd:
      return items(view.getUint32(take(4)));
    case 0xde:
      return items(view.getUint16(take(2)) * 2);
    case 0xdf:
      return items(view.getUint32(take(4)) * 2);
    default:
      throw new Error(`byte 0x${t.toString(16)} at ${start} is not msgpack`);
  }
}

function isWellFormed(bytes: Uint8Array, extensions: boolean): boolean {
  try {
    return skipValue(bytes, 0, extensions) === bytes.length;
  } catch {
    return false;
  }
}

/** Deterministic bytes, so a failure can be reproduced from its seed. */
function randomBytes(seed: number, length: number): Uint8Array {
  let state = seed >>> 0 || 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = (state >>> 0) & 0xff;
  }
  return out;
}

describe("codec round trip", () => {
  for (const codec of CODECS) {
    it(`${codec}: a Message with text, raw, url and data parts comes back equal`, () => {
      const original = fullMessage();
      const value = decodedOk(decode(Message, encode(original, codec), { codec }));
      assert.deepEqual(plainBytes(value), plainBytes(original));
      const raw = value.parts[1];
      assert.ok(raw && "raw" in raw && raw.raw instanceof Uint8Array, "raw part decodes to bytes, not to a string or an object");
      assert.equal(raw.raw.length, 256);
    });

    it(`${codec}: a Task with status message, artifacts and history comes back equal`, () => {
      const original = fullTask();
      const value = decodedOk(decode(Task, encode(original, codec), { codec }));
      assert.deepEqual(plainBytes(value), plainBytes(original));
    });

    it(`${codec}: a SendMessage request comes back equal`, () => {
      const original: SendMessageRequest = { message: fullMessage(), configuration: { blocking: true, historyLength: 5 } };
      const value = decodedOk(decode(SendMessageRequest, encode(original, codec), { codec }));
      assert.deepEqual(plainBytes(value), plainBytes(original));
    });
  }

  it("json: raw bytes travel as {\"$bytes\": base64} that any JSON reader sees", () => {
    const text = new TextDecoder().decode(encode(fullMessage(), "json"));
    const generic = JSON.parse(text) as { parts: Array<Record<string, unknown>> };
    assert.deepEqual(generic.parts[1]?.raw, { $bytes: Buffer.from(RAW).toString("base64") });
  });

  it("json: an object with $bytes beside other keys is data, not bytes", () => {
    const original: Message = { messageId: "m", role: "ROLE_USER", parts: [{ data: { $bytes: "AAEC", other: 1 } }] };
    const value = decodedOk(decode(Message, encode(original, "json"), { codec: "json" }));
    assert.deepEqual(value, original);
  });
});

describe("msgpack output is plain msgpack", () => {
  it("a Task decodes with msgpackr's default unpack as a plain object equal to the original", () => {
    const original = fullTask();
    const generic: unknown = unpack(encode(original, "msgpack"));
    assert.ok(generic !== null && typeof generic === "object" && !Array.isArray(generic));
    assert.equal(Object.getPrototypeOf(generic), Object.prototype);
    assert.deepEqual(plainBytes(generic), plainBytes(original));
  });

  it("uses only the core types of the spec: maps, arrays, strings, bin, numbers, nil, booleans", () => {
    const bytes = encode(fullTask(), "msgpack");
    const first = bytes[0]!;
    assert.ok((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf, `starts with a map header, got 0x${first.toString(16)}`);
    assert.ok(isWellFormed(bytes, false), "no extension types (records, undefined, dates) in the payload");
  });

  it("leaves undefined fields out instead of writing msgpackr's undefined extension", () => {
    const bytes = encode({ messageId: "m", contextId: undefined, role: "ROLE_USER", parts: [{ text: "hi", metadata: undefined }] }, "msgpack");
    const hex = Buffer.from(bytes).toString("hex");
    assert.ok(!hex.match(/^(..)*d40000/), `no 0xd4 0x00 0x00 in ${hex}`);
    assert.ok(isWellFormed(bytes, false));
    const generic = unpack(bytes) as Record<string, unknown>;
    assert.deepEqual(generic, { messageId: "m", role: "ROLE_USER", parts: [{ text: "hi" }] });
    assert.equal("contextId" in generic, false);
  });

  it("writes undefined array items as nil", () => {
    const bytes = encode({ list: [1, undefined, 2] }, "msgpack");
    assert.ok(isWellFormed(bytes, false));
    assert.deepEqual(unpack(bytes), { list: [1, null, 2] });
  });

  it("decoding is stateless: a payload defining a msgpackr record does not change how the next one decodes", () => {
    // ext 0x72 defines record structure 0x40 = ["a"]; afterwards 0x40 must still be the number 64
    decodeUnknown(Uint8Array.from([0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01]));
    assert.deepEqual(decodedOk(decodeUnknown(encode({ n: 64 }))), { n: 64 });
  });
});

describe("decode errors", () => {
  const malformed: Array<[string, CodecName, number[]]> = [
    ["truncated array", "msgpack", [0x92, 0x01]],
    ["truncated string", "msgpack", [0xa5, 0x61, 0x62]],
    ["array claiming 4G items", "msgpack", [0xdd, 0xff, 0xff, 0xff, 0xff]],
    ["trailing bytes after a value", "msgpack", [0x81, 0xa1, 0x61, 0x01, 0x02]],
    ["empty payload", "msgpack", []],
    ["not JSON", "json", [0x7b, 0x6e, 0x6f]],
    ["invalid UTF-8", "json", [0x22, 0xff, 0xfe, 0x22]],
    ["empty payload", "json", []],
  ];
  for (const [name, codec, bytes] of malformed) {
    it(`${codec}: ${name} is MESSAGE_MALFORMED`, () => {
      const error = decodedError(decode(Message, Uint8Array.from(bytes), { codec }));
      assert.equal(error.code, "MESSAGE_MALFORMED");
      assert.equal(error.a2aCode, -32700);
      assert.equal(error.retryable, false);
      assert.ok(error.cause, "the parser's own error is kept as the cause");
    });
  }

  it("msgpack: the never-used byte 0xc1 is MESSAGE_MALFORMED, at the top and nested", () => {
    assert.equal(decodedError(decodeUnknown(Uint8Array.from([0xc1]))).code, "MESSAGE_MALFORMED");
    // inside a data part the sentinel object even passes the schema
    const bytes = encode({ messageId: "m", role: "ROLE_USER", parts: [{ data: null }] });
    bytes[bytes.lastIndexOf(0xc0)] = 0xc1;
    assert.equal(decodedError(decode(Message, bytes)).code, "MESSAGE_MALFORMED");
  });

  for (const codec of CODECS) {
    it(`${codec}: random bytes never throw and never pass; bytes that are not ${codec} are MESSAGE_MALFORMED`, () => {
      let malformedSeen = 0;
      for (let seed = 1; seed <= 2_000; seed++) {
        const bytes = randomBytes(seed, 1 + (seed % 48));
        let result: ReturnType<typeof decode<typeof Message>>;
        assert.doesNotThrow(() => {
          result = decode(Message, bytes, { codec });
        }, `seed ${seed}`);
        const error = decodedError(result!);
        const wellFormed = codec === "msgpack" ? isWellFormed(bytes, true) : (() => {
          try {
            JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
            return true;
          } catch {
            return false;
          }
        })();
        if (!wellFormed) {
          malformedSeen++;
          assert.equal(error.code, "MESSAGE_MALFORMED", `seed ${seed}: ${Buffer.from(bytes).toString("hex")}`);
        } else {
          assert.ok(["MESSAGE_MALFORMED", "MESSAGE_INVALID"].includes(error.code), `seed ${seed}: ${error.code}`);
        }
      }
      assert.ok(malformedSeen > 1_000, "the generator produces mostly malformed input");
    });
  }

  for (const codec of CODECS) {
    it(`${codec}: a valid encoding of the wrong shape is MESSAGE_INVALID naming each bad field`, () => {
      const request = {
        message: { messageId: "", role: "ROLE_ROBOT", parts: [{ text: "ok" }, { text: 42 }] },
        configuration: { historyLength: -1 },
      };
      const error = decodedError(decode(SendMessageRequest, encode(request, codec), { codec }));
      assert.equal(error.code, "MESSAGE_INVALID");
      assert.equal(error.a2aCode, -32602);
      const paths = (error.details ?? []).map((d) => d.path);
      for (const path of ["message.messageId", "message.role", "configuration.historyLength"]) {
        assert.ok(paths.includes(path), `details name ${path}: ${paths.join(", ")}`);
      }
      assert.ok(paths.some((p) => p.startsWith("message.parts[1]")), `details name message.parts[1]: ${paths.join(", ")}`);
      assert.ok(!paths.some((p) => p.startsWith("message.parts[0]")), "the valid part is not blamed");
      assert.ok(error.message.includes("message.role"), "the message names the fields too");
    });
  }

  it("a Message whose parts are missing is MESSAGE_INVALID at message.parts", () => {
    const error = decodedError(decode(SendMessageRequest, encode({ message: { messageId: "m", role: "ROLE_USER", parts: [] } })));
    assert.equal(error.code, "MESSAGE_INVALID");
    assert.deepEqual(
      error.details?.map((d) => d.path),
      ["message.parts"],
    );
  });

  it("a payload over maxBytes is MESSAGE_TOO_LARGE; exactly maxBytes is accepted", () => {
    const bytes = encode(fullMessage());
    assert.equal(decodedError(decode(Message, bytes, { maxBytes: bytes.length - 1 })).code, "MESSAGE_TOO_LARGE");
    decodedOk(decode(Message, bytes, { maxBytes: bytes.length }));
  });

  it("a payload over maxBytes is MESSAGE_TOO_LARGE even when it is also malformed", () => {
    const error = decodedError(decode(Message, new Uint8Array(1_000).fill(0xc1), { maxBytes: 999 }));
    assert.equal(error.code, "MESSAGE_TOO_LARGE");
    assert.equal(error.a2aCode, -32600);
  });
});

describe("Part carries exactly one of text, raw, url, data", () => {
  const valid: Array<[string, unknown]> = [
    ["text", { text: "" }],
    ["raw", { raw: new Uint8Array(0) }],
    ["url", { url: "https://example.com/a" }],
    ["data", { data: { a: 1 } }],
    ["data null", { data: null }],
  ];
  for (const [name, part] of valid) {
    it(`accepts a ${name} part`, () => assert.equal(Part.safeParse(part).success, true));
  }

  const invalid: Array<[string, unknown]> = [
    ["none", {}],
    ["only metadata", { metadata: {}, mediaType: "text/plain" }],
    ["text and url", { text: "a", url: "https://example.com/a" }],
    ["text and data", { text: "a", data: 1 }],
    ["raw and text", { raw: new Uint8Array(1), text: "a" }],
    ["url and data", { url: "https://example.com/a", data: {} }],
    ["all four", { text: "a", raw: new Uint8Array(1), url: "https://example.com/a", data: 1 }],
    ["data explicitly undefined", { data: undefined }],
    ["url that is not a URL", { url: "not a url" }],
    ["raw as a string", { raw: "AAEC" }],
  ];
  for (const [name, part] of invalid) {
    it(`rejects ${name}`, () => assert.equal(Part.safeParse(part).success, false));
  }

  for (const codec of CODECS) {
    it(`${codec}: a two-kind part in a Message is MESSAGE_INVALID at parts[0]`, () => {
      const message = { messageId: "m", role: "ROLE_USER", parts: [{ text: "a", url: "https://example.com/a" }] };
      const error = decodedError(decode(Message, encode(message, codec), { codec }));
      assert.equal(error.code, "MESSAGE_INVALID");
      assert.ok(error.details?.some((d) => d.path.startsWith("parts[0]")), JSON.stringify(error.details));
    });
  }
});

describe("FleetError on the wire", () => {
  it("toPayload → encode → decode → fromPayload keeps code, message, retryable, a2aCode and details", () => {
    for (const codec of CODECS) {
      const original = new FleetError("MESSAGE_INVALID", "payload does not match", {
        details: [{ path: "message.parts[0]", message: "Invalid input" }],
        cause: new Error("not sent"),
      });
      const payload = decodedOk(decode(ErrorPayload, encode(original.toPayload(), codec), { codec }));
      assert.deepEqual(payload, {
        code: "MESSAGE_INVALID",
        a2aCode: -32602,
        message: "payload does not match",
        retryable: false,
        details: [{ path: "message.parts[0]", message: "Invalid input" }],
      });
      const back = FleetError.fromPayload(payload);
      assert.ok(back instanceof FleetError && back instanceof Error);
      assert.equal(back.code, original.code);
      assert.equal(back.message, original.message);
      assert.equal(back.retryable, original.retryable);
      assert.equal(back.a2aCode, original.a2aCode);
      assert.deepEqual(back.details, original.details);
    }
  });

  it("a payload without details has no details key (nothing to encode as nil)", () => {
    const payload = new FleetError("TIMEOUT", "no reply in 5000 ms").toPayload();
    assert.deepEqual(payload, { code: "TIMEOUT", a2aCode: -32101, message: "no reply in 5000 ms", retryable: true });
    assert.equal("details" in payload, false);
    assert.equal(ErrorPayload.safeParse(payload).success, true);
  });

  it("retryable and a2aCode come from the catalogue for every code", () => {
    for (const code of FleetErrorCode.options) {
      const error = new FleetError(code, "x");
      assert.equal(error.retryable, ERROR_CATALOGUE[code].retryable, code);
      assert.equal(error.a2aCode, ERROR_CATALOGUE[code].a2aCode, code);
      assert.equal(ErrorPayload.safeParse(error.toPayload()).success, true, code);
    }
  });

  it("an error payload with an unknown code does not decode", () => {
    const payload = { code: "ROUTER_NO_ROUTE", a2aCode: -32199, message: "x", retryable: false };
    assert.equal(decodedError(decode(ErrorPayload, encode(payload))).code, "MESSAGE_INVALID");
  });

  it("a reply is either {result} or {error}", () => {
    const schema = replySchema(Task);
    const ok = decodedOk(decode(schema, encode({ result: fullTask() })));
    assert.ok("result" in ok);
    const failed = decodedOk(decode(schema, encode({ error: new FleetError("TASK_NOT_FOUND", "no task t-9").toPayload() })));
    assert.ok("error" in failed && failed.error.code === "TASK_NOT_FOUND" && failed.error.a2aCode === -32001);
    assert.equal(decodedError(decode(schema, encode({ result: { id: "t" } }))).code, "MESSAGE_INVALID");
  });

  it("FleetError.from keeps a FleetError as is and wraps anything else with its cause", () => {
    const fleet = new FleetError("CONFLICT", "lost the race");
    assert.equal(FleetError.from(fleet), fleet);
    const cause = new Error("boom");
    const wrapped = FleetError.from(cause);
    assert.equal(wrapped.code, "INTERNAL");
    assert.equal(wrapped.message, "boom");
    assert.equal(wrapped.cause, cause);
    assert.equal(FleetError.from("plain string", "TIMEOUT").code, "TIMEOUT");
  });
});

describe("formatPath", () => {
  it("formats config-style paths", () => {
    assert.equal(formatPath(["agents", 2, "dailyCapUsd"]), "agents[2].dailyCapUsd");
    assert.equal(formatPath(["message", "parts", 0]), "message.parts[0]");
    assert.equal(formatPath([0, "text"]), "[0].text");
    assert.equal(formatPath(["matrix", 1, 2]), "matrix[1][2]");
    assert.equal(formatPath([]), "(root)");
  });
});

describe("ERROR_CATALOGUE", () => {
  it("gives every code its own a2aCode", () => {
    const seen = new Map<number, string>();
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      assert.ok(Number.isInteger(entry.a2aCode), code);
      const other = seen.get(entry.a2aCode);
      assert.equal(other, undefined, `${code} and ${other} share ${entry.a2aCode}`);
      seen.set(entry.a2aCode, code);
    }
  });

  it("keeps the A2A specification's codes", () => {
    assert.equal(ERROR_CATALOGUE.TASK_NOT_FOUND.a2aCode, -32001);
    assert.equal(ERROR_CATALOGUE.TASK_NOT_CANCELABLE.a2aCode, -32002);
    assert.equal(ERROR_CATALOGUE.UNSUPPORTED_OPERATION.a2aCode, -32004);
    assert.equal(ERROR_CATALOGUE.CONTENT_TYPE_NOT_SUPPORTED.a2aCode, -32005);
    assert.equal(ERROR_CATALOGUE.VERSION_NOT_SUPPORTED.a2aCode, -32009);
  });
});
