"""Fetch a page with SPDYClient and receive what the server pushes with it.

    python examples/fetch_with_push.py https://localhost:8443/ [--protocol spdy/3.1]

Run examples/push_page/app.py first. The pushed assets arrive through
``push_callback``; fetching one of them afterwards is answered from the push,
without a request.
"""

import argparse
import asyncio

from tornado_spdy import SPDYClient


async def main(url: str, protocol: str | None = None) -> list[str]:
    client = SPDYClient(force_instance=True)
    lines = []
    pushed = []
    page = await client.fetch(
        url, validate_cert=False, protocol=protocol, push_callback=pushed.append
    )
    lines.append(f"{page.code} {url} over {page.framing}")
    for asset_url in page.associated_urls:
        asset = await client.fetch(asset_url, validate_cert=False, protocol=protocol)
        how = "from the push" if getattr(asset, "pushed", False) else "fetched"
        lines.append(f"{asset.code} {asset_url} ({len(asset.body)} bytes, {how})")
    client.close()
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--protocol")
    args = parser.parse_args()
    for line in asyncio.run(main(args.url, args.protocol)):
        print(line)
