import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { FleetError, formatPath, type FieldIssue } from "../protocol/index.js";

/*
 * Reference memory: what the company knows that no agent learned by itself — its people, projects, decisions and
 * lessons — kept by people as YAML files in the fleet's knowledge directory (memory.knowledgeDir) and read-only to the
 * fleet. Each file is optional and holds a list. The files are validated whole and strictly (unknown keys refused, so a
 * typo is reported rather than silently lost), and every bad field of every file is reported at once.
 */

const Text = z.string().trim().min(1);
const IsoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "must be a date yyyy-mm-dd")
  .refine((s) => {
    const d = new Date(`${s}T00:00:00Z`);
    return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
  }, "is not a calendar date");

export const Person = z.object({ name: Text, role: Text, contact: Text.optional(), notes: Text.optional() }).strict();
export type Person = z.infer<typeof Person>;
export const Project = z
  .object({ name: Text, status: z.enum(["planned", "active", "paused", "done", "cancelled"]), owner: Text.optional(), summary: Text })
  .strict();
export type Project = z.infer<typeof Project>;
export const Decision = z.object({ date: IsoDay, title: Text, decision: Text, why: Text, by: Text.optional() }).strict();
export type Decision = z.infer<typeof Decision>;
export const Lesson = z.object({ date: IsoDay, lesson: Text, context: Text.optional() }).strict();
export type Lesson = z.infer<typeof Lesson>;

export interface Knowledge {
  people: Person[];
  projects: Project[];
  decisions: Decision[];
  lessons: Lesson[];
}

export type KnowledgeKind = "person" | "project" | "decision" | "lesson";
export interface KnowledgeItem {
  kind: KnowledgeKind;
  /** one short line, as it goes into a prompt */
  text: string;
  score: number;
}

/** The files a knowledge directory may hold; any other YAML file there is refused as a likely misspelling. */
export const KNOWLEDGE_FILES = ["people.yaml", "projects.yaml", "decisions.yaml", "lessons.yaml"] as const;
type KnowledgeFile = (typeof KNOWLEDGE_FILES)[number];
const KNOWN_FILES: ReadonlySet<string> = new Set(KNOWLEDGE_FILES);

/** knowledge files are written by hand; anything bigger is a mistake (or a dump) that would not fit a prompt anyway */
const MAX_FILE_BYTES = 1_000_000;
const MAX_ITEM_CHARS = 240;

export function emptyKnowledge(): Knowledge {
  return { people: [], projects: [], decisions: [], lessons: [] };
}

/** A bad field: the file it is in and its path inside that file. */
interface FileIssue {
  file: string;
  at: PropertyKey[];
  message: string;
}

/** Loads the directory; a missing directory is no knowledge. Any bad file is KNOWLEDGE_INVALID naming file and field. */
export async function loadKnowledge(dir: string): Promise<Knowledge> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw invalid(dir, [{ file: dir, at: [], message: "is not a directory" }]);
    names = await readdir(dir);
  } catch (err) {
    if (err instanceof FleetError) throw err;
    if (codeOf(err) === "ENOENT") return emptyKnowledge();
    throw invalid(dir, [{ file: dir, at: [], message: `cannot read the directory: ${reasonOf(err)}` }], err);
  }
  const issues: FileIssue[] = [];
  for (const name of names) {
    if (/\.ya?ml$/.test(name) && !KNOWN_FILES.has(name)) {
      issues.push({ file: name, at: [], message: `not a knowledge file (expected ${KNOWLEDGE_FILES.join(", ")})` });
    }
  }
  const load = async <T>(file: KnowledgeFile, schema: z.ZodType<T[]>): Promise<T[]> => {
    if (!names.includes(file)) return [];
    const data = await readYaml(join(dir, file), file, issues);
    if (data === undefined) return [];
    const result = schema.safeParse(data);
    if (result.success) return result.data;
    for (const issue of result.error.issues) issues.push({ file, at: issue.path, message: issue.message });
    return [];
  };
  const knowledge: Knowledge = {
    people: await load("people.yaml", z.array(Person)),
    projects: await load("projects.yaml", z.array(Project)),
    decisions: await load("decisions.yaml", z.array(Decision)),
    lessons: await load("lessons.yaml", z.array(Lesson)),
  };
  if (issues.length > 0) throw invalid(dir, issues);
  return knowledge;
}

