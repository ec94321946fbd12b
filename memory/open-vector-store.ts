import { join } from "node:path";
import type { Logger } from "pino";
import type { MemoryConfig } from "../config/index.js";
import { EmbeddedVectorStore } from "./embedded-vector-store.js";
import type { VectorStore } from "./vector-store.js";

/**
 * The fleet's vector store: Qdrant when the variable `memory.qdrantUrlEnv` names is set (and not empty), otherwise the
 * embedded store in `<memory.dir>/<memory.collection>`. `env` is the environment read once at start (nothing here reads
 * process.env).
 */
export async function openVectorStore(
  memory: MemoryConfig,
  env: Record<string, string | undefined>,
  options: { dimensions?: number; log?: Logger } = {},
): Promise<VectorStore> {
  const dimensions = options.dimensions !== undefined ? { dimensions: options.dimensions } : {};
  const url = env[memory.qdrantUrlEnv];
  if (url) {
    const apiKey = memory.qdrantApiKeyEnv ? env[memory.qdrantApiKeyEnv] : undefined;
    // loaded only when configured: agents and the CLI import this folder, and the Qdrant client is only the owner's
    const { QdrantVectorStore } = await import("./qdrant-vector-store.js");
    return QdrantVectorStore.open({ url, collection: memory.collection, ...(apiKey ? { apiKey } : {}), ...dimensions });
  }
  return EmbeddedVectorStore.open({ dir: join(memory.dir, memory.collection), ...dimensions, ...(options.log ? { log: options.log } : {}) });
}
