import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

/** One span as an OTLP/HTTP JSON export carries it, its attributes flattened to plain values. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
  /** the `service.name` of the resource the span came with */
  service: string;
  /** every attribute of that resource, flattened (a string array joined with ",") */
  resource: Record<string, string | number | boolean>;
}

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface ExportRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: KeyValue[]; status?: { code?: number; message?: string } }[] }[];
  }[];
}

/**
 * A real OTLP/HTTP trace receiver (what a collector's otlphttp receiver does for `POST /v1/traces`), JSON encoding only:
 * a protobuf export is refused with 415, so a test fails loudly if the exporter changes encoding.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly requests: { path: string; contentType: string }[] = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on("request", (req, res) => {
      void receiver.receive(req).then(
        (status) => res.writeHead(status, { "content-type": "application/json" }).end(status === 200 ? "{}" : ""),
        () => res.writeHead(400).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return receiver;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async receive(req: IncomingMessage): Promise<number> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body = Buffer.concat(chunks);
    const contentType = String(req.headers["content-type"] ?? "");
    this.requests.push({ path: req.url ?? "", contentType });
    if (req.method !== "POST" || req.url !== "/v1/traces") return 404;
    if (!contentType.startsWith("application/json")) return 415;
    if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
    const request = JSON.parse(body.toString("utf8")) as ExportRequest;
    for (const rs of request.resourceSpans ?? []) {
      const resource = flatten(rs.resource?.attributes);
      const service = String(resource["service.name"] ?? "");
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name, kind: s.kind,
            attributes: flatten(s.attributes), status: s.status ?? {}, service, resource,
          });
        }
      }
    }
    return 200;
  }
}

function flatten(attributes: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of attributes ?? []) {
    const plain = plainValue(value);
    if (plain !== undefined) out[key] = plain;
  }
  return out;
}

function plainValue(value: AnyValue): string | number | boolean | undefined {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(plainValue).join(",");
  return undefined;
}
