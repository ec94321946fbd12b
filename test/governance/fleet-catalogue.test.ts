import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { loadFleetConfig, shippedFleetNames, shippedFleetPath } from "../../config/index.js";
import { fleetToolRisks, loadFleetTools } from "../../governance/index.js";
import { runFleet } from "../helpers/run-cli.js";

/** Config that tells the truth: the shipped fleets name only tools that exist and ship a skill file for every skill; `fleet up` refuses one that does not. */

describe("the fleet's catalogue at start", () => {
  for (const fleet of shippedFleetNames()) {
    it(`${fleet}.yaml: every tool it names exists, and every skill has its skill file`, async () => {
      const file = shippedFleetPath(fleet);
      const config = loadFleetConfig(file);
      const known = Object.keys(fleetToolRisks(await loadFleetTools(config, file)));
      for (const agent of config.agents) for (const tool of agent.tools) assert.ok(tool === "*" || known.includes(tool), `${agent.id}: ${tool}`);
      assert.ok(config.memory.skillsDir, `${fleet} names its skills directory`);
      const skills = resolve(dirname(file), config.memory.skillsDir);
      for (const agent of config.agents) {
        for (const skill of agent.skills) {
          const path = join(skills, `${skill.id}.md`);
          assert.ok(existsSync(path), `${agent.id}'s skill ${skill.id} has ${path}`);
          const text = readFileSync(path, "utf8");
          assert.match(text, /^# \S/, `${path} starts with its title`);
          assert.ok(text.length > 200 && text.length < 3_200, `${path} is methodology within the default skills budget (${text.length} characters)`);
        }
      }
    });
  }

  it("fleet up and fleet creds refuse an allow list naming a tool nobody provides, with the path and \"did you mean\", before starting anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-unknown-tool-"));
    try {
      const text = readFileSync(shippedFleetPath("local"), "utf8").replace("tools: [web_fetch, feed_fetch, channel_post]", "tools: [web_fetch, feed_fetc, channel_post]");
      const file = join(dir, "fleet.yaml");
      writeFileSync(file, text.replace("knowledgeDir: ../knowledge", `knowledgeDir: ${JSON.stringify(resolve(dirname(shippedFleetPath("local")), "..", "knowledge"))}`));
      for (const args of [["up", "--config", file], ["creds", join(dir, "creds"), "--config", file]]) {
        const out = await runFleet(args, { cwd: dir });
        assert.equal(out.code, 2, `${args[0]}: ${out.stderr}`);
        assert.match(out.stderr, /CONFIG_INVALID: .*fleet\.yaml: agents\[1\]\.tools\[1\]: no tool "feed_fetc" \(did you mean "feed_fetch"\?\)/);
      }
      assert.equal(existsSync(join(dir, ".fleet")), false, "nothing was started or written");
      assert.equal(existsSync(join(dir, "creds")), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
