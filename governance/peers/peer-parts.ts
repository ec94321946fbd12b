import type { Client } from "@a2a-js/sdk/client";
import { Artifact, FleetError, type Part } from "../../protocol/index.js";

/** An artifact as the A2A SDK hands it over (proto-shaped parts: `content.$case`). */
export type SdkArtifact = NonNullable<Awaited<ReturnType<Client["getTask"]>>["artifacts"]>[number];
type SdkPart = SdkArtifact["parts"][number];

/**
 * The peer's artifacts as the fleet's A2A data model has them, checked with the same zod schema as anything arriving
 * over NATS: a peer is another company's system, so what it sends is parsed, never trusted. An artifact with no part the
 * fleet can keep is left out; a malformed one is PEER_REFUSED (the peer answered, but not with A2A).
 */
export function peerArtifacts(peer: string, artifacts: readonly SdkArtifact[]): Artifact[] {
  const out: Artifact[] = [];
  artifacts.forEach((artifact, i) => {
    const parts = artifact.parts.flatMap((p) => partOf(p));
    if (parts.length === 0) return;
    const candidate = {
      artifactId: artifact.artifactId || `${peer}-artifact-${i}`,
      ...(artifact.name ? { name: artifact.name } : {}),
      ...(artifact.description ? { description: artifact.description } : {}),
      parts,
      metadata: { ...(isRecord(artifact.metadata) ? artifact.metadata : {}), peer },
    };
    const parsed = Artifact.safeParse(candidate);
    if (!parsed.success) throw new FleetError("PEER_REFUSED", `peer ${peer} sent an artifact that is not A2A: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    out.push(parsed.data);
  });
  return out;
}

function partOf(part: SdkPart): Part[] {
  const content = part.content;
  const extra = { ...(part.mediaType ? { mediaType: part.mediaType } : {}), ...(part.filename ? { filename: part.filename } : {}) };
  switch (content?.$case) {
    case "text":
      return [{ text: content.value, ...extra }];
    case "data":
      return [{ data: content.value ?? null, ...extra }];
    case "url":
      return [{ url: content.value, ...extra }];
    case "raw":
      return [{ raw: new Uint8Array(content.value), ...extra }];
    default:
      return [];
  }
}

/** What the peer says the work cost (USD), from its task's or message's metadata, when it says. */
export function peerCostUsd(metadata: Record<string, unknown> | undefined): number | undefined {
  if (!metadata) return undefined;
  const nested = isRecord(metadata["cost"]) ? metadata["cost"]["usd"] : undefined;
  for (const value of [metadata["costUsd"], metadata["cost_usd"], nested]) {
    const n = typeof value === "string" ? Number(value) : value;
    if (typeof n === "number" && Number.isFinite(n) && n >= 0) return n;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
