import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolDefinition } from "../tool.js";

/*
 * BLOCK: named in the catalogue so that a call is refused by name (and audited) instead of finding no host. The tool host
 * never calls these handlers; they refuse anyway, so that no other path can make them do anything.
 */

const refuse = (name: string) => async (): Promise<never> => {
  throw new FleetError("TOOL_BLOCKED", `${name} is BLOCK: it never runs`);
};

export const moneyTransfer = defineTool({
  name: "money_transfer",
  description: "Transfer money. Always refused: no agent moves money.",
  risk: "BLOCK",
  input: z.object({ to: z.string(), amount: z.number(), currency: z.string() }),
  targetFields: ["to"],
  handler: refuse("money_transfer"),
});

export const databaseDelete = defineTool({
  name: "database_delete",
  description: "Delete a database or its data. Always refused.",
  risk: "BLOCK",
  input: z.object({ database: z.string(), table: z.string().optional() }),
  handler: refuse("database_delete"),
});

export const bulkEmail = defineTool({
  name: "bulk_email",
  description: "Send one email to many recipients. Always refused.",
  risk: "BLOCK",
  input: z.object({ recipients: z.array(z.string()), subject: z.string(), body: z.string() }),
  personalDataFields: ["recipients"],
  targetFields: ["recipients"],
  handler: refuse("bulk_email"),
});

export const blockedTools: ToolDefinition[] = [moneyTransfer, databaseDelete, bulkEmail];
