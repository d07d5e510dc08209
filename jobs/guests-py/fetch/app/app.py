"""fetch-py: a WASI command, in Python, that sends an HTTP GET through
wasi:http/outgoing-handler for each URL argument and prints one line per request, as the
Rust client (jobs/guests/fetch) does: `status N bytes M`, `error CODE` (the response never
came: the host's error code, e.g. `HttpRequestDenied`), or `status N bytes M body-error
CODE`.

Built by jobs/build.sh with componentize-py into jobs/wasm/fetch-py.wasm, for the world in
../wit (the CLI's imports, the outgoing handler, `wasi:cli/run` exported).
"""

import sys

import wit_world
from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http


def code_name(code) -> str:
    """`HttpRequestDenied` for `ErrorCode_HttpRequestDenied()`."""
    return type(code).__name__.removeprefix("ErrorCode_")


def fetch(url: str) -> str:
    scheme_text, _, rest = url.partition("://")
    scheme = http.Scheme_Https() if scheme_text == "https" else http.Scheme_Http()
    authority, slash, path = rest.partition("/")
    request = http.OutgoingRequest(http.Fields())
    request.set_scheme(scheme)
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    body = request.body()
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return f"refused {code_name(e.value)}"
    http.OutgoingBody.finish(body, None)
    future.subscribe().block()
    outcome = future.get()
    match outcome:
        case Ok(Ok(response)):
            pass
        case Ok(Err(code)):
            return f"error {code_name(code)}"
        case other:
            return f"error {other!r}"
    # A child resource must go before its parent: the stream, then the body, then the
    # response.
    with response:
        status = response.status()
        with response.consume() as body, body.stream() as stream:
            received = 0
            while True:
                try:
                    received += len(stream.blocking_read(65536))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_LastOperationFailed):
                        error = e.value.value
                        code = http.http_error_code(error)
                        why = code_name(code) if code else error.to_debug_string()
                        return f"status {status} bytes {received} body-error {why}"
                    return f"status {status} bytes {received}"


class Run(exports.Run):
    def run(self) -> None:
        for url in sys.argv[1:]:
            print(fetch(url), flush=True)
