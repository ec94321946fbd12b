import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, describe, it } from "node:test";
import { QdrantClient } from "@qdrant/js-client-rest";
import { pointId, QdrantVectorStore } from "../../memory/qdrant-vector-store.js";
import { FleetError } from "../../protocol/index.js";
import { vectorStoreContract } from "./vector-store-contract.js";

// a real Qdrant, when one is given; the suite says why it skips otherwise
const url = process.env["QDRANT_URL"];
const apiKey = process.env["QDRANT_API_KEY"];
const collections: string[] = [];

vectorStoreContract(
  "qdrant",
  () => {
    const collection = `contract-${process.pid}-${collections.length + 1}`;
    collections.push(collection);
    return QdrantVectorStore.open({ url: url ?? "", collection, ...(apiKey ? { apiKey } : {}) });
  },
  url ? {} : { skip: "QDRANT_URL is not set" },
);

after(async () => {
  if (!url || collections.length === 0) return;
  const client = new QdrantClient({ url, ...(apiKey ? { apiKey } : {}), checkCompatibility: false });
  for (const name of collections) await client.deleteCollection(name).catch(() => undefined);
});

describe("QdrantVectorStore without a server", () => {
  it("maps memory ids to stable, distinct version-5 UUIDs", () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(pointId("atlas/2026-11-23/0"), uuid);
    assert.equal(pointId("atlas/2026-11-23/0"), pointId("atlas/2026-11-23/0"));
    assert.notEqual(pointId("atlas/2026-11-23/0"), pointId("atlas/2026-11-23/1"));
  });

  it("reports a server that does not answer as VECTOR_STORE_UNAVAILABLE", async () => {
    // a port that was free a moment ago: nothing listens on it
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });
    await assert.rejects(
      QdrantVectorStore.open({ url: `http://127.0.0.1:${port}`, collection: "nowhere", timeoutMs: 2_000 }),
      (err: unknown) => err instanceof FleetError && err.code === "VECTOR_STORE_UNAVAILABLE" && err.retryable,
    );
  });
});
