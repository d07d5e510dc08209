// handler-js: a component of the `wasmq:job/handler` world (wit/job.wit), in JavaScript.
//
// Built by jobs/build.sh (build.mjs, through componentize-js) into jobs/wasm/handler-js.wasm.
// It behaves as the Rust handler (jobs/guests/handler/src/lib.rs): `handle` answers with a JSON
// object describing the call (the job id, its args, the number of env pairs, the input's length
// and the input upper-cased), and some inputs misbehave on purpose: `loop` spins forever, `grow`
// allocates without bound, `flood` writes to stdout forever, and `fail` returns `err`.
//
// componentize-js's conventions: `input` is a Uint8Array, the `context` record is an object
// { id, args, env } with `env` an array of [key, value] pairs; a `result<T, E>` export returns
// `T` for `ok`. A thrown string, or an object with a `payload`, is `err`; a thrown Error object
// traps instead. SpiderMonkey reports running out of memory as a thrown "out of memory" string,
// so under a memory limit `grow` ends as err("out of memory") rather than as a trap.

const decoder = new TextDecoder(); // not fatal: invalid UTF-8 becomes U+FFFD, as from_utf8_lossy
const encoder = new TextEncoder();

export function handle(input, ctx) {
  const text = decoder.decode(input);
  switch (text) {
    case "loop":
      for (;;) {}
    case "grow": {
      const hoard = [];
      for (;;) {
        hoard.push(new Uint8Array(1 << 20).fill(1));
      }
    }
    case "flood": {
      const line = "x".repeat(1024);
      for (;;) {
        console.log(line);
      }
    }
    case "fail":
      throw `job ${ctx.id} asked to fail`;
  }
  const answer = {
    id: ctx.id,
    args: ctx.args,
    env: ctx.env.length,
    input_len: input.length,
    upper: text.toUpperCase(),
  };
  return encoder.encode(JSON.stringify(answer));
}
