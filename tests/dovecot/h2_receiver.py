"""An HTTP/2 webhook receiver (https, ALPN h2) that answers before it
has read the request, then resets the stream, as nginx's "return 204"
does: the case in which libcurl reports "Stream error in the HTTP/2
framing layer" after the answer has arrived.

It advertises a flow-control window of 16 bytes, so the client still
has most of the body to send when the answer comes, and resets the
stream reset_delay seconds after the answer: every request hits the
case, with the answer taken in first. Signatures are verified on the headers and the part of the
body that arrived (not the whole body): the test counts requests per
webhook-id, which is what it is about.

    rx = EarlyAnswerH2Receiver(cert, key)
    rx.url                                  # https://127.0.0.1:<port>/hook
    rx.ids()                                # webhook-ids in arrival order
    rx.stop()
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import List

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings


class EarlyAnswerH2Receiver:
    def __init__(self, cert: str, key: str, status: int = 204,
                 reset_delay: float = 0.3):
        self.status = status
        self.reset_delay = reset_delay
        self.lock = threading.Lock()
        self._ids: List[str] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2"])
        self._ctx = ctx
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    def ids(self) -> List[str]:
        with self.lock:
            return list(self._ids)

    def stop(self) -> None:
        self._stop = True
        try:
            self._sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,),
                             daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn_sock = self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        if conn_sock.selected_alpn_protocol() != "h2":
            conn_sock.close()
            return
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False))
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16})
        conn.initiate_connection()
        conn_sock.sendall(conn.data_to_send())
        try:
            while True:
                data = conn_sock.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        headers = {k.decode() if isinstance(k, bytes)
                                   else k: v.decode() if isinstance(v, bytes)
                                   else v for k, v in ev.headers}
                        with self.lock:
                            self._ids.append(headers.get("webhook-id", ""))
                        # the answer, at once, then the reset of the
                        # upload the client is still waiting to send
                        conn.send_headers(ev.stream_id,
                                          [(":status", str(self.status)),
                                           ("content-length", "0")],
                                          end_stream=True)
                        conn_sock.sendall(conn.data_to_send())
                        # let the client take the answer in before the
                        # reset: libcurl 7.88 loses an answer whose
                        # reset arrives with it (then no status is
                        # known, and the attempt is rightly a failure)
                        time.sleep(self.reset_delay)
                        conn.reset_stream(ev.stream_id,
                                          h2.errors.ErrorCodes.NO_ERROR)
                conn_sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            try:
                conn_sock.close()
            except OSError:
                pass
