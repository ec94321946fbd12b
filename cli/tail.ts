import { decodeUnknown } from "../protocol/index.js";
import { inspect, type CliOptions } from "./options.js";

/** `fleet tail [subject]`: a decoded live view of the fleet's subjects (default: all of them). Ctrl-C ends it. */
export async function tail(positionals: string[], options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const { nc, names } = await inspect(options, env);
  const subject = positionals[0] ?? names.all();
  const sub = nc.subscribe(subject);
  const stop = () => sub.unsubscribe();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  console.error(`tailing ${subject} on ${nc.getServer()} (Ctrl-C to stop)`);
  for await (const msg of sub) {
    const codec = msg.headers?.get("Content-Type") === "application/json" ? "json" : "msgpack";
    const decoded = decodeUnknown(msg.data, codec);
    const body = decoded.ok ? JSON.stringify(decoded.value, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v)) : `<${msg.data.length} bytes, not ${codec}>`;
    console.log(`${new Date().toISOString().slice(11, 23)} ${msg.subject} ${body.length > 2000 ? body.slice(0, 2000) + "…" : body}`);
  }
  await nc.close();
  return 0;
}
