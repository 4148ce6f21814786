from tornado.testing import gen_test
from tornado.escape import json_decode
from tests.test_web_matrix import WebMatrixTest as Base, MatrixMixin
from tornado_spdy.testing import AsyncSPDYTestCase

class RawUnicode(MatrixMixin, AsyncSPDYTestCase):
    get_app = Base.get_app
    @gen_test(timeout=10)
    async def test_raw(self):
        try:
            r = await self.fetch_async("/unicode/ñandú?q=ü")
            print("\nRAW", self.protocol, r.code, r.body[:200])
        except Exception as e:
            print("\nRAW", self.protocol, "EXC", repr(e))
