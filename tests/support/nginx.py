"""Real nginx in front of real server processes, configured by deploy/nginx.conf itself."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.live import ROOT, free_port

CONF = ROOT / "deploy" / "nginx.conf"


def nginx_available() -> bool:
    return shutil.which("nginx") is not None


STATIC_ALIAS = "alias /srv/chat/staticfiles/;"


def render_conf(
    *, backends: list[str], port: int, workdir: Path, static_root: Path | None = None
) -> str:
    """deploy/nginx.conf with the test's ports, logs, pid in `workdir` and static files."""
    conf = CONF.read_text()
    assert STATIC_ALIAS in conf, "deploy/nginx.conf lost its static location"
    conf = conf.replace(STATIC_ALIAS, f"alias {static_root or workdir / 'static'}/;")
    servers = "".join(f"        server {backend};\n" for backend in backends)
    conf, count = re.subn(r"(?m)^        server 127\.0\.0\.1:\d+;\n", "", conf)
    assert count >= 1, "deploy/nginx.conf lost its upstream servers"
    conf = conf.replace("upstream chat_backend {\n", "upstream chat_backend {\n" + servers)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    return conf.replace("http {\n", f"http {{\n    access_log {workdir}/access.log;\n", 1)


class Nginx:
    def __init__(
        self, *, backends: list[str], workdir: Path, static_root: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._conf = workdir / "nginx.conf"
        conf = render_conf(
            backends=backends, port=self.port, workdir=workdir, static_root=static_root
        )
        self._conf.write_text(conf)
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        directives = (
            f"daemon off; pid {self._workdir}/nginx.pid; error_log {self._workdir}/error.log;"
        )
        self._process = subprocess.Popen(
            ["nginx", "-p", str(self._workdir), "-c", str(self._conf), "-g", directives]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start; see {self._workdir}/error.log")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
