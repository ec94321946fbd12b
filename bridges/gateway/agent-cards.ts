import { A2A_PROTOCOL_VERSION, AgentCard, type AgentSkill } from "@a2a-js/sdk";
import type { AgentConfig, FleetConfig } from "../../config/index.js";
import { NATS_BINDING_URI, type FleetNames } from "../../protocol/index.js";

/*
 * The AgentCards the gateway serves: the fleet's at `/.well-known/agent-card.json` (its front door is the orchestration
 * agent, which hands work to whichever agent's skills fit, so it lists every skill of the fleet) and one per agent at
 * `/agents/<id>/.well-known/agent-card.json`. Each lists the JSON-RPC and HTTP+JSON bindings (bearer token) and our
 * NATS binding (the fleet's own nkey credentials, for processes inside the fleet's NATS account).
 */

export const BEARER_SCHEME = "bearer";
export const CARD_PATH = "/.well-known/agent-card.json";

/** Where an agent's bindings live under the gateway's base URL (the fleet's own at `/a2a/...`). */
export function bindingPaths(agentId: string | undefined): { card: string; jsonrpc: string; rest: string } {
  const base = agentId === undefined ? "" : `/agents/${agentId}`;
  return { card: `${base}${CARD_PATH}`, jsonrpc: `${base}/a2a/jsonrpc`, rest: `${base}/a2a/rest` };
}

function skillsOf(agent: Pick<AgentConfig, "skills">): AgentSkill[] {
  return agent.skills.map((s) => ({
    id: s.id,
    name: s.name,
    description: s.description,
    tags: [...s.tags],
    examples: [...(s.examples ?? [])],
    inputModes: [],
    outputModes: [],
    securityRequirements: [],
  }));
}

function card(options: { name: string; description: string; baseUrl: string; agentId: string | undefined; natsSubject: string; skills: AgentSkill[]; version: string }): AgentCard {
  const paths = bindingPaths(options.agentId);
  const iface = (url: string, protocolBinding: string) => ({ url, protocolBinding, tenant: "", protocolVersion: A2A_PROTOCOL_VERSION });
  return {
    name: options.name,
    description: options.description,
    version: options.version,
    provider: undefined,
    supportedInterfaces: [
      iface(`${options.baseUrl}${paths.jsonrpc}`, "JSONRPC"),
      iface(`${options.baseUrl}${paths.rest}`, "HTTP+JSON"),
      iface(`nats:${options.natsSubject}`, NATS_BINDING_URI),
    ],
    capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: {
      [BEARER_SCHEME]: {
        scheme: {
          $case: "httpAuthSecurityScheme",
          value: {
            scheme: "Bearer",
            bearerFormat: "opaque",
            description: "a token per peer, issued by the fleet's operator (JSONRPC and HTTP+JSON bindings); the NATS binding authenticates with the fleet's nkey credentials instead",
          },
        },
      },
    },
    securityRequirements: [{ schemes: { [BEARER_SCHEME]: { list: [] } } }],
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: ["text/plain", "application/json"],
    skills: options.skills,
    signatures: [],
  };
}

export function agentCard(agent: AgentConfig, names: FleetNames, baseUrl: string, version: string): AgentCard {
  return card({
    name: agent.name,
    description: `${agent.role} (agent "${agent.id}")`,
    baseUrl,
    agentId: agent.id,
    natsSubject: names.agentOperations(agent.id).replace(/\.\*$/, ""),
    skills: skillsOf(agent),
    version,
  });
}

/** The fleet's card: its orchestrator's bindings, every agent's skills (each once). */
export function fleetCard(config: FleetConfig, orchestrator: AgentConfig, names: FleetNames, baseUrl: string, version: string): AgentCard {
  const seen = new Set<string>();
  const skills = config.agents.flatMap(skillsOf).filter((s) => !seen.has(s.id) && seen.add(s.id));
  return card({
    name: config.fleet.name,
    description: `the ${config.fleet.name} fleet: ${config.agents.length} agents; work sent here goes to ${orchestrator.name}, who assigns it by skill`,
    baseUrl,
    agentId: undefined,
    natsSubject: names.agentOperations(orchestrator.id).replace(/\.\*$/, ""),
    skills,
    version,
  });
}

/** The card as the wire has it (ProtoJSON). */
export function cardJson(card: AgentCard): unknown {
  return AgentCard.toJSON(card);
}
