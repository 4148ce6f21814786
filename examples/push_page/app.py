"""A page that pushes its stylesheet and script with the HTML.

    python examples/push_page/app.py [--port 8443]

The template names its assets with ``static_url(...)``; the ``static_push``
setting makes each one a push (over h2 and SPDY). ``nghttp -nas
https://localhost:8443/`` shows the pushed streams; over HTTP/1.1, with
``early_hints``, the assets are announced in a 103 response instead.
"""

import argparse
import asyncio
import os

import tornado.web

from tornado_spdy import SPDYServer
from tornado_spdy.testing import development_ssl_context
from tornado_spdy.web import RequestHandler

HERE = os.path.dirname(os.path.abspath(__file__))


class Page(RequestHandler):
    def get(self) -> None:
        self.render("page.html")


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [("/", Page)],
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        static_push=True,
        early_hints=True,
    )


async def main(port: int = 8443) -> None:
    SPDYServer(make_app(), ssl_options=development_ssl_context()).listen(
        port, "127.0.0.1"
    )
    print(f"https://localhost:{port}/", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8443)
    asyncio.run(main(parser.parse_args().port))
