"""A page that outlived its upload token: the client gets a fresh one from the page's own view and goes on."""

from __future__ import annotations

import os
import subprocess
import sys

from .support import REPO, DemoTestCase, png_bytes, sha256_file

# Re-signs the page's own token with an expiry in the past: what the token of a page left open past
# UPLOADS_TOKEN_TTL is (same upload session, same Django session binding).
EXPIRE = """
import sys, time
import django
django.setup()
from django.core import signing
from django_shim.conf import uploads_settings
from django_shim.tokens import TOKEN_SALT
secret = uploads_settings().secret
payload = signing.loads(sys.argv[1], key=secret, salt=TOKEN_SALT)
payload["exp"] = int(time.time()) - 60
print(signing.dumps(payload, key=secret, salt=TOKEN_SALT, compress=True))
"""

SET_TOKEN = """(token) => {
  const root = document.querySelector('[data-dj-view]');
  const config = JSON.parse(root.getAttribute('data-dj-uploads'));
  const old = config.token;
  config.token = token;
  root.setAttribute('data-dj-uploads', JSON.stringify(config));
  return old;
}"""


class TokenRenewalTests(DemoTestCase):

    def expired_token(self, page) -> str:  # type: ignore[no-untyped-def]
        token = page.evaluate("JSON.parse(document.querySelector('[data-dj-view]').getAttribute('data-dj-uploads')).token")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "browser_demo_settings",
               "PYTHONPATH": os.pathsep.join([str(self.workdir), str(REPO)])}
        expired = subprocess.run([sys.executable, "-c", EXPIRE, token], env=env, check=True, capture_output=True,
                                 text=True).stdout.strip()
        self.assertNotEqual(expired, token)
        return expired

    def expire_page_token(self, page) -> str:  # type: ignore[no-untyped-def]
        expired = self.expired_token(page)
        page.evaluate(SET_TOKEN, expired)
        return expired

    def test_an_expired_token_is_renewed_from_the_page_and_the_upload_completes(self) -> None:
        page = self.open_demo("/gallery/")
        self.expire_page_token(page)
        source = self.make_file("late.png", png_bytes(300_000))
        self.choose(page, "photos", [source])
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], sha256_file(source))
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        # One socket refused the expired token, the next one used the renewed token.
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 2)
        page.click('button[dj-click="upload_photos"]')
        page.locator('.gallery img[alt="late.png"]').wait_for()

    def test_a_paused_upload_renews_the_expired_token_on_reconnect_and_resumes(self) -> None:
        page = self.open_demo("/gallery/")
        expired = self.expired_token(page)
        # The page holds its data back after 5 MB (the 9 MB file would otherwise go out in one first window). At
        # the first acknowledged progress, the token "expires" and the connection drops: the reconnect meets
        # invalid_token with the file paused mid-way; the new socket may send again.
        page.evaluate("""(expired) => {
          const set = %s;
          const send = WebSocket.prototype.send;
          let sent = 0, hold = true;
          WebSocket.prototype.send = function (data) {
            if (typeof data !== 'string') {
              if (hold && sent >= 5000000) return;
              sent += data.byteLength ?? data.size ?? 0;
            }
            return send.call(this, data);
          };
          window.addEventListener('djust:upload:progress', function cut(event) {
            if (event.detail.status !== 'uploading' || event.detail.progress < 1) return;
            window.removeEventListener('djust:upload:progress', cut);
            set(expired);
            window.djUploads.reconnect();
            hold = false;
          });
        }""" % SET_TOKEN, expired)
        source = self.make_file("big.png", png_bytes(9_000_000))
        self.choose(page, "photos", [source])
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], sha256_file(source))
        self.assertEqual(entries[0]["resumeCount"], 1)
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 3)

    def test_a_page_whose_django_session_is_gone_cannot_renew_and_its_files_fail(self) -> None:
        page = self.open_demo("/gallery/")
        self.expire_page_token(page)
        self.context.clear_cookies()  # logged out / session expired: the view is not this browser's any more
        self.choose(page, "photos", [self.make_file("late.png", png_bytes(3000))])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = [e["detail"] for e in self.events(page, "djust:upload:error")]
        self.assertEqual((error["file"], error["code"]), ("late.png", "invalid_token"))
        self.assertEqual(page.evaluate("window.djUploads.connection().state"), "failed")
