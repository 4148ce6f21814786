"""Hello, world over h2, spdy/3.1, spdy/3, spdy/2 and HTTP/1.1.

    python examples/hello.py [--port 8443]

Then ``curl -k https://localhost:8443/`` (h2), ``curl -k --http1.1 ...``, or
``python -m tornado_spdy fetch -k --protocol spdy/3 https://localhost:8443/``.
"""

import argparse
import asyncio

import tornado.web

from tornado_spdy import SPDYServer
from tornado_spdy.testing import development_ssl_context


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(f"Hello, world! ({self.request.framing})\n")


def make_app() -> tornado.web.Application:
    return tornado.web.Application([("/", Hello)])


async def main(port: int = 8443) -> None:
    server = SPDYServer(make_app(), ssl_options=development_ssl_context())
    server.listen(port, "127.0.0.1")
    print(f"https://localhost:{port}/", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8443)
    asyncio.run(main(parser.parse_args().port))
