import { ListTasksResponse, SendMessageRequest, SendMessageResponse, StreamResponse, Task, taskStateFromJSON } from "@a2a-js/sdk";
import { RequestMalformedError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import type { FastifyReply } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import type { AgentA2aHandler, PeerCallContext } from "./agent-a2a-handler.js";
import { A2A_JSON, restError, streamSse } from "./http-binding.js";

/*
 * A2A's HTTP+JSON binding, the SDK's route table (its RestTransportHandler, which only its Express adapter uses and does
 * not export) on fastify: the path after `/a2a/rest` names the operation; bodies and results cross as ProtoJSON through
 * the SDK's own codecs.
 */

const Query = z.record(z.string(), z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v[0] : v)));

function intParam(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new RequestMalformedError(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

export async function serveRest(
  method: string,
  path: string,
  body: unknown,
  rawQuery: unknown,
  handler: AgentA2aHandler,
  context: PeerCallContext,
  reply: FastifyReply,
  log: Logger,
): Promise<FastifyReply> {
  const send = (value: unknown) => reply.code(200).type(A2A_JSON).send(value);
  try {
    const query = Query.parse(rawQuery ?? {});
    const task = /^\/tasks\/([^/:]+)(?::(cancel|subscribe))?$/.exec(path);
    if (method === "POST" && (path === "/message:send" || path === "/message:stream")) {
      const params = SendMessageRequest.fromJSON(body ?? {});
      if (path === "/message:send") {
        const result = await handler.sendMessage(params, context);
        const payload = "messageId" in result ? { $case: "message" as const, value: result } : { $case: "task" as const, value: result };
        return send(SendMessageResponse.toJSON({ payload }));
      }
      await streamSse(reply, handler.sendMessageStream(params, context), sseFrames(reply), log);
      return reply;
    }
    if (method === "GET" && path === "/tasks") {
      const status = query.status ? taskStateFromJSON(query.status) : 0;
      const params = {
        tenant: "",
        contextId: query.contextId ?? "",
        status,
        pageSize: intParam(query.pageSize, "pageSize", 1, 100),
        pageToken: query.pageToken ?? "",
        historyLength: intParam(query.historyLength, "historyLength", 0, 1000),
        statusTimestampAfter: undefined,
      };
      return send(ListTasksResponse.toJSON(await handler.listTasks(params, context)));
    }
    if (task) {
      const id = decodeURIComponent(task[1] ?? "");
      if (method === "GET" && task[2] === undefined) {
        return send(Task.toJSON(await handler.getTask({ tenant: "", id, historyLength: intParam(query.historyLength, "historyLength", 0, 1000) }, context)));
      }
      if (method === "POST" && task[2] === "cancel") return send(Task.toJSON(await handler.cancelTask({ tenant: "", id, metadata: undefined }, context)));
      if (task[2] === "subscribe") {
        await streamSse(reply, handler.resubscribe({ tenant: "", id }, context), sseFrames(reply), log);
        return reply;
      }
    }
    throw new UnsupportedOperationError(`${method} ${path} is no operation of the HTTP+JSON binding`);
  } catch (err) {
    const { status, body: errorBody } = restError(err);
    return reply.code(status).type(A2A_JSON).send(errorBody);
  }
}

function sseFrames(reply: FastifyReply) {
  return {
    event: (e: StreamResponse) => StreamResponse.toJSON(e),
    error: (err: unknown) => restError(err).body,
    failed: (err: unknown) => {
      const { status, body } = restError(err);
      void reply.code(status).type(A2A_JSON).send(body);
    },
  };
}
