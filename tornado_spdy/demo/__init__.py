"""The demo site of ``python -m tornado_spdy serve``: a page that shows the
protocol it was fetched over, with a stylesheet and a script beside it."""

from __future__ import annotations

import os
from typing import Any

import tornado.web

HERE = os.path.dirname(os.path.abspath(__file__))


class DemoPage(tornado.web.RequestHandler):
    def get(self) -> None:
        self.render("index.html")


def make_app(directory: str | None = None, **settings: Any) -> tornado.web.Application:
    """An application serving ``directory`` (files, ``index.html`` for
    folders), or the demo page when ``directory`` is None."""
    if directory is not None:
        handlers: list[Any] = [
            (
                r"/(.*)",
                tornado.web.StaticFileHandler,
                {"path": directory, "default_filename": "index.html"},
            )
        ]
        return tornado.web.Application(handlers, **settings)
    return tornado.web.Application(
        [(r"/", DemoPage)],
        template_path=HERE,
        static_path=os.path.join(HERE, "static"),
        compress_response=True,
        **settings,
    )
