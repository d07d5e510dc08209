"""handler-py: a component of the `wasmq:job/handler` world (wit/job.wit), in Python.

Built by jobs/build.sh with componentize-py into jobs/wasm/handler-py.wasm. It behaves as the
Rust handler (jobs/guests/handler/src/lib.rs): `handle` answers with a JSON object describing
the call (the job id, its args, the number of env pairs, the input's length and the input
upper-cased), and some inputs misbehave on purpose: `loop` spins forever, `grow` allocates
without bound, `flood` writes to stdout forever, and `fail` returns `err`.

componentize-py's conventions: the app module defines a class named after the world's
bindings class (`WitWorld`, from the generated `wit_world` module); a `result<T, E>` export
returns `T` and raises `componentize_py_types.Err(E)` for `err`.
"""

import json
import os

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Context


class WitWorld(wit_world.WitWorld):
    def handle(self, input: bytes, ctx: Context) -> bytes:
        if input == b"loop":
            while True:
                pass
        if input == b"grow":
            hoard = []
            while True:
                hoard.append(bytearray(b"\x01") * (1 << 20))
        if input == b"flood":
            chunk = b"x" * 1024
            while True:
                try:
                    os.write(1, chunk)  # unbuffered, as the Rust handler's write_all
                except OSError:
                    pass
        if input == b"fail":
            raise Err(f"job {ctx.id} asked to fail")
        text = input.decode("utf-8", errors="replace")  # String::from_utf8_lossy
        answer = {
            "id": ctx.id,
            "args": list(ctx.args),
            "env": len(ctx.env),
            "input_len": len(input),
            "upper": text.upper(),
        }
        return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
