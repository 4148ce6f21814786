"""The test cases tornado_spdy offers its users run over every protocol."""

import tornado.web

from tornado_spdy.testing import AsyncSPDYTestCase, AsyncSSLTestCase


class Framing(tornado.web.RequestHandler):
    def get(self):
        self.write({"framing": self.request.framing, "version": self.request.version})


def make_app():
    return tornado.web.Application([("/", Framing)])


class SSLTest(AsyncSSLTestCase):
    def get_app(self):
        return make_app()

    def test_negotiates_h2_by_alpn(self):
        response = self.fetch("/")
        assert response.code == 200
        assert response.framing == "h2"


class EveryProtocolTest(AsyncSPDYTestCase):
    def get_app(self):
        return make_app()

    def test_request_runs_over_the_protocol_of_the_variant(self):
        response = self.fetch("/")
        assert response.code == 200
        assert response.framing == self.protocol
        assert tornado.escape.json_decode(response.body)["framing"] == self.protocol


def test_a_variant_exists_for_each_protocol():
    names = {
        cls.protocol
        for cls in (
            EveryProtocolTest,
            globals()["EveryProtocolTest_spdy3_1"],
            globals()["EveryProtocolTest_spdy3"],
            globals()["EveryProtocolTest_spdy2"],
            globals()["EveryProtocolTest_http1_1"],
        )
    }
    assert names == {"h2", "spdy/3.1", "spdy/3", "spdy/2", "http/1.1"}
