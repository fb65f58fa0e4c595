"""The File Uploads seed's three examples, verbatim except for their import lines."""

from django_shim import LiveView
from django_shim.uploads import UploadMixin
from django_shim.decorators import event_handler
from django.core.files.storage import default_storage


class ProfileView(UploadMixin, LiveView):
    template_name = 'profile.html'

    def mount(self, request, **kwargs):
        self.avatar_url = ""
        self.allow_upload('avatar',
            accept='.jpg,.png,.webp',
            max_entries=1,
            max_file_size=5_000_000,  # 5MB
        )

    @event_handler()
    def save_avatar(self, **kwargs):
        for entry in self.consume_uploaded_entries('avatar'):
            path = default_storage.save(
                f'avatars/{entry.client_name}', entry.file
            )
            self.avatar_url = default_storage.url(path)


class GalleryView(UploadMixin, LiveView):
    template_name = 'gallery.html'

    def mount(self, request, **kwargs):
        self.images = []
        self.allow_upload('photos',
            accept='.jpg,.png,.webp,.gif',
            max_entries=5,
            max_file_size=10_000_000,
        )

    @event_handler()
    def upload_photos(self, **kwargs):
        for entry in self.consume_uploaded_entries('photos'):
            path = default_storage.save(
                f'gallery/{entry.client_name}', entry.file
            )
            self.images.append({
                'url': default_storage.url(path),
                'name': entry.client_name,
            })


class DocumentUploadView(UploadMixin, LiveView):
    template_name = 'upload_docs.html'

    def mount(self, request, **kwargs):
        self.uploaded_files = []
        self.errors = []
        self.allow_upload('docs',
            accept='.pdf,.docx,.txt',
            max_entries=3,
            max_file_size=20_000_000,
        )

    @event_handler()
    def process_uploads(self, **kwargs):
        self.errors = []
        for entry in self.consume_uploaded_entries('docs'):
            if entry.error:
                self.errors.append(f"{entry.client_name}: {entry.error}")
            else:
                path = default_storage.save(
                    f'documents/{entry.client_name}', entry.file
                )
                self.uploaded_files.append({
                    'name': entry.client_name,
                    'size': entry.client_size,
                    'url': default_storage.url(path),
                })
