// Parses Mermaid texts (a JSON list on stdin) with Mermaid's own parser; prints a JSON
// list: null for each text that parses, else the error. Run by tests/dsl/test_diagram_syntax.py.
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
let input = "";
for await (const chunk of process.stdin) input += chunk;
const texts = JSON.parse(input);
const out = [];
for (const text of texts) {
  try { await mermaid.parse(text); out.push(null); }
  catch (e) { out.push(String(e.message || e).split("\n").slice(0, 3).join(" | ")); }
}
console.log(JSON.stringify(out));
