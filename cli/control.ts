import { z } from "zod";
import { decodeUnknown, ErrorPayload, FleetError, type ControlOperation } from "../protocol/index.js";
import { inspect, type CliOptions } from "./options.js";

const ControlReply = z.union([z.object({ result: z.unknown() }), z.object({ error: ErrorPayload })]);

/**
 * `fleet restart <agent>`, `fleet breaker reset <agent>`: operator controls answered by the agent's own process.
 * `fleet wake <agent>`: an event-driven wake-up (the agent runs a cycle now); fire and forget.
 */
export async function control(op: ControlOperation | "Wake", agentId: string | undefined, options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  if (!agentId) {
    console.error(`usage: fleet ${op === "Restart" ? "restart" : op === "Wake" ? "wake" : "breaker reset"} <agent>`);
    return 2;
  }
  const { nc, names } = await inspect(options, env);
  try {
    if (op === "Wake") {
      nc.publish(names.wake(agentId));
      await nc.flush();
      console.log(`woke ${agentId}`);
      return 0;
    }
    const reply = await nc.request(names.agentControl(agentId, op), new Uint8Array(), { timeout: 5_000 }).catch((cause) => {
      throw new FleetError("AGENT_UNAVAILABLE", `no process serves agent "${agentId}"`, { cause });
    });
    const decoded = decodeUnknown(reply.data);
    const parsed = decoded.ok ? ControlReply.safeParse(decoded.value) : undefined;
    if (!parsed?.success) throw new FleetError("MESSAGE_INVALID", `unexpected reply from ${agentId}`);
    if ("error" in parsed.data) throw FleetError.fromPayload(parsed.data.error);
    console.log(op === "Restart" ? `${agentId} is restarting` : `${agentId}: breaker ${JSON.stringify(parsed.data.result)}`);
    return 0;
  } finally {
    await nc.close();
  }
}
