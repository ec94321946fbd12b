import type { ApprovalRequest } from "../protocol/index.js";
import { approvalText, isDecidable, type ApprovalChannel } from "./approval-bridge.js";

/**
 * The console as an approval channel: under `fleet up` the request is printed in the operator's terminal with the
 * commands that decide it (the operator's CLI identity may publish decisions; no chat account needed).
 */
export function consoleApprovals(print: (line: string) => void): ApprovalChannel {
  return {
    channel: "console",
    async post(request: ApprovalRequest) {
      const how = isDecidable(request) ? `\n  decide: npx fleet approve ${request.proposalId} | npx fleet reject ${request.proposalId} --reason "<why>"` : "";
      print(`[approval] ${approvalText(request).replace(/\n/g, "\n  ")}${how}`);
    },
  };
}
