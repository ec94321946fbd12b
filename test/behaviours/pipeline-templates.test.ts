import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { holds, renderText, renderValue, resolvePath, type PipelineScope } from "../../behaviours/index.js";

const scope: PipelineScope = {
  input: { sites: [{ name: "a", url: "http://a/" }], port: 443, empty: [] },
  steps: { http: { output: [{ status: 503, ok: false }] }, skipped: { skipped: true } },
  findings: [{ subject: "a", key: "down", severity: "critical", summary: "a is down" }],
  item: { name: "a", url: "http://a/" },
  output: { ok: false, status: 503, daysLeft: 9 },
};

describe("pipeline templates and conditions", () => {
  it("a path reads keys and list indexes; a missing segment is undefined", () => {
    assert.equal(resolvePath(scope, "steps.http.output.0.status"), 503);
    assert.equal(resolvePath(scope, "input.sites.length"), 1);
    assert.equal(resolvePath(scope, "steps.skipped.output.x"), undefined);
    assert.equal(resolvePath(scope, "input.nope.deeper"), undefined);
    assert.equal(resolvePath(scope, "input..port"), undefined);
  });

  it("a whole placeholder keeps its type; inside text a value is written as JSON; nothing is left out of an input", () => {
    assert.deepEqual(renderValue({ port: "{{input.port}}", url: "{{ item.url }}", sites: "{{input.sites}}", host: "{{item.host}}" }, scope), {
      port: 443,
      url: "http://a/",
      sites: [{ name: "a", url: "http://a/" }],
    });
    assert.equal(renderText("{{item.name}} answers {{output.status}}: {{findings}}", scope), 'a answers 503: [{"subject":"a","key":"down","severity":"critical","summary":"a is down"}]');
    assert.equal(renderText("[{{item.missing}}]", scope), "[]");
  });

  it("conditions: truthy, falsy, empty, nonEmpty, below, above, equal", () => {
    assert.equal(holds({ path: "output.ok", is: "falsy" }, scope), true);
    assert.equal(holds({ path: "output.ok", is: "truthy" }, scope), false);
    assert.equal(holds({ path: "findings", is: "nonEmpty" }, scope), true);
    assert.equal(holds({ path: "input.empty", is: "empty" }, scope), true);
    assert.equal(holds({ path: "input.empty", is: "truthy" }, scope), false, "an empty list is not truthy");
    assert.equal(holds({ path: "input.missing", is: "empty" }, scope), true);
    assert.equal(holds({ path: "output.daysLeft", is: "below", value: 14 }, scope), true);
    assert.equal(holds({ path: "output.daysLeft", is: "above", value: 14 }, scope), false);
    assert.equal(holds({ path: "input.missing", is: "below", value: 14 }, scope), false, "nothing is below anything");
    assert.equal(holds({ path: "output.status", is: "equal", value: 503 }, scope), true);
    assert.equal(holds({ path: "item", is: "equal", value: { name: "a", url: "http://a/" } }, scope), true);
  });
});
