// lineChartsSvg (src/train/plot.ts): panels side by side with axes, lines, markers and legends.
import assert from "node:assert/strict";
import { lineChartsSvg } from "../mod.ts";

Deno.test("lineChartsSvg draws panels side by side, each with its axes, lines and legend", () => {
  const a = { name: "AdamW <1>", points: [[1, 10], [2, 8], [3, NaN]] as [number, number][] };
  const b = { name: "Muon", points: [[1, 10], [3, 7]] as [number, number][], markers: true };
  const svg = lineChartsSvg([
    { title: "vs step", series: [a, b] },
    { title: "vs time", xLabel: "seconds", yLabel: "val loss", series: [a, b] },
  ], { panelWidth: 400, panelHeight: 300 });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="800" height="300"/);
  assert.equal((svg.match(/<g transform="translate\((0|400) 0\)">/g) ?? []).length, 2);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 4);
  assert.equal((svg.match(/<circle/g) ?? []).length, 2 * (2 + 1)); // Muon's points + its legend dot
  assert.equal((svg.match(/AdamW &#60;1&#62;<\/text>/g) ?? []).length, 2);
  assert.match(svg, />seconds<\/text>[\s\S]*>val loss<\/text>/);
  assert.doesNotMatch(svg, /NaN/);
  assert.throws(() => lineChartsSvg([]), /lineChartsSvg: expected a non-empty array of charts/);
});
