import type { Logger } from "pino";
import { nextMidnight, type UrgentPolicy } from "../config/index.js";
import { FleetError, type Clock, type Hold, type TaskWork } from "../protocol/index.js";
import type { QuietHoursRunner } from "./quiet-hours-runner.js";

/** One model step about to run, as the gate sees it. */
export interface ModelStepWork {
  agentId: string;
  taskId?: string | undefined;
  /** the tier or alias the step names (a pipeline step's, else the task's `metadata.work.tier`) */
  tier?: string | undefined;
  /** the task's `metadata.work`, if any */
  work?: TaskWork | undefined;
  /** the task's title (first line): urgent-by-title policy matches on it */
  title?: string | undefined;
}

/**
 * The seam every model step passes before it calls the router: a routed task step (behaviours/routed-model-step.ts), a
 * pipeline's model step (its runner asks before each one; tool steps never ask, so tier-0 work runs at any hour and a
 * pipeline waits at its first model step), Atlas's planning step. A hold it returns becomes the step's outcome
 * (`heldOutcome(hold)`): the task waits, kept in KV `held`, and is neither failed nor retried.
 */
export interface ModelWorkGate {
  /** Before a model step: undefined lets it run; a Hold says why it waits and until when. */
  check(step: ModelStepWork): Hold | undefined;
  /** A router refusal as a hold (BUDGET_EXHAUSTED: wait for the fleet's midnight); undefined for any other error. */
  holdOf(error: unknown, step: ModelStepWork): Hold | undefined;
}

export interface FleetModelWorkGateOptions {
  quietHours: Pick<QuietHoursRunner, "at">;
  /** the fleet's time zone: budgets reset at its midnight */
  timeZone: string;
  urgent: UrgentPolicy;
  /** alias → tier (routing.aliases), so an urgent tier matches a step that names its alias and the other way round */
  aliases: Readonly<Record<string, string>>;
  clock: Clock;
  log: Logger;
}

/**
 * The fleet's rules for when model work waits:
 * - quiet hours hold it until the window ends, unless it is urgent by policy (`work.urgent`, or `fleet.quietHours.urgent`:
 *   a tier or alias, a trigger, a phrase in the title);
 * - a spent cap (the router refuses even nano: past the nano grace) holds it until the fleet's midnight. The gate
 *   remembers the refusal, so the agent's further steps that day wait at once instead of asking the router again; the
 *   fleet's cap holds every agent this process hosts. Urgency does not lift a spent cap.
 * When both hold, the later end wins.
 */
export class FleetModelWorkGate implements ModelWorkGate {
  /** spent caps this process has been told of: by agent id, and FLEET for the fleet's */
  private readonly spent = new Map<string, Hold>();

  constructor(private readonly options: FleetModelWorkGateOptions) {}

  check(step: ModelStepWork): Hold | undefined {
    const now = this.options.clock.now();
    const holds = [this.budgetHold(FLEET, now), this.budgetHold(step.agentId, now), this.quietHold(step, now)].filter((h): h is Hold => h !== undefined);
    return holds.sort((a, b) => b.until - a.until)[0];
  }

  holdOf(error: unknown, step: ModelStepWork): Hold | undefined {
    if (!(error instanceof FleetError) || error.code !== "BUDGET_EXHAUSTED") return undefined;
    const now = this.options.clock.now();
    const until = nextMidnight(now, this.options.timeZone);
    const fleet = error.details?.some((d) => d.path === FLEET_CAP_PATH) ?? false;
    const hold: Hold = fleet
      ? { reason: "fleet-cap", until, detail: `the fleet's daily cap is spent; until midnight ${this.options.timeZone}` }
      : { reason: "agent-cap", until, detail: `the daily cap of ${step.agentId} is spent; until midnight ${this.options.timeZone}` };
    this.spent.set(fleet ? FLEET : step.agentId, hold);
    this.options.log.warn({ agentId: step.agentId, taskId: step.taskId, reason: hold.reason, until: new Date(until).toISOString() }, "budget spent: model work held until midnight");
    return hold;
  }

  private budgetHold(owner: string, now: number): Hold | undefined {
    const hold = this.spent.get(owner);
    if (hold && hold.until <= now) this.spent.delete(owner);
    return hold && hold.until > now ? hold : undefined;
  }

  private quietHold(step: ModelStepWork, now: number): Hold | undefined {
    const quiet = this.options.quietHours.at(now);
    if (quiet.state !== "quiet" || this.isUrgent(step)) return undefined;
    const until = quiet.nextBoundaryAt ?? Number.POSITIVE_INFINITY;
    return { reason: "quiet-hours", until, detail: `quiet hours until ${localTime(until, this.options.timeZone)} ${this.options.timeZone}` };
  }

  /** Urgent by the task's own mark or by policy. */
  isUrgent(step: ModelStepWork): boolean {
    if (step.work?.urgent === true) return true;
    const { tiers, triggers, titles } = this.options.urgent;
    const tier = step.tier ?? step.work?.tier;
    if (tier !== undefined && tiers.length > 0) {
      const resolved = this.options.aliases[tier] ?? tier;
      if (tiers.some((t) => t === tier || (this.options.aliases[t] ?? t) === resolved)) return true;
    }
    if (step.work?.trigger !== undefined && triggers.includes(step.work.trigger)) return true;
    const title = step.title?.toLowerCase();
    return title !== undefined && titles.some((phrase) => title.includes(phrase.toLowerCase()));
  }
}

const FLEET = "\u0000fleet";
/** the router names the fleet's cap by its config path in BUDGET_EXHAUSTED's details; an agent's is `agents.<id>.dailyCapUsd` */
export const FLEET_CAP_PATH = "fleet.dailyCapUsd";

function localTime(at: number, timeZone: string): string {
  if (!Number.isFinite(at)) return "(never)";
  return new Date(at).toLocaleString("en-GB", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit" });
}

/**
 * What `gateModelCall` throws when the gate holds the step, for a runner that unwinds by exceptions (a pipeline run): its
 * stage catches it and returns `heldOutcome(error.hold)`. The steps finished before it stay saved, so the run resumes
 * at this step when the task comes back.
 */
export class ModelWorkHeld extends Error {
  override readonly name = "ModelWorkHeld";
  constructor(readonly hold: Hold) {
    super(`held: ${hold.detail}`);
  }
}

/**
 * A model call behind the gate: asks it first (quiet hours, a cap already known spent), then makes the call, and turns
 * a budget refusal into a hold. Either way a hold is thrown as `ModelWorkHeld`; every other error passes unchanged.
 */
export async function gateModelCall<T>(gate: ModelWorkGate | undefined, step: ModelStepWork, call: () => Promise<T>): Promise<T> {
  const before = gate?.check(step);
  if (before) throw new ModelWorkHeld(before);
  try {
    return await call();
  } catch (err) {
    const refused = gate?.holdOf(err, step);
    if (refused) throw new ModelWorkHeld(refused);
    throw err;
  }
}
