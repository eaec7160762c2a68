"""Host wiring for Slack: build the Slack runtime from a Config, serve it over HTTP
(waitress, a production WSGI server) and/or Socket Mode, beside background loops.

``serve()`` is what ``nightops serve`` calls::

    serve(config, socket_mode=True, http_port=None)            # internal app, no public URL
    serve(config, socket_mode=False, http_port=3000, host="0.0.0.0",
          background=[scheduler_loop])                          # HTTP, with the scheduler

It also runs the approval-expiry sweeper (expired requests update their cards and DM the
requester with nobody clicking) and, at start-up, reconciles operations a crash left
unfinished.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from nightops.app import App, SystemClock, build
from nightops.attention import build_attention
from nightops.config import Config
from nightops.scheduler import Scheduler
from nightops.state import open_store
from nightops.workers import Workers
from nightops_core.errors import ConfigError
from nightops_core.ports import Clock, CloudProvider, IdSource, StateStore
from nightops_slack import (
    DEFAULT_EMAIL_HEADER,
    Clients,
    InstalledTokens,
    KvInstallationStore,
    KvOAuthStateStore,
    Linker,
    Messenger,
    OAuthFlow,
    SlackAdapter,
    SocketModeTransport,
    StaticToken,
    TokenSource,
    make_wsgi_app,
)
from nightops_slack.oauth import REDIRECT_PATH

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["HttpServer", "SlackRuntime", "build_slack", "serve", "start_http"]

log = logging.getLogger("nightops.slack")

Loop = Callable[[threading.Event], None]

#: How often pending approvals are checked for expiry.
SWEEP_INTERVAL = 30.0


@attrs.define
class SlackRuntime:
    """Everything the Slack side of one process runs on."""

    app: App
    adapter: SlackAdapter
    messenger: Messenger
    wsgi: WSGIApplication
    workers: Workers
    linker: Linker | None = None
    oauth: OAuthFlow | None = None

    def close(self) -> None:
        self.adapter.close(wait=False)
        self.workers.shutdown(wait=False)


def build_slack(
    config: Config,
    *,
    store: StateStore | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    providers: Mapping[str, CloudProvider] | None = None,
    public_url: str | None = None,
    email_header: str | None = None,
    ack_budget: float = 1.5,
    channel_interval: float = 1.0,
    progress_interval: float = 1.0,
) -> SlackRuntime:
    """Build the service with the Slack notifier, and the Slack adapter around it.

    ``public_url`` (or ``[slack] public_url``) is where this app is reachable; it enables
    the link page and, with client_id/client_secret, the OAuth install flow.
    """
    slack = config.slack
    if slack is None:
        raise ConfigError("No [slack] table in the configuration.")
    store = store if store is not None else open_store(config.state_url)
    clock = clock or SystemClock()
    public_url = public_url or slack.public_url
    email_header = email_header or slack.trusted_email_header
    static: TokenSource | None = StaticToken(slack.bot_token.reveal()) if slack.bot_token else None
    installations = None
    tokens: TokenSource
    if slack.client_id and slack.client_secret:
        installations = KvInstallationStore(store, clock)
        tokens = InstalledTokens(installations, static)
    elif static is not None:
        tokens = static
    else:
        raise ConfigError(
            "Slack needs slack.bot_token (one workspace) or slack.client_id and "
            "slack.client_secret (the Add to Slack flow)."
        )
    clients = Clients(tokens, api_url=slack.api_url, channel_interval=channel_interval)
    messenger = Messenger(clients, store, clock, progress_interval=progress_interval)
    app = build(
        config, notifier=messenger.notifier, store=store, providers=providers, clock=clock, ids=ids
    )
    secret = slack.signing_secret.reveal() if slack.signing_secret else None
    linker = None
    if public_url and secret:
        linker = Linker(
            store,
            clock,
            signing_secret=secret,
            base_url=public_url,
            email_header=email_header or DEFAULT_EMAIL_HEADER,
        )
        app.service.link_url = linker.link_url
    workers = Workers(app.service)
    adapter = SlackAdapter(
        app.service,
        messenger,
        signing_secret=secret,
        submit_jobs=workers.submit,
        ack_budget=ack_budget,
        max_workers=slack.answer_workers,
    )
    oauth = None
    if installations is not None and public_url and slack.client_id and slack.client_secret:
        oauth = OAuthFlow(
            client_id=slack.client_id,
            client_secret=slack.client_secret.reveal(),
            redirect_uri=public_url.rstrip("/") + REDIRECT_PATH,
            clients=clients,
            installations=installations,
            states=KvOAuthStateStore(store, clock),
        )
    wsgi = make_wsgi_app(adapter, linker=linker, oauth=oauth)
    return SlackRuntime(app, adapter, messenger, wsgi, workers, linker, oauth)


class HttpServer:
    """waitress serving a WSGI app on a thread; ``port`` is the bound port (0 = any)."""

    def __init__(
        self, wsgi: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0, threads: int = 8
    ) -> None:
        from waitress.server import create_server  # type: ignore[import-untyped]

        self._server: Any = create_server(
            wsgi,
            host=host,
            port=port,
            threads=threads,
            ident="nightops",
            clear_untrusted_proxy_headers=True,
        )
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nightops-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def _run(self) -> None:
        server = self._server
        # waitress's own run() loops until every socket closes; poll a stop flag instead.
        while not self._stop.is_set():
            server.asyncore.loop(timeout=0.2, map=server._map, count=1)
        for dispatcher in list(server._map.values()):
            dispatcher.close()
        server.task_dispatcher.shutdown()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def start_http(wsgi: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    return HttpServer(wsgi, host=host, port=port).start()


def _sweeper(runtime: SlackRuntime, interval: float) -> Loop:
    def sweep(stop: threading.Event) -> None:
        while True:
            try:
                runtime.adapter.deliver(runtime.app.service.expire_approvals())
            except Exception:  # the sweeper must outlive one bad round
                log.exception("expiring approvals failed")
            if stop.wait(interval):
                return

    return sweep


def serve(
    config: Config,
    *,
    socket_mode: bool,
    http_port: int | None,
    host: str = "127.0.0.1",
    background: Sequence[Loop] = (),
    stop: threading.Event | None = None,
    public_url: str | None = None,
    scheduler: bool = True,
    store: StateStore | None = None,
) -> int:
    """Run NightOps for Slack until SIGINT/SIGTERM (or ``stop``); the exit code.

    ``socket_mode`` connects with ``slack.app_token``; ``http_port`` serves the HTTP app
    (``/slack/events``, link page, OAuth). Both may run; at least one must.
    ``background`` loops each get their own thread and ``stop``. With ``scheduler`` (the
    default) the schedule loop runs too, and it also expires approvals; without it a small
    sweeper expires them.
    """
    if not socket_mode and http_port is None:
        raise ConfigError("Nothing to serve: choose Socket Mode and/or an HTTP port.")
    stop = stop or threading.Event()
    # Acks are short and wait for the GIL behind answer threads: switch threads more often
    # (0.5 ms instead of 5 ms) so an ack is never stuck behind CPU-bound answering.
    sys.setswitchinterval(0.0005)
    runtime = build_slack(config, public_url=public_url, store=store)
    slack = config.slack
    assert slack is not None
    if socket_mode and not slack.app_token:
        raise ConfigError("Socket Mode needs slack.app_token (an xapp- token).")
    if http_port is not None and not slack.signing_secret:
        raise ConfigError("The HTTP endpoint needs slack.signing_secret.")
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    runtime.adapter.deliver(runtime.app.service.reconcile_operations())
    loops: list[Loop] = []
    if scheduler:
        deliver = runtime.adapter.deliver
        loops.append(Scheduler(runtime.app, workers=runtime.workers, deliver=deliver).run)
        # The attention pass (drift, on-call) runs beside the schedules.
        attention = build_attention(
            runtime.app.service, config.attention, workers=runtime.workers, deliver=deliver
        )
        loops.append(attention.run)
    else:
        loops.append(_sweeper(runtime, SWEEP_INTERVAL))
    threads = [
        threading.Thread(target=loop, args=(stop,), name=f"nightops-bg-{i}", daemon=True)
        for i, loop in enumerate([*loops, *background])
    ]
    for thread in threads:
        thread.start()
    server = None
    transport = None
    try:
        if http_port is not None:
            server = start_http(runtime.wsgi, host=host, port=http_port)
            log.info("NightOps HTTP app on %s (POST /slack/events)", server.url)
        if socket_mode:
            assert slack.app_token is not None
            transport = SocketModeTransport(runtime.adapter, app_token=slack.app_token.reveal())
            transport.connect()
            log.info("NightOps connected to Slack over Socket Mode")
        stop.wait()
    finally:
        stop.set()
        if transport is not None:
            transport.close()
        if server is not None:
            server.stop()
        for thread in threads:
            thread.join(timeout=5)
        runtime.close()
    return 0