/** The YAML document as plain data ([] for an empty file), or undefined with the reason added to `issues`. */
async function readYaml(path: string, file: string, issues: FileIssue[]): Promise<unknown> {
  const refuse = (message: string) => void issues.push({ file, at: [], message });
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > MAX_FILE_BYTES) return refuse(`${size} bytes; a knowledge file may have at most ${MAX_FILE_BYTES}`);
    text = await readFile(path, "utf8");
  } catch (err) {
    return refuse(`cannot read the file: ${reasonOf(err)}`);
  }
  const lineCounter = new LineCounter();
  // one line per error, with our own position: yaml's pretty errors add a multi-line excerpt
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const { line, col } = lineCounter.linePos(err.pos[0]);
      refuse(`YAML syntax error at line ${line}, column ${col}: ${err.message}`);
    }
    return undefined;
  }
  try {
    return doc.toJS() ?? [];
  } catch (err) {
    // toJS throws on alias bombs (maxAliasCount) and similar structural abuse
    return refuse(`cannot build the YAML document: ${reasonOf(err)}`);
  }
}

/** Message lines read `decisions.yaml: [2].date: ...`; each detail's path is the same place, `decisions.yaml[2].date`. */
function invalid(dir: string, issues: FileIssue[], cause?: unknown): FleetError {
  const lines = issues.map((i) => (i.at.length === 0 ? `${i.file}: ${i.message}` : `${i.file}: ${formatPath(i.at)}: ${i.message}`));
  const details: FieldIssue[] = issues.map((i) => ({ path: formatPath([i.file, ...i.at]), message: i.message }));
  return new FleetError("KNOWLEDGE_INVALID", `knowledge in ${dir} is invalid:\n${lines.join("\n")}`, { details, cause });
}

/*
 * Search: keyword overlap. Query and item are cut into lower-case words (letters and digits, stop words and one-letter
 * words dropped, a plural "s" folded); an item's score is the share of the query's distinct words it contains, in (0, 1].
 * Items sharing no word are left out. Ties go by file order (people, projects, decisions, lessons), except that of two
 * dated items (decisions, lessons) the newer comes first. Crude on purpose: the files are small, the words people use
 * for them are their own, and it needs no model; semantic recall is the vector store's job.
 */
const STOP_WORDS = new Set(
  "a an and are as at be but by did do does for from has have how i in is it its me my no not of on or our so than that the their them then there these this to was we were what when where which who why will with you your".split(" "),
);

export function keywords(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    if (raw.length < 2 || STOP_WORDS.has(raw)) continue;
    out.add(raw.length > 3 && raw.endsWith("s") && !raw.endsWith("ss") ? raw.slice(0, -1) : raw);
  }
  return out;
}

/** The `limit` items sharing the most of the query's words, best first, each rendered as one line. */
export function searchKnowledge(knowledge: Knowledge, query: string, limit: number): KnowledgeItem[] {
  const wanted = keywords(query);
  if (wanted.size === 0 || limit <= 0) return [];
  const scored = knowledgeItems(knowledge).flatMap((item, order) => {
    // the fields' own words, not the line's labels ("Contact:", "Why:"), so a label never makes a match
    const words = keywords(item.fields.join(" "));
    let shared = 0;
    for (const word of wanted) if (words.has(word)) shared++;
    return shared === 0 ? [] : [{ kind: item.kind, text: item.text, date: item.date, score: shared / wanted.size, order }];
  });
  // undated items (people, projects) come before dated ones in file order, so this is one total order
  scored.sort((a, b) => b.score - a.score || (a.date && b.date ? b.date.localeCompare(a.date) : 0) || a.order - b.order);
  return scored.slice(0, limit).map(({ kind, text, score }) => ({ kind, text, score }));
}

interface RenderedItem {
  kind: KnowledgeKind;
  text: string;
  /** the words a query is matched against */
  fields: string[];
  /** for ordering ties only; "" when undated */
  date: string;
}

/** Every item as its prompt line, in file order. */
function knowledgeItems(k: Knowledge): RenderedItem[] {
  const opt = (label: string, value: string | undefined) => (value ? ` ${label}${value}` : "");
  const values = (o: object) => Object.values(o).filter((v): v is string => typeof v === "string");
  return [
    ...k.people.map((p) => ({ kind: "person" as const, date: "", fields: values(p), text: `${p.name}: ${p.role}.${opt("Contact: ", p.contact)}${opt("Notes: ", p.notes)}` })),
    ...k.projects.map((p) => ({ kind: "project" as const, date: "", fields: values(p), text: `${p.name} (${p.status}${p.owner ? `, owner ${p.owner}` : ""}): ${p.summary}` })),
    ...k.decisions.map((d) => ({ kind: "decision" as const, date: d.date, fields: values(d), text: `${d.date} ${d.title}: ${d.decision} Why: ${d.why}${opt("By: ", d.by)}` })),
    ...k.lessons.map((l) => ({ kind: "lesson" as const, date: l.date, fields: values(l), text: `${l.date} ${l.lesson}${opt("Context: ", l.context)}` })),
  ].map((item) => ({ ...item, text: oneLine(item.text) }));
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= MAX_ITEM_CHARS ? flat : `${flat.slice(0, MAX_ITEM_CHARS - 1)}…`;
}

function codeOf(err: unknown): unknown {
  return err instanceof Error && "code" in err ? err.code : undefined;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
