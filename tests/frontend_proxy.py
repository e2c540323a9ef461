"""Serve another ComfyUI frontend release in front of a running ComfyUI server, so that one server per ComfyUI
version serves every frontend the browser tests run (instead of one server per frontend).

The proxy answers what ComfyUI itself would answer from its web root (``--front-end-root``) out of ``web_root``:
``/``, the frontend's static files, and the list of frontend extension scripts (``/extensions``, whose core entries
ComfyUI reads from its own web root). Everything else -- the API, custom nodes' web folders, templates, the
websocket -- goes to the real server unchanged.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "origin", "connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
               "content-encoding", "accept-encoding"}


class FrontendProxy:
    """``base``: the address the browser opens. ``server``: the ComfyUI server (a ComfyServer: its ``base`` URL is
    forwarded to, and its other attributes -- get, post, log, output ... -- are the proxy's); ``backend_root``: its
    own web root (the extensions listed from there are replaced by those of ``web_root``)."""

    def __init__(self, server, backend_root: Path, web_root: Path, port: int):
        self.server, self.backend = server, server.base
        self.backend_root, self.web_root = Path(backend_root), Path(web_root).resolve()
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __getattr__(self, name: str):
        if name == "server":  # not set yet
            raise AttributeError(name)
        return getattr(self.server, name)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> "FrontendProxy":
        self._thread.start()
        if not self._started.wait(30):
            raise TimeoutError("the frontend proxy did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._session = self._loop.run_until_complete(self._new_session())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._session.close())

    @staticmethod
    async def _new_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(auto_decompress=False)

    # -- requests -------------------------------------------------------------------------------------------------
    def _static_file(self, path: str) -> Path | None:
        if path in ("", "/"):
            return self.web_root / "index.html"
        candidate = (self.web_root / path.lstrip("/")).resolve()
        if candidate.is_file() and self.web_root in candidate.parents:
            return candidate
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if request.method == "GET":
            if request.path in ("/extensions", "/api/extensions"):
                return await self._extensions(request)
            found = self._static_file(request.path)
            if found is not None:
                headers = {"Cache-Control": "no-cache"} if found.name == "index.html" else {}
                return web.FileResponse(found, headers=headers)
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.backend + request.path_qs, headers=headers,
                                         data=await request.read(), allow_redirects=False) as r:
            body = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=r.status, body=body, headers=out)

    async def _extensions(self, request: web.Request) -> web.Response:
        """ComfyUI lists its web root's ``extensions/**/*.js`` and the custom nodes' scripts: keep the latter and
        list this frontend's own core scripts instead of the backend frontend's."""
        async with self._session.get(self.backend + request.path_qs) as r:
            listed = await r.json()
        custom = [e for e in listed if not (self.backend_root / e.lstrip("/")).is_file()]
        own = sorted("/" + p.relative_to(self.web_root).as_posix() for p in (self.web_root / "extensions").rglob("*.js"))
        return web.json_response(own + custom)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        url = self.backend.replace("http://", "ws://") + request.path_qs
        async with self._session.ws_connect(url) as upstream:
            async def pump(src, dst):
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    else:
                        break
            tasks = [asyncio.ensure_future(pump(upstream, client)), asyncio.ensure_future(pump(client, upstream))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
        await client.close()
        return client
