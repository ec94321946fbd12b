import type { AddressInfo } from "node:net";
import { simpleParser, type AddressObject, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

/**
 * A real SMTP server on a free local port (the `smtp-server` package), for the email bridge's tests: it records every
 * message whose DATA it accepted, parsed with mailparser, and answers each message as the test says (accept, a
 * temporary 4xx, a permanent 5xx). No TLS and no login: the bridge connects with `security: none`.
 */

export type SmtpVerdict = "accept" | { code: number; message: string };

export interface ReceivedMail {
  raw: Buffer;
  parsed: ParsedMail;
  envelope: { from: string; to: string[] };
}

export class TestSmtpServer {
  /** every message the server accepted, in order */
  readonly received: ReceivedMail[] = [];
  /** how many messages were offered (DATA completed), accepted or not */
  offered = 0;
  /** the subject of every message offered, in order, accepted or not */
  readonly offeredSubjects: string[] = [];
  /** how the server answers the nth message offered (1-based); accept by default */
  respond: (offered: number, raw: Buffer) => Promise<SmtpVerdict> | SmtpVerdict = () => "accept";

  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
  ) {}

  static async start(): Promise<TestSmtpServer> {
    let self: TestSmtpServer | undefined;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      closeTimeout: 1_000,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          const raw = Buffer.concat(chunks);
          void (async () => {
            if (!self) return callback(new Error("server not ready"));
            const n = ++self.offered;
            const parsed = await simpleParser(raw);
            self.offeredSubjects.push(parsed.subject ?? "");
            const verdict = await self.respond(n, raw);
            if (verdict !== "accept") return callback(Object.assign(new Error(verdict.message), { responseCode: verdict.code }));
            const envelope = {
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
              to: session.envelope.rcptTo.map((r) => r.address),
            };
            self.received.push({ raw, parsed, envelope });
            callback(null);
          })().catch((err: unknown) => callback(err instanceof Error ? err : new Error(String(err))));
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.on("error", reject);
      const listening = server.listen(0, "127.0.0.1", () => resolve((listening.address() as AddressInfo).port));
    });
    self = new TestSmtpServer(server, port);
    return self;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The first address of a parsed address header. */
export function addressOf(header: AddressObject | AddressObject[] | undefined): string | undefined {
  const first = Array.isArray(header) ? header[0] : header;
  return first?.value[0]?.address;
}
