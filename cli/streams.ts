import { jetstreamManager } from "@nats-io/jetstream";
import { inspect, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

/** `fleet streams`: the fleet's streams and consumers with their counts (what `nats stream ls` shows, filtered). */
export async function streams(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const { nc, names } = await inspect(options, env);
  try {
    const jsm = await jetstreamManager(nc);
    const own = names.prefix.toUpperCase() + "_";
    const bucketPrefix = `KV_${names.prefix}-`;
    const streamRows: string[][] = [];
    const consumerRows: string[][] = [];
    const out: unknown[] = [];
    for await (const si of jsm.streams.list()) {
      const name = si.config.name;
      if (!name.startsWith(own) && !name.startsWith(bucketPrefix)) continue;
      streamRows.push([name, si.config.subjects?.join(" ") ?? "", String(si.state.messages), String(si.state.bytes), String(si.state.consumer_count)]);
      const consumers = [];
      for await (const ci of jsm.consumers.list(name)) {
        consumers.push(ci);
        consumerRows.push([name, ci.name, String(ci.num_pending), String(ci.num_ack_pending), String(ci.num_redelivered), String(ci.delivered.stream_seq)]);
      }
      out.push({ stream: si.config.name, subjects: si.config.subjects, state: si.state, consumers: consumers.map((c) => ({ name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered })) });
    }
    if (options.json) {
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    printTable(["STREAM", "SUBJECTS", "MESSAGES", "BYTES", "CONSUMERS"], streamRows.sort((a, b) => a[0]!.localeCompare(b[0]!)));
    console.log();
    printTable(["STREAM", "CONSUMER", "PENDING", "ACK PENDING", "REDELIVERED", "LAST SEQ"], consumerRows);
    return 0;
  } finally {
    await nc.close();
  }
}
