import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CancelTaskRequest,
  decode,
  encode,
  FleetError,
  GetTaskRequest,
  ListTasksRequest,
  Message,
  SendMessageRequest,
  TaskAssignment,
  ToolCallRequest,
  UsageQuery,
} from "../../protocol/index.js";

/** Schemas at the trust boundary say exactly what a field is: bytes only where raw bytes are meant, ids that are keys. */

function paths(error: FleetError): string[] {
  return (error.details ?? []).map((d) => d.path);
}

function refused(schema: Parameters<typeof decode>[0], value: unknown, path: string): void {
  const decoded = decode(schema, encode(value));
  assert.ok(!decoded.ok, `refused: ${JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? "<bytes>" : v))}`);
  assert.equal(decoded.error.code, "MESSAGE_INVALID");
  assert.ok(paths(decoded.error).includes(path), `names ${path}: ${paths(decoded.error).join(", ")}`);
}

const message = { messageId: "m-1", role: "ROLE_USER", parts: [{ text: "hello" }] };
const BAD_IDS = ["has space", "a*", "a>", "a..b", "a.b", "x".repeat(129), "tâche", "", "$KV"];

describe("boundary schemas", () => {
  it("SendMessage: binary (or a date) where configuration is an object is refused, naming the field", () => {
    refused(SendMessageRequest, { message, configuration: new Uint8Array([1, 2, 3]) }, "configuration");
    refused(SendMessageRequest, { message, configuration: new Date(0) }, "configuration");
    refused(SendMessageRequest, { message, configuration: [true] }, "configuration");
    assert.ok(decode(SendMessageRequest, encode({ message, configuration: { blocking: false } })).ok);
  });

  it("metadata is a JSON object: bytes in it, or bytes for it, are refused", () => {
    refused(SendMessageRequest, { message, metadata: new Uint8Array([1]) }, "metadata");
    refused(SendMessageRequest, { message, metadata: { blob: new Uint8Array([1]) } }, "metadata.blob");
    refused(SendMessageRequest, { message: { ...message, metadata: { when: new Date(0) } } }, "message.metadata.when");
    assert.ok(decode(SendMessageRequest, encode({ message, metadata: { a: [1, "x", null, { b: true }] } })).ok);
  });

  it("bytes only in a raw part: a data part holding bytes is refused, a raw part holding them is taken", () => {
    refused(Message, { ...message, parts: [{ data: new Uint8Array([1]) }] }, "parts[0].data");
    const raw = decode(Message, encode({ ...message, parts: [{ raw: new Uint8Array([1, 2]) }] }));
    assert.ok(raw.ok);
  });

  it("ListTasks and the router's usage query, whose fields are all optional, refuse bytes for themselves", () => {
    refused(ListTasksRequest, new Uint8Array([1]), "(root)");
    refused(UsageQuery, new Uint8Array([1]), "(root)");
    assert.ok(decode(ListTasksRequest, encode({})).ok);
  });

  it("task and context ids that cannot be keys are refused wherever they enter, naming the field", () => {
    for (const id of BAD_IDS) {
      refused(SendMessageRequest, { message: { ...message, taskId: id } }, "message.taskId");
      refused(SendMessageRequest, { message: { ...message, contextId: id } }, "message.contextId");
      refused(GetTaskRequest, { id }, "id");
      refused(CancelTaskRequest, { id }, "id");
      refused(ListTasksRequest, { contextId: id }, "contextId");
      refused(TaskAssignment, { taskId: id, contextId: "c", agentId: "scout", message, assignedBy: "x", assignedAt: 0 }, "taskId");
    }
    for (const id of ["t-0123456789abcdef01234567", "3f2a9c1e-7b4d-4c1a-9e2f-1a2b3c4d5e6f", "cron_nightly=2"]) {
      assert.ok(decode(GetTaskRequest, encode({ id })).ok, id);
    }
  });

  it("a tool's input is JSON, never bytes", () => {
    refused(ToolCallRequest, { agentId: "scout", input: new Uint8Array([1]) }, "input");
    assert.ok(decode(ToolCallRequest, encode({ agentId: "scout", input: { url: "https://x" } })).ok);
  });
});
