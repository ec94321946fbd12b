import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import { retryThroughElection, type FleetNames } from "../protocol/index.js";

/**
 * The governance process's two durable consumers: proposal submissions on PROPOSALS and human decisions on APPROVALS.
 * Durable, so nothing submitted or decided while governance was down is lost: it is read when governance is back.
 */
export async function ensureGovernanceConsumers(
  js: JetStreamClient,
  jsm: JetStreamManager,
  names: FleetNames,
): Promise<{ intake: Promise<ConsumerMessages>; decisions: Promise<ConsumerMessages> }> {
  // on a cluster, a consumer's or the meta leader's election may be under way as governance starts: idempotent, so retried
  const intake = await retryThroughElection("governance intake consumer", () => upsert(jsm, names.stream("PROPOSALS"), "governance-intake", names.proposalSubmissions()));
  const decisions = await retryThroughElection("governance decisions consumer", () => upsert(jsm, names.stream("APPROVALS"), "governance-decisions", names.approvalDecisions()));
  // pulls that expire every 5 s (heartbeats every 2.5 s): a pull sent to a consumer leader that has since gone silent (its
  // node cut off or stopped) is noticed and sent again within seconds, not after the default 30 s, so proposals made
  // while a node is away still reach the new holder promptly
  const open = async (stream: string, durable: string) => (await retryThroughElection(`consumer ${durable}`, () => js.consumers.get(stream, durable))).consume({ max_messages: 512, expires: 5_000 });
  return { intake: open(names.stream("PROPOSALS"), intake), decisions: open(names.stream("APPROVALS"), decisions) };
}

async function upsert(jsm: JetStreamManager, stream: string, durable: string, filter: string): Promise<string> {
  const config: Partial<ConsumerConfig> = {
    durable_name: durable,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(60_000),
    max_ack_pending: 2048,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(stream, durable);
    await jsm.consumers.update(stream, durable, config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.status === 404)) throw err;
    await jsm.consumers.add(stream, config);
  }
  return durable;
}
