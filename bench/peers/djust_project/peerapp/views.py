import os

from djust import LiveView
from djust.uploads import UploadMixin


class UploadPeerView(LiveView, UploadMixin):
    template_name = "upload.html"
    login_required = False

    def mount(self, request, **kwargs):
        self.status = "ready"
        # chunk_size=63 KiB: what djust's own browser client uses, so a frame (21-byte header + payload)
        # fits djust's default 64 KiB max message size.
        self.allow_upload(
            "file", accept=".bin", max_entries=1,
            max_file_size=int(os.environ.get("DJUST_PEER_MAX_FILE_SIZE", 4 << 30)), chunk_size=63 * 1024,
        )
