#!/usr/bin/env node
// A throwaway SMTP server for trying the email bridge locally: it accepts every message on 127.0.0.1 (no TLS, no
// login) and prints what it received. Usage: node scripts/dev-smtp.mjs [port]   (default 2525; Ctrl-C stops it)
// Pair it with `bridges: { email: { host: 127.0.0.1, port: 2525, security: none, from: "fleet@example.com" } }`.
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

const port = Number(process.argv[2] ?? 2525);
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  logger: false,
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((mail) => {
        const to = session.envelope.rcptTo.map((r) => r.address).join(", ");
        console.log(
          [
            `--- message accepted ${new Date().toISOString()}`,
            `From:       ${mail.from?.text ?? ""}`,
            `To:         ${to}`,
            `Subject:    ${mail.subject ?? ""}`,
            `Message-ID: ${mail.messageId ?? ""}`,
            "",
            (mail.text ?? "").trimEnd(),
            "",
          ].join("\n"),
        );
        callback();
      })
      .catch((err) => callback(err));
  },
});
server.on("error", (err) => console.error(`smtp: ${err.message}`));
server.listen(port, "127.0.0.1", () => console.log(`dev SMTP server on 127.0.0.1:${port}: every message is accepted and printed here`));
process.on("SIGINT", () => server.close(() => process.exit(0)));
