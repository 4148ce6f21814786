"""A streaming upload: the handler takes the body as it arrives, and flow
control holds the client back while the handler is busy.

    python examples/upload.py [--port 8443]
    curl -k --data-binary @big.file https://localhost:8443/upload
"""

import argparse
import asyncio
import hashlib

import tornado.web

from tornado_spdy import SPDYServer
from tornado_spdy.testing import development_ssl_context


@tornado.web.stream_request_body
class Upload(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    async def data_received(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        await asyncio.sleep(0)  # stand-in for real work, e.g. writing to disk

    def put(self) -> None:
        self.post()

    def post(self) -> None:
        self.write(
            {
                "bytes": self.size,
                "sha256": self.digest.hexdigest(),
                "framing": self.request.framing,
            }
        )


def make_app() -> tornado.web.Application:
    return tornado.web.Application([("/upload", Upload)])


async def main(port: int = 8443) -> None:
    SPDYServer(make_app(), ssl_options=development_ssl_context()).listen(
        port, "127.0.0.1"
    )
    print(f"https://localhost:{port}/upload", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8443)
    asyncio.run(main(parser.parse_args().port))
