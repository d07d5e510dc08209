// Builds the JavaScript guests with componentize-js's componentize() API (not `jco componentize`,
// whose CLI fails on Node 20), against the WIT in wit/ (world `handler`):
//
//   jobs/wasm/handler-js.wasm          fetch() and the fetch event disabled: WASI 0.2 CLI imports
//                                      only (stdio, clocks, random, ...), no wasi:http.
//   jobs/wasm/handler-js-default.wasm  componentize-js's defaults: imports wasi:http as well.
//   jobs/wasm/fetch-js.wasm            fetch.js, with the defaults: fetch() is wasi:http.
//
//     node jobs/guests-js/build.mjs [OUT_DIR]     (default: jobs/wasm)
//
// jobs/build.sh runs it after `npm ci`.
import { mkdir, writeFile, rename } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { componentize } from "@bytecodealliance/componentize-js";

const here = dirname(fileURLToPath(import.meta.url));
const witPath = resolve(here, "../../wit");
const outDir = resolve(process.argv[2] ?? join(here, "../wasm"));

const builds = [
  { source: "handler.js", out: "handler-js.wasm", disableFeatures: ["http", "fetch-event"] },
  { source: "handler.js", out: "handler-js-default.wasm" },
  { source: "fetch.js", out: "fetch-js.wasm" },
];

await mkdir(outDir, { recursive: true });
for (const b of builds) {
  const opts = { sourcePath: join(here, b.source), witPath, worldName: "handler" };
  if (b.disableFeatures) opts.disableFeatures = b.disableFeatures;
  let component;
  try {
    ({ component } = await componentize(opts));
  } catch (e) {
    console.error(`error: componentize-js could not build ${b.out} from ${b.source}:`);
    console.error(e?.stack ?? e);
    process.exit(1);
  }
  const out = join(outDir, b.out);
  await writeFile(`${out}.tmp`, component); // then renamed: never a half-written component
  await rename(`${out}.tmp`, out);
  console.error(`built ${out} (${component.length} bytes)`);
}
