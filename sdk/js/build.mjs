// Build a JavaScript weft job into a WebAssembly component:
//
//   node sdk/js/build.mjs job.js -o job.wasm
//
// bundles the job with this SDK (rolldown), then runs componentize-js over the
// bundle with the weft WIT world `job` (WASI http and fetch-event turned off:
// weft grants neither). The job module is evaluated once, at build time, and
// snapshotted: top-level code runs then, not in every task. The tools come from
// this directory's package.json (`npm ci`), or from WEFT_JS_TOOLS, a directory
// holding their node_modules.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const sdk = dirname(fileURLToPath(import.meta.url));
const usage = "usage: node sdk/js/build.mjs <job.js> -o <job.wasm>\n\nBuild a JavaScript weft job (a module calling weft.main) into a WebAssembly component.";

function fail(message) {
  console.error(`weft build: ${message}`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  console.log(usage);
  process.exit(0);
}
const o = args.indexOf("-o");
if (o < 0 || !args[o + 1] || args.length !== 3) fail(usage);
const output = resolve(args[o + 1]);
const job = resolve(args.filter((_a, i) => i !== o && i !== o + 1)[0]);
if (!existsSync(job)) fail(`${job} does not exist`);

const tools = process.env.WEFT_JS_TOOLS || sdk;
const bin = (name) => join(tools, "node_modules", ".bin", name);
if (!existsSync(bin("componentize-js"))) {
  fail(`componentize-js not found under ${tools}/node_modules: run \`npm ci\` in ${sdk} (or \`cargo xtask guests\` in the weft repository)`);
}
let wit = process.env.WEFT_WIT;
for (let dir = sdk; !wit && dir !== dirname(dir); dir = dirname(dir)) {
  if (existsSync(join(dir, "wit", "weft.wit"))) wit = join(dir, "wit");
}
if (!wit) fail("cannot find wit/weft.wit; set WEFT_WIT to the directory holding it");

const tmp = mkdtempSync(join(tmpdir(), "weft-js-"));
try {
  const entry = join(tmp, "entry.js");
  writeFileSync(entry, `import ${JSON.stringify(job)};\nexport { dispatcher, run } from ${JSON.stringify(join(sdk, "src", "guest.js"))};\n`);
  const config = join(tmp, "rolldown.config.mjs");
  const bundle = join(tmp, "bundle.js");
  const index = JSON.stringify(join(sdk, "src", "index.js"));
  writeFileSync(
    config,
    `export default { input: ${JSON.stringify(entry)}, external: [/^weft:grid\\//], ` +
      `resolve: { alias: { weft: ${index} } }, output: { file: ${JSON.stringify(bundle)}, format: "esm" } };\n`,
  );
  execFileSync(bin("rolldown"), ["-c", config, "--logLevel", "warn"], { stdio: "inherit" });
  execFileSync(bin("componentize-js"), ["--wit", wit, "--world-name", "job", "-d", "http", "fetch-event", "-o", output, bundle], {
    stdio: "inherit",
  });
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
