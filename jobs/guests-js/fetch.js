// fetch-js: a component of the `wasmq:job/handler` world (wit/job.wit) whose `handle` sends an
// HTTP GET with the standard fetch() for each URL of its input (a JSON array of URLs), and
// answers one line per request: `status N bytes M`, or `error MESSAGE` when fetch() failed.
//
// Built by jobs/build.sh (build.mjs, through componentize-js with its defaults, so fetch() is
// wasi:http/outgoing-handler) into jobs/wasm/fetch-js.wasm. `handle` is an async function:
// componentize-js runs the event loop until its promise settles.

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export async function handle(input, _ctx) {
  const urls = JSON.parse(decoder.decode(input));
  const lines = [];
  for (const url of urls) {
    try {
      const response = await fetch(url);
      const body = new Uint8Array(await response.arrayBuffer());
      lines.push(`status ${response.status} bytes ${body.length}`);
    } catch (e) {
      lines.push(`error ${e?.message ?? e}`);
    }
  }
  return encoder.encode(lines.join("\n") + "\n");
}
