// A tool module: the fleet loads it from `toolModules:` in its config (examples/tools/fleet.yaml) and serves word_count
// like any built-in tool: on the agents' allow lists, checked by the tool host and the broker, audited.
import { z } from "zod";
import { defineTool } from "natsfleet/tools";

export default [
  defineTool({
    name: "word_count",
    description: "Count the words, lines and characters of a text, and the most frequent words.",
    risk: "AUTO", // reads only: runs at once, no proposal
    input: z.strictObject({
      text: z.string().min(1).max(100_000),
      top: z.number().int().min(0).max(50).default(5),
    }),
    run: async ({ text, top }, ctx) => {
      const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
      const counts = new Map();
      for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
      const frequent = [...counts.entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, top)
        .map(([word, count]) => ({ word, count }));
      ctx.log.debug({ words: words.length }, "counted");
      return { words: words.length, lines: text.split("\n").length, characters: text.length, frequent };
    },
  }),
];
