import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolDefinition } from "../tool.js";
import type { BusinessApi } from "./business-api.js";

/*
 * The business API's writes, each with the risk its effect has:
 * - email_draft, cms_draft (AUTO+): a draft in the CRM or CMS, seen by nobody outside until a person (or email_send, a
 *   CONFIRM tool) acts on it: an internal write, logged in the audit trail. Their rollback deletes the draft.
 * - crm_update, meta_tags (PROPOSE): they change a record others rely on (a contact's stage, a live page's title and
 *   description). The API answers with the values it replaced; the rollback writes those back. That undoes this call's
 *   change; a change someone else made to the same fields afterwards is overwritten by it, which is why the rollback
 *   window is short.
 * Writes carry the call's idempotency key, so a repeated call makes one draft, not two.
 */

const Site = z.string().regex(/^[a-z0-9.-]{1,253}$/, "must be a site's host name, e.g. docs.dcode.dev");
const ContactId = z.string().regex(/^[\w-]{1,64}$/);
const DraftOutput = z.object({ draft: z.object({ id: z.string() }) });

export function businessWrites(api: BusinessApi): ToolDefinition[] {
  return [
    defineTool({
      name: "email_draft",
      description: "Save an email draft for a CRM contact (subject, body); nothing is sent (email_send does that, after a person approves).",
      risk: "AUTO+",
      input: z.strictObject({ contactId: ContactId, subject: z.string().min(1).max(200), body: z.string().min(1).max(20_000) }),
      handler: (input, ctx) => api.request("email_draft", "POST", "/crm/drafts", ctx, { body: input, key: ctx.idempotencyKey }),
      rollback: async (_input, output, ctx) => api.request("email_draft", "DELETE", `/crm/drafts/${DraftOutput.parse(output).draft.id}`, ctx),
    }),
    defineTool({
      name: "cms_draft",
      description: "Save a draft post in a site's CMS (title, body); it is not published.",
      risk: "AUTO+",
      input: z.strictObject({ site: Site, title: z.string().min(1).max(200), body: z.string().min(1).max(100_000) }),
      handler: (input, ctx) => api.request("cms_draft", "POST", `/cms/${input.site}/drafts`, ctx, { body: { title: input.title, body: input.body }, key: ctx.idempotencyKey }),
      rollback: async (input, output, ctx) => api.request("cms_draft", "DELETE", `/cms/${input.site}/drafts/${DraftOutput.parse(output).draft.id}`, ctx),
    }),
    defineTool({
      name: "crm_update",
      description: "Change a CRM contact's stage, owner, plan or notes; undone by writing back the values it replaced.",
      risk: "PROPOSE",
      input: z
        .strictObject({
          id: ContactId,
          stage: z.enum(["lead", "qualified", "customer", "churned"]).optional(),
          owner: z.string().min(1).max(64).optional(),
          plan: z.string().min(1).max(64).nullable().optional(),
          notes: z.string().max(2000).optional(),
        })
        .refine((i) => i.stage !== undefined || i.owner !== undefined || i.plan !== undefined || i.notes !== undefined, { error: "name at least one field to change" }),
      handler: (input, ctx) => {
        const { id, ...fields } = input;
        return api.request("crm_update", "PATCH", `/crm/contacts/${id}`, ctx, { body: fields });
      },
      rollback: async (input, output, ctx) => {
        const previous = z.object({ previous: z.record(z.string(), z.unknown()) }).parse(output).previous;
        if (Object.keys(previous).length === 0) throw new FleetError("PROPOSAL_STATE", "crm_update recorded no replaced values to restore");
        return api.request("crm_update", "PATCH", `/crm/contacts/${input.id}`, ctx, { body: previous });
      },
    }),
    defineTool({
      name: "meta_tags",
      description: "Set a live page's title and/or meta description in the CMS; undone by restoring the previous ones.",
      risk: "PROPOSE",
      input: z
        .strictObject({ site: Site, slug: z.string().startsWith("/").max(300), title: z.string().min(1).max(200).optional(), metaDescription: z.string().max(400).optional() })
        .refine((i) => i.title !== undefined || i.metaDescription !== undefined, { error: "name a title, a metaDescription or both" }),
      handler: (input, ctx) => api.request("meta_tags", "PUT", `/cms/${input.site}/meta`, ctx, { body: { slug: input.slug, title: input.title, metaDescription: input.metaDescription } }),
      rollback: async (input, output, ctx) => {
        const previous = z.object({ previous: z.object({ title: z.string(), metaDescription: z.string() }) }).parse(output).previous;
        return api.request("meta_tags", "PUT", `/cms/${input.site}/meta`, ctx, { body: { slug: input.slug, ...previous } });
      },
    }),
  ];
}
